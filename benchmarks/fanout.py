"""Fan-out cost: `Broadcast` against a plain `reactivex.subject.Subject`, same run.

Both are fed by the same manual source (an `Observable` whose observer we call
directly) and have the same trivial subscribers (a bound ``list.append``
through ``subscribe(on_next)``). The figure is the time per token per run, for
1, 10, 100 and 1,000 subscribers; the ratio is Broadcast / Subject (target:
<= 1.5x) and the growth column shows cost per subscriber (target: linear).

The Broadcast runs with ``replay="all"`` (the default: every token is kept for
late joiners and the final answer is built from that history at the end) and
with ``replay="none"`` (tokens go to the `CompletionBuilder` as they arrive).

Run: ``.venv/bin/python benchmarks/fanout.py [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reactivex
from _report import ROUNDS, Ratio, write_section
from reactivex import abc
from reactivex.subject import Subject

from rxtokens.broadcast import Broadcast
from rxtokens.tokens import TextDelta


class ManualSource:
    """A cold observable whose (single) observer the benchmark drives directly."""

    def __init__(self) -> None:
        self.observer: abc.ObserverBase[Any] | None = None
        self.observable: reactivex.Observable[Any] = reactivex.create(self._subscribe)

    def _subscribe(self, observer: abc.ObserverBase[Any], scheduler: Any = None) -> Any:
        self.observer = observer
        return reactivex.disposable.Disposable()


def timed(setups: list[Callable[[], Callable[[], object]]], repeat: int) -> list[list[float]]:
    """CPU seconds of each setup in each of `repeat` rounds, the order alternating.

    Each measurement uses a fresh ``setup()`` and times only the run it returns.
    """
    times: list[list[float]] = [[] for _ in setups]
    for index in range(repeat):
        order = range(len(setups)) if index % 2 == 0 else reversed(range(len(setups)))
        for i in order:
            run = setups[i]()
            start = time.process_time()
            run()
            times[i].append(time.process_time() - start)
    return times


def run_subject(tokens: list[Any], subscribers: int) -> Callable[[], object]:
    """Subscribe everything (not timed), return the timed part: push every token."""
    source = ManualSource()
    subject: Subject[Any] = Subject()
    sinks = [[] for _ in range(subscribers)]  # type: ignore[var-annotated]
    for sink in sinks:
        subject.subscribe(sink.append)
    source.observable.subscribe(subject)
    observer = source.observer
    assert observer is not None

    def once() -> object:
        push = observer.on_next
        for token in tokens:
            push(token)
        observer.on_completed()
        return sinks

    return once


def run_broadcast(tokens: list[Any], subscribers: int, replay: Any) -> Callable[[], object]:
    """As `run_subject`; the timed part includes building the final Completion."""
    source = ManualSource()
    broadcast: Broadcast[Any] = Broadcast(source.observable, replay=replay)
    sinks = [[] for _ in range(subscribers)]  # type: ignore[var-annotated]
    for sink in sinks:
        broadcast.subscribe(sink.append)
    observer = source.observer
    assert observer is not None

    def once() -> object:
        push = observer.on_next
        for token in tokens:
            push(token)
        observer.on_completed()
        return broadcast.completion_so_far()

    return once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke test (a few seconds)")
    args = parser.parse_args()
    total = 20_000 if args.quick else 200_000  # token deliveries per measurement
    repeat = 2 if args.quick else ROUNDS
    rows = []
    for n in (1, 10, 100, 1000):
        count = max(20, total // n)
        tokens = [TextDelta(f"tok{i} ") for i in range(count)]
        t_subject, t_all, t_none = timed(
            [
                partial(run_subject, tokens, n),
                partial(run_broadcast, tokens, n, "all"),
                partial(run_broadcast, tokens, n, "none"),
            ],
            repeat,
        )
        r_all, r_none = Ratio.of(t_all, t_subject), Ratio.of(t_none, t_subject)
        subject, b_all, b_none = (statistics.median(t) / count for t in (t_subject, t_all, t_none))
        rows.append((n, count, subject, b_all, b_none, r_all, r_none))
        print(
            f"{n:>5} subscribers: Subject {subject * 1e6:8.2f} us/token, "
            f"Broadcast(all) {b_all * 1e6:8.2f} ({r_all.median:.2f}x), "
            f"Broadcast(none) {b_none * 1e6:8.2f} ({r_none.median:.2f}x)",
            flush=True,
        )
    base = rows[0]
    lines = [
        "Per-token fan-out cost, `Broadcast` vs a plain `reactivex.subject.Subject` with the same "
        f"trivial subscribers (`list.append`), same run, {repeat} rounds with the order "
        f"alternating{' (--quick)' if args.quick else ''}: ratios are medians of the per-round "
        "ratios (min-max; best-of beside it), times the median round. Target: <= 1.5x, linear "
        "in subscribers.",
        "",
        "| subscribers | Broadcast(replay=all) / Subject | Broadcast(replay=none) / Subject "
        "| Broadcast(all) per subscriber vs 1 sub | Subject us/token | Broadcast(all) us/token "
        "| Broadcast(none) us/token | tokens |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, count, subject, b_all, b_none, r_all, r_none in rows:
        growth = (b_all / n) / base[3]
        lines.append(
            f"| {n} | {r_all.text(bold=False)} | {r_none.text(bold=False)} | {growth:.2f} "
            f"| {subject * 1e6:.2f} | {b_all * 1e6:.2f} | {b_none * 1e6:.2f} | {count} |"
        )
    lines += [
        "",
        "The per-subscriber column is (cost / subscribers) relative to the 1-subscriber cost: "
        "values that fall and level off mean the fixed per-token cost is amortised and the "
        "growth is linear.",
    ]
    write_section("fanout", "\n".join(lines))


if __name__ == "__main__":
    main()
