"""Shared plumbing of the provider decoders: the operator wrapper and error helpers.

Every decoder is a pure class with ``feed(event) -> list[StreamToken]`` (one
SSE event in, the tokens it carries out) and ``close() -> list[StreamToken]``
(end of stream: raises `TruncatedStreamError` when the provider's terminal
event never came). `decoder_operator` wraps such a class as a ReactiveX
operator that creates one decoder per subscription.

Event data is parsed with pydantic-core's ``from_json`` (2.5-3.5x faster than
``json.loads`` on these small objects; pydantic is a core dependency), falling
back to ``json.loads`` for the rare input only the stdlib accepts. Whatever the
upstream sends, decoders emit only well-typed tokens whose text is valid UTF-8:

- escaped lone surrogates (``"\\ud800"``, which only the stdlib accepts) become
  U+FFFD, as the SSE parser does with invalid bytes;
- JSON nested too deeply for either parser is a `StreamDecodeError`;
- a field of the wrong type (``"content": ["x"]``, ``"index": "a"``,
  ``"text": true``) is a `StreamDecodeError` naming the field (`check_tokens`).

Errors raised by decoders carry ``partial=None``: the partial `Completion` is
attached downstream by `aggregate()` (``StreamError.with_partial``), which
already keeps a `CompletionBuilder`. Keeping a second builder inside every
decoder would double the per-token cost for a value only needed on failure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Protocol

from pydantic_core import from_json as fast_loads
from reactivex import Observable

from .._finish import finish_token, normal_finish
from ..errors import StreamDecodeError
from ..sse import SseEvent
from ..tokens import (
    Finish,
    ReasoningDelta,
    RefusalDelta,
    StreamToken,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._processor import processor_operator

__all__ = [
    "NO_PADDED_TEMPLATE",
    "NO_TEMPLATE",
    "Decoder",
    "DecoderOperator",
    "EventDecoder",
    "PaddedTemplate",
    "Template",
    "check_tokens",
    "decode_error",
    "decoder_operator",
    "fast_loads",
    "field_error",
    "finish_token",
    "is_plain",
    "learn_padded_template",
    "learn_template",
    "loads",
    "normal_finish",
    "parse_json",
    "shown",
    "strict_loads",
]

_SHOWN = 200
"""Offending data longer than this is cut in error messages."""


class Decoder(Protocol):
    """The shape of a pure decoder class."""

    def feed(self, event: SseEvent) -> list[StreamToken]: ...

    def close(self) -> list[StreamToken]: ...


class EventDecoder:
    """Base of the SSE decoders: one `decode` per event, reached with or without `SseEvent`.

    A subclass implements ``decode(event_type, data)``. `feed` takes an `SseEvent` (the
    public operator path); the fused path of ``_decode_sse.py`` hands over the data strings
    that `SseParser.feed_split` cut, without building events: `decode_values` (events of
    type ``"message"``) and `decode_pairs` (``(event_type, separator, data)`` triples).
    Subclasses override those two where a loop of their own is faster.
    """

    __slots__ = ()

    def decode(self, kind: str, data: str) -> list[StreamToken]:
        """Decode one event (type `kind`, data `data`) into the tokens it carries."""
        raise NotImplementedError

    def close(self) -> list[StreamToken]:
        """End of stream (see each decoder)."""
        raise NotImplementedError

    def feed(self, event: SseEvent) -> list[StreamToken]:
        """Decode one event into the tokens it carries."""
        return self.decode(event[0], event[1])

    def decode_values(self, values: list[str], tokens: list[StreamToken]) -> None:
        """Decode events of type ``"message"`` with these data strings, appending to `tokens`."""
        decode = self.decode
        for data in values:
            tokens += decode("message", data)

    def decode_pairs(self, pairs: list[tuple[str, str, str]], tokens: list[StreamToken]) -> None:
        """Decode ``(event_type, separator, data)`` triples (an empty type is ``"message"``)."""
        decode = self.decode
        for kind, _, data in pairs:
            tokens += decode(kind or "message", data)


class DecoderOperator:
    """The operator `decoder_operator` returns; it keeps its decoder class for `sse_decoder`."""

    __slots__ = ("_operator", "factory")

    def __init__(self, factory: Callable[[], Decoder]) -> None:
        self.factory = factory
        self._operator: Callable[[Observable[SseEvent]], Observable[StreamToken]] = (
            processor_operator(factory)
        )

    def __call__(self, source: Observable[SseEvent]) -> Observable[StreamToken]:
        return self._operator(source)


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


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _without_surrogates(value: Any) -> Any:
    """`value` with every lone surrogate in its strings (keys too) replaced by U+FFFD."""
    if type(value) is str:
        return _LONE_SURROGATE.sub("\ufffd", value)
    if type(value) is list:
        return [_without_surrogates(item) for item in value]
    if type(value) is dict:
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def strict_loads(provider: str, data: str) -> Any:
    """The slow path of `fast_loads` failures: the stdlib parser decides.

    pydantic-core's parser rejects a few inputs the stdlib accepts (escaped
    lone surrogates such as ``"\\ud83d"``, which become U+FFFD here, and
    nesting deeper than 200 levels); only when ``json.loads`` fails too is the
    data invalid.

    Raises:
        StreamDecodeError: invalid JSON, or nested too deeply to parse.
    """
    try:
        value = json.loads(data)
        if _ESCAPED_SURROGATE.search(data):
            value = _without_surrogates(value)
    except ValueError:
        raise decode_error(provider, "invalid JSON in an event", data) from None
    except RecursionError:
        raise decode_error(provider, "JSON nested too deeply to parse", data) from None
    return value


def parse_json(provider: str, data: str) -> Any:
    """Any JSON value: the fast parser, else `strict_loads`."""
    try:
        return fast_loads(data)
    except ValueError:
        return strict_loads(provider, data)


def loads(provider: str, data: str) -> dict[str, Any]:
    """Parse one event's data, which must be a JSON object."""
    value = parse_json(provider, data)
    if type(value) is not dict:
        raise decode_error(provider, "an event that is not a JSON object", data)
    return value


_Types = tuple[type, ...]
_STR: _Types = (str,)
_INT: _Types = (int,)
_OPTIONAL_STR: _Types = (str, type(None))
_OPTIONAL_INT: _Types = (int, type(None))
_TEXT: dict[str, _Types] = {"text": _STR, "index": _INT}
_FIELD_TYPES: dict[Any, dict[str, _Types]] = {
    TextDelta: _TEXT,
    ReasoningDelta: _TEXT,
    RefusalDelta: _TEXT,
    ToolCallDelta: {
        "index": _INT,
        "id": _OPTIONAL_STR,
        "name": _OPTIONAL_STR,
        "arguments": _STR,
        "choice": _INT,
    },
    ToolCall: {
        "index": _INT,
        "id": _OPTIONAL_STR,
        "name": _STR,
        "arguments": (dict,),
        "choice": _INT,
    },
    Usage: {name: _OPTIONAL_INT for name in Usage._fields if name not in ("estimated", "cached")},
    Finish: {"reason": _STR, "index": _INT, "raw": _OPTIONAL_STR},
}
"""The type each field of a decoded token must have (exact types: ``True`` is no count)."""

_CHECKS = {
    kind: tuple((kind._fields.index(field), field, allowed) for field, allowed in fields.items())
    for kind, fields in _FIELD_TYPES.items()
}


def field_error(provider: str, kind: str, field: str, value: Any, data: str) -> StreamDecodeError:
    """A `StreamDecodeError` for a token field of the wrong type."""
    return decode_error(
        provider, f"a {kind} {field} that is {type(value).__name__} {shown(repr(value))}", data
    )


def check_tokens(provider: str, data: str, tokens: list[StreamToken]) -> list[StreamToken]:
    """`tokens`, after checking the type of every field (decoders call it off the hot path).

    Raises:
        StreamDecodeError: a field has the wrong type; the message names it.
    """
    for token in tokens:
        for position, field, allowed in _CHECKS.get(type(token), ()):
            value = token[position]
            if type(value) not in allowed:
                raise field_error(provider, type(token).__name__, field, value, data)
    return tokens


Template = tuple[str, str, int]
"""A learnt payload shape: the text before and after one plain string, and their length."""

NO_TEMPLATE: Template = ("", "", 1 << 62)
"""Matches no payload (its length bound is never exceeded)."""


def is_plain(text: str) -> bool:
    """Whether `text` is a JSON string's content as is: no quote, backslash or control char.

    Conservative: `str.isprintable` also turns away a few characters JSON allows unescaped
    (U+2028, U+00A0 ...); those payloads take the full parse.
    """
    return text.isprintable() and '"' not in text and "\\" not in text


def learn_template(data: str, text: str) -> Template | None:
    """The payload `data` as a template around its string value `text`, or None.

    The template path: once a payload decoded to exactly one text token whose text is
    `text`, a later payload that is the same characters around a different plain string
    decodes to that string, without parsing JSON (the JSON parser goes through the same
    states: the plain string stays inside the literal that ``"`` opened). Valid only when
    the literal ``"text"`` occurs once in `data` and `data` has no backslash: then every
    string is written literally, so that occurrence is the value that was decoded.
    """
    if "\\" in data or not is_plain(text):
        return None
    quoted = f'"{text}"'
    at = data.find(quoted)
    if at < 0 or data.find(quoted, at + 1) >= 0:
        return None
    return data[: at + 1], data[at + 1 + len(text) :], len(data) - len(text)


PaddedTemplate = tuple[str, str, str, int]
"""A learnt payload shape with a second hole: (prefix, middle, suffix, their length); the
payload is prefix + text + middle + padding + suffix. No middle: `Template`'s one hole."""

NO_PADDED_TEMPLATE: PaddedTemplate = ("", "", "", 1 << 62)
"""Matches no payload."""


def learn_padded_template(data: str, text: str, key: str) -> PaddedTemplate | None:
    """`learn_template`, with a second hole at the string value of `key` after the text.

    For padding whose value the decoder ignores (OpenAI's ``obfuscation``): a later payload
    matches when both holes hold plain strings (`is_plain`) and every other character is
    the same. The hole is the value of the first ``"key":"`` after the text: `data` parsed
    as JSON and has no backslash, so that is a key and its string value, written as is.
    Without such a key the middle is empty (one hole, as `learn_template`).

    Example:
        >>> learn_padded_template('{"t":"hi","pad":"xyz"}', "hi", "pad")
        ('{"t":"', '","pad":"', '"}', 17)
    """
    template = learn_template(data, text)
    if template is None:
        return None
    prefix, suffix, size = template
    field = f'"{key}":"'
    at = suffix.find(field)
    if at < 0:
        return prefix, "", suffix, size
    start = at + len(field)
    end = suffix.index('"', start)
    return prefix, suffix[:start], suffix[end:], size - (end - start)


def decoder_operator(factory: Callable[[], Decoder]) -> DecoderOperator:
    """An operator that decodes `SseEvent` s with one ``factory()`` decoder per subscription.

    A decoder is a `Processor`; exceptions raised by ``feed`` / ``close`` go to
    ``on_error``, the upstream subscription is disposed and later events are
    ignored.
    """
    return DecoderOperator(factory)
