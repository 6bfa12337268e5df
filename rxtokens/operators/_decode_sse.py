"""The fused SSE -> decoder path: bytes in, tokens out, no `SseEvent` on the common shapes.

`HttpProvider.stream` pipes a response body through ``parser()`` then ``decoder()``;
when those are `parse_sse()` and one of the SSE decoders, `sse_decoder` runs both in one
processor: `SseParser.feed_split` hands the data strings it cut straight to the decoder's
``decode_values`` / ``decode_pairs`` (an `SseEvent` is built only for the shapes that take
the spec's line loop). The public `SseParser` and `parse_sse()` are unchanged, and the tokens
are exactly those of ``pipe(parse_sse(), decoder())``, for every cut of the bytes
(tests/test_decode_sse.py proves it with hypothesis).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reactivex import Observable

from ..sse import DATA_VALUES, FIELD_PAIRS, SseParser
from ..tokens import StreamToken
from ._decode import DecoderOperator, EventDecoder
from ._processor import FailStream, processor_operator
from ._sse import SseOperator

__all__ = ["SseDecoding", "sse_decoder"]


class SseDecoding:
    """A processor: an `SseParser` feeding an `EventDecoder` without building events.

    Tokens decoded before a failure in the same chunk are emitted before the error,
    as they are when the parser and the decoder are two operators.
    """

    __slots__ = ("_decoder", "_parser", "_split")

    def __init__(self, parser: SseParser, decoder: EventDecoder) -> None:
        self._parser = parser
        self._decoder = decoder
        self._split = parser.feed_split

    def feed(self, chunk: bytes) -> list[StreamToken]:
        """Parse one chunk and decode the events it completes."""
        shape, items = self._split(chunk)
        tokens: list[StreamToken] = []
        if not items:
            return tokens
        decoder = self._decoder
        try:
            if shape == DATA_VALUES:
                decoder.decode_values(items, tokens)
            elif shape == FIELD_PAIRS:
                decoder.decode_pairs(items, tokens)
            else:
                decode = decoder.decode
                for event in items:
                    tokens += decode(event[0], event[1])
        except Exception as exc:
            if tokens:
                raise FailStream(exc, tokens) from exc
            raise
        return tokens

    def close(self) -> list[StreamToken]:
        """End of stream: the parser discards an unterminated block; the decoder decides."""
        self._parser.close()
        return self._decoder.close()


def sse_decoder(
    parser: Callable[[Observable[bytes]], Observable[Any]],
    decoder: Callable[[Observable[Any]], Observable[StreamToken]],
) -> Callable[[Observable[bytes]], Observable[StreamToken]]:
    """``pipe(parser, decoder)``, fused into one processor when both allow it.

    Fused when `parser` is `parse_sse()` and `decoder` one of the SSE decoder operators
    (its class is an `EventDecoder`); any other pair (Bedrock's event stream, a user's
    operator) is piped as given.

    Example:
        >>> import reactivex
        >>> from rxtokens.operators import decode_openai_chat, parse_sse
        >>> body = b'data: {"choices":[{"delta":{"content":"Hi"}}]}\\n\\ndata: [DONE]\\n\\n'
        >>> reactivex.of(body).pipe(sse_decoder(parse_sse(), decode_openai_chat())).run()
        TextDelta(text='Hi', index=0)
    """
    if not (
        isinstance(parser, SseOperator)
        and isinstance(decoder, DecoderOperator)
        and isinstance(decoder.factory, type)
        and issubclass(decoder.factory, EventDecoder)
    ):
        return lambda source: source.pipe(parser, decoder)
    limit = parser.max_event_bytes
    factory = decoder.factory

    def fused() -> SseDecoding:
        return SseDecoding(SseParser(max_event_bytes=limit), factory())

    return processor_operator(fused)
