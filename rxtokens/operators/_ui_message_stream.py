"""The AI SDK UI message stream as operators: `rxtokens.formats.ui_message_stream` in ``pipe()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import reactivex
from reactivex import Observable
from reactivex import operators as ops

from ..formats.ui_message_stream import (
    UIMessageStreamDecoder,
    UIMessageStreamEncoder,
    error_text,
    is_done,
)
from ._processor import StopStream, processor_operator

__all__ = ["from_ui_message_stream_operator", "to_ui_message_stream_operator"]


def to_ui_message_stream_operator(
    message_id: str | None, on_error: Callable[[BaseException], str] | None
) -> Callable[[Observable[Any]], Observable[dict[str, Any]]]:
    """Tokens -> UI message chunks; an upstream error becomes an ``error`` chunk, then the end."""
    encode: Callable[[Observable[Any]], Observable[dict[str, Any]]] = processor_operator(
        lambda: UIMessageStreamEncoder(message_id)
    )
    describe = on_error or error_text

    def _operator(source: Observable[Any]) -> Observable[dict[str, Any]]:
        def error_chunk(error: Exception, _: Any) -> Observable[dict[str, Any]]:
            return reactivex.of(UIMessageStreamEncoder.error(describe(error)))

        return encode(source).pipe(ops.catch(error_chunk))

    return _operator


class _DecodeProcessor:
    """A decoder that also ends the stream at ``[DONE]`` (an SSE source may never complete)."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = UIMessageStreamDecoder()

    def feed(self, item: Any) -> list[Any]:
        tokens = self._decoder.feed(item)
        if is_done(item):
            raise StopStream(tokens)
        return tokens

    def close(self) -> list[Any]:
        return self._decoder.close()


def from_ui_message_stream_operator() -> Callable[[Observable[Any]], Observable[Any]]:
    """UI message chunks (dicts, JSON texts or `SseEvent` s) -> tokens."""
    return processor_operator(_DecodeProcessor)
