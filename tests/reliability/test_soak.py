"""Soak: 1,000,000 tokens through the whole pipeline with bounded memory (slow).

parse_sse -> decode_openai_chat -> redact -> chunk_by("word") -> metrics ->
Broadcast(replay="none", 3 subscribers: a running CRC of the text, a character
counter, and aggregate()). The body (about 75 MB of OpenAI chat events) is generated
lazily in 64 KB chunks, so the input itself costs no memory.

The bound: tracemalloc's peak growth over the run, minus the size of the final text
(one ``str``), stays under 40 bytes per token (measured: about 27). What grows with the
stream: the text itself, held by two builders (the Broadcast's own, for ``final``, and
aggregate()'s) as runs of 256 deltas joined into one ``str`` (about 2 x 9 bytes per
token here), the final join, and the metrics reservoir (capped at 10,000 samples). A
leak of one small object per token on top (a tuple is 56 bytes) breaks the bound.
"""

from __future__ import annotations

import gc
import re
import sys
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from reactivex.subject import Subject

from rxtokens import Completion, TextDelta
from rxtokens.broadcast import Broadcast
from rxtokens.operators import (
    StreamMetrics,
    aggregate,
    chunk_by,
    decode_openai_chat,
    metrics,
    parse_sse,
    redact,
)

TOKENS = 1_000_000
BYTES_PER_TOKEN = 40
WORDS = ["Hello", " world", ",", " the", " quick", " brown", " fox", " jumps", " ü", " 日本"]
SECRET = ["sk-", "ABCDEFGHIJ", "KLMNOPQRST", "uvwxyz", " "]  # a key cut over 5 deltas
SECRET_EVERY = 10_000


def _deltas() -> Iterator[str]:
    for i in range(TOKENS):
        if i % SECRET_EVERY == SECRET_EVERY - len(SECRET):
            yield from SECRET
            continue
        if i % SECRET_EVERY > SECRET_EVERY - len(SECRET):
            continue
        yield WORDS[i % len(WORDS)]


def _body(size: int = 65536) -> Iterator[bytes]:
    head = b'data: {"choices":[{"index":0,"delta":{"content":"'
    tail = b'"},"finish_reason":null}]}\n\n'
    buffer: list[bytes] = []
    held = 0
    for delta in _deltas():
        event = head + delta.encode() + tail
        buffer.append(event)
        held += len(event)
        if held >= size:
            yield b"".join(buffer)
            buffer, held = [], 0
    buffer.append(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
    buffer.append(b"data: [DONE]\n\n")
    yield b"".join(buffer)


def _expected() -> tuple[int, int]:
    text = re.sub(r"sk-[A-Za-z0-9]{20,64}", "[REDACTED]", "".join(_deltas()))
    return len(text), zlib.crc32(text.encode())


def _soak() -> tuple[Completion, int, int, StreamMetrics]:
    body: Subject[bytes] = Subject()
    stats = StreamMetrics()
    tokens = body.pipe(
        parse_sse(),
        decode_openai_chat(),
        redact(r"sk-[A-Za-z0-9]{20,64}"),
        chunk_by("word"),
        metrics(stats),
    )
    broadcast = Broadcast(tokens, replay="none", name="soak")
    crc = [0]
    chars = [0]
    result: list[Completion] = []

    def check(token: Any) -> None:
        if type(token) is TextDelta:
            crc[0] = zlib.crc32(token.text.encode(), crc[0])

    def count(token: Any) -> None:
        if type(token) is TextDelta:
            chars[0] += len(token.text)

    broadcast.subscribe(check)
    broadcast.subscribe(count)
    broadcast.pipe(aggregate()).subscribe(result.append)
    for chunk in _body():
        body.on_next(chunk)
    body.on_completed()
    return result[0], crc[0], chars[0], stats


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_million_tokens_in_bounded_memory() -> None:
    gc.collect()
    tracemalloc.start(1)
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        completion, crc, chars, stats = _soak()
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    length, expected_crc = _expected()
    assert len(completion.text) == chars == length
    assert zlib.crc32(completion.text.encode()) == crc == expected_crc
    assert completion.finish_reason == "stop"
    assert "sk-ABC" not in completion.text
    assert stats.snapshot().chunks > 0
    text_size = sys.getsizeof(completion.text)
    growth = peak - text_size
    print(
        f"\n{TOKENS:,} tokens: peak growth {peak / 1e6:.1f} MB, "
        f"final text {text_size / 1e6:.1f} MB, "
        f"{growth / TOKENS:.1f} B/token beyond the text (bound {BYTES_PER_TOKEN})"
    )
    assert growth < BYTES_PER_TOKEN * TOKENS
