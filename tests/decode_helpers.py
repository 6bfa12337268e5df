"""Helpers shared by the decoder tests (test_decode_*.py, test_transcripts.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import reactivex
from reactivex import Observable

from rxtokens.sse import SseEvent, SseParser
from rxtokens.tokens import StreamToken

Operator = Callable[[Observable[SseEvent]], Observable[StreamToken]]


def run(op: Operator, events: Iterable[SseEvent]) -> tuple[list[Any], Exception | None, bool]:
    """Push `events` through `op` synchronously: (tokens, error or None, completed)."""
    tokens: list[Any] = []
    errors: list[Exception] = []
    done: list[bool] = []
    reactivex.from_iterable(list(events)).pipe(op).subscribe(
        tokens.append, errors.append, lambda: done.append(True)
    )
    assert len(errors) + len(done) == 1, "exactly one terminal notification"
    return tokens, (errors[0] if errors else None), bool(done)


def ok(op: Operator, events: Iterable[SseEvent]) -> list[Any]:
    """The tokens of a stream that must complete successfully."""
    tokens, error, _ = run(op, events)
    if error is not None:
        raise error
    return tokens


def parse(body: bytes) -> list[SseEvent]:
    """All events of a whole SSE body."""
    parser = SseParser()
    return parser.feed(body) + parser.close()


def data(obj: Any, event: str = "message") -> SseEvent:
    """An event whose data is `obj` as compact JSON (or `obj` itself if a str)."""
    text = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return SseEvent(event, text)


def typed(obj: dict[str, Any]) -> SseEvent:
    """An event named after ``obj["type"]`` (Anthropic / Responses framing)."""
    return data(obj, obj["type"])
