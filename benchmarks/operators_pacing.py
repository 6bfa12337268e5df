"""Per-token cost of the pacing / backpressure / metrics operators.

Each case pushes N `TextDelta` tokens through a `Subject` into the operator and
a counting sink. Baseline (same run): the bare Subject -> sink path, and
``reactivex.operators.map(identity)`` as the cost of a trivial Rx operator.
Time-based operators run on a virtual scheduler (``TestScheduler``) advanced
by the harness, so the figures are CPU cost, not waiting.

    .venv/bin/python benchmarks/operators_pacing.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import reactivex.operators as ops
from reactivex.disposable import Disposable
from reactivex.scheduler.scheduler import Scheduler
from reactivex.subject import Subject
from reactivex.testing import TestScheduler

from benchmarks._report import ROUNDS, Ratio, rounds, write_section
from rxtokens.operators import (
    StreamMetrics,
    frames,
    metrics,
    on_backpressure_buffer,
    on_backpressure_coalesce,
    rate_limit,
    smooth,
)
from rxtokens.tokens import TextDelta


class ManualScheduler(Scheduler):
    """Queues actions; the harness runs one now and then (a consumer it controls)."""

    def __init__(self) -> None:
        self.actions: list[Any] = []

    def schedule(self, action: Any, state: Any = None) -> Any:
        self.actions.append((action, state))
        return Disposable()

    def schedule_relative(self, duetime: Any, action: Any, state: Any = None) -> Any:
        raise NotImplementedError

    def schedule_absolute(self, duetime: Any, action: Any, state: Any = None) -> Any:
        raise NotImplementedError

    def run_one(self) -> None:
        if self.actions:
            action, state = self.actions.pop(0)
            action(self, state)

    def run_all(self) -> None:
        while self.actions:
            self.run_one()


Case = Callable[[int], None]


def _tokens(n: int) -> list[TextDelta]:
    words = ["The ", "quick ", "brown ", "fox ", "jumps ", "over ", "the ", "lazy ", "dog. "]
    return [TextDelta(words[i % len(words)]) for i in range(n)]


def make_case(
    build: Callable[[Any], Any] | None, every: int = 0, tick: Callable[[Any], None] | None = None
) -> Callable[[list[TextDelta], Any], None]:
    """A run: subject -> build(scheduler) -> sink; `tick(scheduler)` every `every` tokens."""

    def run(tokens: list[TextDelta], scheduler: Any) -> None:
        subject: Subject[Any] = Subject()
        count = [0]

        def sink(_token: Any) -> None:
            count[0] += 1

        source = subject if build is None else subject.pipe(build(scheduler))
        source.subscribe(sink)
        on_next = subject.on_next
        if every and tick is not None:
            for i, token in enumerate(tokens):
                on_next(token)
                if i % every == every - 1:
                    tick(scheduler)
        else:
            for token in tokens:
                on_next(token)
        subject.on_completed()
        if isinstance(scheduler, ManualScheduler):
            scheduler.run_all()
        elif isinstance(scheduler, TestScheduler):
            scheduler.start()
        assert count[0] > 0

    return run


def advance(scheduler: TestScheduler) -> None:
    scheduler.advance_by(1.0)


CASES: list[tuple[str, Callable[[], Any], Callable[[list[TextDelta], Any], None]]] = [
    ("Subject -> sink (baseline)", lambda: None, make_case(None)),
    (
        "map(identity) (a trivial Rx operator)",
        lambda: None,
        make_case(lambda s: ops.map(lambda x: x)),
    ),
    ("metrics() (virtual clock)", TestScheduler, make_case(lambda s: metrics(scheduler=s))),
    ("metrics() (monotonic clock)", lambda: None, make_case(lambda s: metrics())),
    (
        "metrics(StreamMetrics(), interval=1) (virtual)",
        TestScheduler,
        make_case(lambda s: metrics(StreamMetrics(), interval=1, scheduler=s), 100, advance),
    ),
    (
        "on_backpressure_coalesce(), consumer 1:1",
        ManualScheduler,
        make_case(lambda s: on_backpressure_coalesce(scheduler=s), 1, ManualScheduler.run_one),
    ),
    (
        "on_backpressure_coalesce(), consumer 100x slower",
        ManualScheduler,
        make_case(lambda s: on_backpressure_coalesce(scheduler=s), 100, ManualScheduler.run_one),
    ),
    (
        "on_backpressure_buffer(1000, drop_oldest), 100x slower",
        ManualScheduler,
        make_case(
            lambda s: on_backpressure_buffer(1000, "drop_oldest", scheduler=s),
            100,
            ManualScheduler.run_one,
        ),
    ),
    (
        "frames(1 fps), 100 tokens per frame (virtual)",
        TestScheduler,
        make_case(lambda s: frames(1, scheduler=s), 100, advance),
    ),
    (
        "smooth(0) (re-cut into words only)",
        TestScheduler,
        make_case(lambda s: smooth(0, scheduler=s)),
    ),
    (
        "rate_limit(100/s, burst=100) (virtual)",
        TestScheduler,
        make_case(lambda s: rate_limit(100, 100, scheduler=s), 100, advance),
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run (smoke test)")
    args = parser.parse_args()
    n = 10_000 if args.quick else 100_000
    repeat = 2 if args.quick else ROUNDS
    tokens = _tokens(n)
    # Every case once per round, the order alternating: load changes on a shared machine
    # then hit all cases alike instead of distorting the ratios.
    times = rounds(
        {
            name: (lambda run=run, make=make_scheduler: run(tokens, make()))
            for name, make_scheduler, run in CASES
        },
        repeat,
    )
    base, trivial = times[CASES[0][0]], times[CASES[1][0]]
    for name, values in times.items():
        print(f"{name:<55} {statistics.median(values) / n * 1e9:9.0f} ns/token", flush=True)
    lines = [
        "## Pacing, backpressure and metrics operators (per-token cost)",
        "",
        f"{n:,} `TextDelta` tokens pushed through a `Subject`; {repeat} rounds, order alternating "
        "(ratios: median of the per-round ratios, min-max and best-of beside it; ns: the median "
        "round). "
        "Time-based operators on a `TestScheduler` advanced by the harness (CPU cost, no waiting); "
        "backpressure with a manual scheduler whose consumer runs once per 1 or 100 tokens. "
        "Ratios against the bare Subject -> sink path and against `map(identity)` measured in the same run.",
        "",
        "| operator | time vs bare path | time vs map(identity) | ns / token |",
        "|---|---:|---:|---:|",
    ]
    for name, values in times.items():
        ns = statistics.median(values) / n * 1e9
        vs_base = Ratio.of(values, base).text(bold=False)
        vs_map = Ratio.of(values, trivial).text(bold=False)
        lines.append(f"| {name} | {vs_base} | {vs_map} | {ns:,.0f} |")
    lines += [
        "",
        "`metrics()` off costs nothing: it is simply not in the chain.",
    ]
    write_section("operators_pacing", "\n".join(lines))


if __name__ == "__main__":
    main()
