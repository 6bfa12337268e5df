"""Per-token cost of aggregation and of the asyncio bridge, against baselines in the same run.

Aggregation (100,000 text tokens on one choice, plus a few tool-call fragments):
- `CompletionBuilder.add` per token vs a bare ``list.append(token.text)`` loop
  (the lower bound for keeping the text);
- the `aggregate()` operator over ``reactivex.from_iterable`` vs the same source
  piped through ``reactivex.operators.to_list()`` (the cost of Rx alone).

Bridge (an async generator of 100,000 items):
- ``async for`` over ``to_async_iterator(from_async_iterable(gen))`` (pull-based
  source, bounded queue, flow control) vs ``async for`` over the generator itself;
- ``await collect(from_async_iterable(gen))`` vs the same bare loop.

Run: .venv/bin/python benchmarks/aggregate.py [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from collections.abc import AsyncIterator
from typing import Any

import reactivex
from _report import ROUNDS, Ratio, rounds, write_section
from reactivex import operators as ops

from rxtokens import Finish, TextDelta, ToolCallDelta, Usage
from rxtokens.aio import collect, from_async_iterable, to_async_iterator
from rxtokens.operators import aggregate
from rxtokens.operators._aggregate import CompletionBuilder


def make_tokens(n: int) -> list[Any]:
    tokens: list[Any] = [TextDelta(f"w{i % 97} ") for i in range(n)]
    tokens += [ToolCallDelta(0, "c", "f", '{"a": '), ToolCallDelta(0, None, None, "1}")]
    tokens += [Usage(10, n), Finish("stop")]
    return tokens


def main() -> None:
    quick = "--quick" in sys.argv
    n = 20_000 if quick else 100_000
    repeat = 2 if quick else ROUNDS
    tokens = make_tokens(n)

    def bare_append() -> None:
        parts: list[str] = []
        append = parts.append
        for t in tokens:
            if type(t) is TextDelta:
                append(t.text)
        "".join(parts)

    def builder() -> None:
        CompletionBuilder().add_all(tokens).build()

    def rx_to_list() -> None:
        reactivex.from_iterable(tokens).pipe(ops.to_list()).run()

    def rx_aggregate() -> None:
        reactivex.from_iterable(tokens).pipe(aggregate()).run()

    sync = rounds(
        {"bare": bare_append, "builder": builder, "to_list": rx_to_list, "aggregate": rx_aggregate},
        repeat,
    )

    items = tokens

    async def gen() -> AsyncIterator[Any]:
        for item in items:
            yield item

    async def bare_async_for() -> None:
        async for _ in gen():
            pass

    async def bridged() -> None:
        async with to_async_iterator(from_async_iterable(gen), maxsize=256) as it:
            async for _ in it:
                pass

    async def collected() -> None:
        await collect(from_async_iterable(gen))

    def arun(fn: Any) -> Any:
        return lambda: asyncio.run(fn())

    bridge = rounds(
        {
            "async": arun(bare_async_for),
            "bridge": arun(bridged),
            "collect": arun(collected),
        },
        repeat,
    )
    times = {**sync, **bridge}
    count = len(tokens)

    def row(label: str, ours: str, base: str) -> str:
        ratio = Ratio.of(times[ours], times[base])
        per = statistics.median(times[ours]) / count * 1e9
        per_base = statistics.median(times[base]) / count * 1e9
        return f"| {label} | {ratio.text(bold=False)} | {per:,.0f} ns | {per_base:,.0f} ns |"

    md = "\n".join(
        [
            "## aggregate and the asyncio bridge",
            "",
            f"{count:,} tokens per run; {repeat} rounds, order alternating; ratio: median of "
            "the per-round ratios (min-max; best-of beside it); times: median round.",
            "",
            "| measurement | time vs baseline | per token | baseline per token |",
            "|---|---|---|---|",
            row("`CompletionBuilder.add` vs bare `list.append(text)` loop", "builder", "bare"),
            row(
                "`aggregate()` operator vs `ops.to_list()` (same Rx source)", "aggregate", "to_list"
            ),
            row(
                "`to_async_iterator(from_async_iterable(gen))` vs bare `async for` over gen",
                "bridge",
                "async",
            ),
            row(
                "`await collect(from_async_iterable(gen))` vs bare `async for` over gen",
                "collect",
                "async",
            ),
        ]
    )
    print(md)
    write_section("aggregate", md)


if __name__ == "__main__":
    main()
