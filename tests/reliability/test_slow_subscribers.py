"""Slow subscribers under each backpressure policy, and a subscriber that raises.

The slow consumer is a `GateScheduler`: nothing it is sent runs until the stream is
over, the worst case of a slow subscriber, and deterministic (no sleeping). In every
case the other subscribers get every token, the final answer is exact, the upstream
request runs to its end, and the slow subscriber's memory stays bounded by its policy
(`max_pending` tokens; for "coalesce" by the text itself, since nothing may be lost).
"""

from __future__ import annotations

import gc
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import reactivex
from reactivex.subject import Subject

from rxtokens import (
    BackpressureOverflowError,
    Finish,
    StreamToken,
    TextDelta,
)
from rxtokens.broadcast import Broadcast
from rxtokens.operators import (
    on_backpressure_buffer,
    on_backpressure_coalesce,
    on_backpressure_latest,
)
from rxtokens.testing import ProviderServer, Script

from ._util import GateScheduler, open_stream, text_deltas

pytestmark = pytest.mark.timeout(60)

DELTAS = text_deltas(2000)
FULL = "".join(DELTAS)
MAX_PENDING = 64


class Boom(Exception):
    """What the failing subscriber raises."""


def _text(items: list[Any]) -> str:
    return "".join(t.text for t in items if isinstance(t, TextDelta))


@pytest.mark.parametrize("policy", ["coalesce", "drop_latest", "error", "block"])
async def test_slow_and_failing_subscribers_do_not_disturb_the_others(
    srv: ProviderServer, policy: str
) -> None:
    srv.queue(Script(text=DELTAS))
    broadcast = Broadcast(open_stream(srv, "openai"), name="reliability")
    errors: list[tuple[str, Exception]] = []
    broadcast.errors.subscribe(errors.append)

    fast: list[StreamToken] = []
    slow: list[Any] = []
    gate = GateScheduler()

    def failing(token: StreamToken) -> None:
        if broadcast.seq == 10:
            raise Boom("subscriber bug")

    def busy(token: StreamToken) -> None:  # CPU work inline, no sleeping
        if type(token) is TextDelta:
            zlib.crc32(token.text.encode() * 100)
        slow.append(token)

    if policy == "block":
        broadcast.subscribe(busy, name="slow")
    else:
        broadcast.subscribe(
            slow.append,
            slow.append,  # the error, if any, lands in the list too
            policy=policy,  # type: ignore[arg-type]
            max_pending=MAX_PENDING,
            scheduler=gate,
            name="slow",
        )
    broadcast.subscribe(failing, name="failing")
    broadcast.subscribe(fast.append, name="fast")
    waiting_max = 0

    def watch(_: StreamToken) -> None:
        nonlocal waiting_max
        waiting_max = max(waiting_max, gate.waiting)

    broadcast.subscribe(watch, name="watch")

    completion = await broadcast.final
    assert completion.text == FULL
    assert _text(fast) == FULL
    assert [(name, type(exc)) for name, exc in errors if name == "failing"] == [("failing", Boom)]
    assert (await srv.wait_ended()).completed  # nobody's failure cancelled the request
    assert waiting_max <= 1  # one pending drain at most, never one per token

    gate.open()
    if policy in ("block", "coalesce"):
        assert _text(slow) == FULL  # nothing lost
        assert any(isinstance(t, Finish) for t in slow)
    if policy == "coalesce":
        assert len(slow) <= 4  # merged into a few deltas (text, finish, usage)
    elif policy == "drop_latest":
        assert FULL.startswith(_text(slow))
        assert len(slow) <= MAX_PENDING + 2  # + Finish and Usage, never dropped
        assert any(isinstance(t, Finish) for t in slow)
    elif policy == "error":
        assert isinstance(slow[-1], BackpressureOverflowError)
        assert slow[-1].capacity == MAX_PENDING
        assert len(slow) <= MAX_PENDING + 1
        assert FULL.startswith(_text(slow[:-1]))
        assert [name for name, _ in errors].count("slow") == 1


# --------------------------------------------------------------------------- memory

TOKENS = 40_000


def _tokens() -> Iterator[StreamToken]:
    for i in range(TOKENS):
        yield TextDelta(f"w{i % 1000:03d} ")
    yield Finish("stop")


def _peak_growth(run: Callable[[], object]) -> int:
    """Peak traced bytes above the start while `run` runs (its result is dropped after)."""
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        run()
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def _broadcast_run(policy: str | None) -> Callable[[], object]:
    def run() -> object:
        source: Subject[StreamToken] = Subject()
        broadcast = Broadcast(source, replay="none")
        gate = GateScheduler()
        slow: list[Any] = []
        if policy is not None:
            broadcast.subscribe(
                slow.append,
                slow.append,
                policy=policy,  # type: ignore[arg-type]
                max_pending=MAX_PENDING,
                scheduler=gate,
            )
        count = [0]
        broadcast.subscribe(lambda _: count.__setitem__(0, count[0] + 1))
        for token in _tokens():
            source.on_next(token)
        source.on_completed()
        assert count[0] == TOKENS + 1
        gate.open()
        if policy == "coalesce":
            assert _text(slow) == broadcast.completion_so_far().text
        return slow

    return run


@pytest.mark.parametrize("policy", ["drop_latest", "error", "coalesce"])
def test_a_slow_broadcast_subscriber_costs_bounded_memory(policy: str) -> None:
    """Extra peak memory of a never-draining subscriber, over the same broadcast without it.

    Bound: 1 MB for "drop_latest" / "error" (64 pending tokens, whatever the stream's
    length: 40,000 tokens here); for "coalesce" 100 bytes per merged token (the pending
    text is kept, merged: nothing may be lost).
    """
    baseline = _peak_growth(_broadcast_run(None))
    extra = _peak_growth(_broadcast_run(policy)) - baseline
    bound = 100 * TOKENS if policy == "coalesce" else 1_000_000
    assert extra < bound, f"{policy}: {extra:,} bytes above the baseline (bound {bound:,})"


OPERATORS: dict[str, Callable[[GateScheduler], Callable[[Any], Any]]] = {
    "buffer-error": lambda g: on_backpressure_buffer(MAX_PENDING, scheduler=g),
    "buffer-drop_oldest": lambda g: on_backpressure_buffer(MAX_PENDING, "drop_oldest", scheduler=g),
    "buffer-drop_newest": lambda g: on_backpressure_buffer(MAX_PENDING, "drop_newest", scheduler=g),
    "latest": lambda g: on_backpressure_latest(scheduler=g),
    "coalesce": lambda g: on_backpressure_coalesce(MAX_PENDING, scheduler=g),
}


@pytest.mark.parametrize("name", list(OPERATORS))
def test_on_backpressure_operators_bound_what_a_slow_consumer_holds(name: str) -> None:
    """40,000 tokens into a consumer that runs only at the end.

    Bound: peak memory growth < 1 MB for the dropping / failing policies (they hold at
    most 64 tokens); for "coalesce" < 100 bytes per merged token (the text is exact).
    """
    got: list[Any] = []
    ended: list[str] = []

    def run() -> None:
        gate = GateScheduler()
        reactivex.from_iterable(_tokens()).pipe(OPERATORS[name](gate)).subscribe(
            got.append, lambda e: got.append(e), lambda: ended.append("completed")
        )
        gate.open()

    growth = _peak_growth(run)
    text = _text(got)
    if name == "coalesce":
        assert growth < 100 * TOKENS, f"coalesce: {growth:,} bytes"
        assert text == "".join(t.text for t in _tokens() if isinstance(t, TextDelta))
        assert ended == ["completed"]
        return
    assert growth < 1_000_000, f"{name}: {growth:,} bytes"
    if name == "buffer-error":
        assert isinstance(got[-1], BackpressureOverflowError)
        assert len(got) == MAX_PENDING + 1
    elif name == "buffer-drop_newest":
        assert len(got) == MAX_PENDING
        assert ended == ["completed"]
    else:  # drop_oldest / latest: the newest tokens survive, the Finish last
        assert isinstance(got[-1], Finish)
        assert len(got) == (1 if name == "latest" else MAX_PENDING)
        assert ended == ["completed"]
