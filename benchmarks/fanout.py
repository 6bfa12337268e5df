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
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reactivex
from _report import best_of, write_section
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


def timed(setups: list[Callable[[], Callable[[], object]]], repeat: int) -> list[float]:
    """Best of `repeat` for each setup, interleaved so that load spikes hit all alike.

    Each measurement uses a fresh ``setup()`` and times only the run it returns.
    """
    best = [float("inf")] * len(setups)
    for _ in range(repeat):
        for i, setup in enumerate(setups):
            run = setup()
            best[i] = min(best[i], best_of(run, 1))
    return best


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
    repeat = 3 if args.quick else 7
    rows = []
    for n in (1, 10, 100, 1000):
        count = max(20, total // n)
        tokens = [TextDelta(f"tok{i} ") for i in range(count)]
        subject, b_all, b_none = (
            t / count
            for t in timed(
                [
                    partial(run_subject, tokens, n),
                    partial(run_broadcast, tokens, n, "all"),
                    partial(run_broadcast, tokens, n, "none"),
                ],
                repeat,
            )
        )
        rows.append((n, count, subject, b_all, b_none))
        print(
            f"{n:>5} subscribers: Subject {subject * 1e6:8.2f} us/token, "
            f"Broadcast(all) {b_all * 1e6:8.2f} ({b_all / subject:.2f}x), "
            f"Broadcast(none) {b_none * 1e6:8.2f} ({b_none / subject:.2f}x)",
            flush=True,
        )
    base = rows[0]
    lines = [
        "Per-token fan-out cost, `Broadcast` vs a plain `reactivex.subject.Subject` with the same "
        "trivial subscribers (`list.append`), same run, best of "
        f"{repeat}{' (--quick)' if args.quick else ''}. Target: <= 1.5x, linear in subscribers.",
        "",
        "| subscribers | Broadcast(replay=all) / Subject | Broadcast(replay=none) / Subject "
        "| Broadcast(all) per subscriber vs 1 sub | Subject us/token | Broadcast(all) us/token "
        "| Broadcast(none) us/token | tokens |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, count, subject, b_all, b_none in rows:
        growth = (b_all / n) / base[3]
        lines.append(
            f"| {n} | {b_all / subject:.2f}x | {b_none / subject:.2f}x | {growth:.2f} "
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
