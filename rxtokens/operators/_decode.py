"""Shared plumbing of the provider decoders: the operator wrapper and error helpers.

Every decoder is a pure class with ``feed(event) -> list[StreamToken]`` (one
SSE event in, the tokens it carries out) and ``close() -> list[StreamToken]``
(end of stream: raises `TruncatedStreamError` when the provider's terminal
event never came). `decoder_operator` wraps such a class as a ReactiveX
operator that creates one decoder per subscription.

Event data is parsed with pydantic-core's ``from_json`` (2.5-3.5x faster than
``json.loads`` on these small objects; pydantic is a core dependency), falling
back to ``json.loads`` for the rare input only the stdlib accepts.

Errors raised by decoders carry ``partial=None``: the partial `Completion` is
attached downstream by `aggregate()` (``StreamError.with_partial``), which
already keeps a `CompletionBuilder`. Keeping a second builder inside every
decoder would double the per-token cost for a value only needed on failure.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from pydantic_core import from_json as fast_loads
from reactivex import Observable

from ..errors import StreamDecodeError
from ..sse import SseEvent
from ..tokens import StreamToken
from ._processor import processor_operator

__all__ = [
    "Decoder",
    "decode_error",
    "decoder_operator",
    "fast_loads",
    "loads",
    "shown",
    "strict_loads",
]

_SHOWN = 200
"""Offending data longer than this is cut in error messages."""


class Decoder(Protocol):
    """The shape of a pure decoder class."""

    def feed(self, event: SseEvent) -> list[StreamToken]: ...

    def close(self) -> list[StreamToken]: ...


def shown(data: str) -> str:
    """`data` as ``repr``, cut to 200 characters (with the full length said)."""
    if len(data) <= _SHOWN:
        return repr(data)
    return f"{data[:_SHOWN]!r}... ({len(data)} characters)"


def decode_error(provider: str, what: str, data: str) -> StreamDecodeError:
    """A `StreamDecodeError` naming the provider, the problem and the offending data."""
    return StreamDecodeError(
        f"{what} in the {provider} stream: {shown(data)}; "
        f"the server is not speaking the {provider} streaming format (check base_url)",
        provider=provider,
    )


def strict_loads(provider: str, data: str) -> Any:
    """The slow path of `fast_loads` failures: the stdlib parser decides.

    pydantic-core's parser rejects a few inputs the stdlib accepts (escaped
    lone surrogates such as ``"\\ud83d"``); only when ``json.loads`` fails
    too is the data invalid.
    """
    try:
        return json.loads(data)
    except ValueError:
        raise decode_error(provider, "invalid JSON in an event", data) from None


def loads(provider: str, data: str) -> dict[str, Any]:
    """Parse one event's data, which must be a JSON object."""
    try:
        value = fast_loads(data)
    except ValueError:
        value = strict_loads(provider, data)
    if type(value) is not dict:
        raise decode_error(provider, "an event that is not a JSON object", data)
    return value


def decoder_operator(
    factory: Callable[[], Decoder],
) -> Callable[[Observable[SseEvent]], Observable[StreamToken]]:
    """An operator that decodes `SseEvent` s with one ``factory()`` decoder per subscription.

    A decoder is a `Processor`; exceptions raised by ``feed`` / ``close`` go to
    ``on_error``, the upstream subscription is disposed and later events are
    ignored.
    """
    return processor_operator(factory)
