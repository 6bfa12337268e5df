"""Response cache: a cache hit's replay against a live loopback stream, same run.

One OpenAI chat answer of N tokens is served by a `ProviderServer` in another process
(the body of `providers_http._serve`). Each round streams it live (a plain provider),
as a cache miss (`CachedProvider` over a `MemoryCache`: live plus recording and
storing), and as hits from a `MemoryCache` and a `SqliteCache` (``pace="instant"``),
in alternating order, each the best of `REPEAT` streams. Figures: time to first token
and total time of one stream;
ratios are live / hit per round (how many times faster a hit is) and miss / live (what
recording costs), reported as the median of per-round ratios with their min-max.

Run: ``.venv/bin/python benchmarks/cache.py [--quick]``. The harness calls
`measure(rounds, tokens)` (a dict of figures) and `markdown(figures)`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import ROUNDS, Ratio, write_section
from providers_http import _serve
from reactivex import Observable

from rxtokens import TextDelta
from rxtokens.cache import MemoryCache, SqliteCache
from rxtokens.providers import CachedProvider, close_sessions, get_provider

KINDS = ("live", "miss", "hit (memory)", "hit (sqlite)")
REPEAT = 3
"""Streams per kind and round; the round keeps the fastest (a miss: each a new key)."""


async def _time(source: Observable[Any]) -> tuple[float, float, int]:
    """Time to first text token and total time of one subscription, and its text tokens."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    state = {"n": 0, "first": 0.0}
    start = time.perf_counter()

    def on_next(token: object) -> None:
        if type(token) is TextDelta:
            if not state["n"]:
                state["first"] = time.perf_counter() - start
            state["n"] += 1

    source.subscribe(on_next, done.set_exception, lambda: done.set_result(None))
    await done
    return state["first"], time.perf_counter() - start, int(state["n"])


async def _rounds(base_url: str, rounds: int, tokens: int, folder: str) -> dict[str, Any]:
    provider = get_provider("openai", api_key="k", base_url=base_url)
    memory = CachedProvider(provider, MemoryCache())
    sqlite = CachedProvider(provider, SqliteCache(Path(folder) / "bench.db"))
    missing = CachedProvider(provider, MemoryCache(max_entries=1))
    seeds = itertools.count()
    sources: dict[str, Callable[[int], Observable[Any]]] = {
        "live": lambda _: provider.stream("bench", "go"),
        "miss": lambda _: missing.stream("bench", "go", seed=next(seeds)),  # always a new key
        "hit (memory)": lambda _: memory.stream("bench", "go"),
        "hit (sqlite)": lambda _: sqlite.stream("bench", "go"),
    }
    for kind in ("hit (memory)", "hit (sqlite)"):  # record once
        await _time(sources[kind](-1))
    samples: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    for r in range(rounds):
        order = KINDS if r % 2 == 0 else KINDS[::-1]
        for kind in order:
            best = (float("inf"), float("inf"))
            for _ in range(REPEAT):  # the best of a few: load spikes of a shared machine
                first, total, count = await _time(sources[kind](r))
                if count != tokens:
                    raise SystemExit(f"{kind}: {count} text tokens, expected {tokens}")
                best = (min(best[0], first), min(best[1], total))
            samples[kind].append(best)
    await close_sessions()
    return samples


def measure(rounds: int = 9, tokens: int = 2000) -> dict[str, Any]:
    """Run the comparison (`rounds` >= 5, alternating order) and return its figures.

    Returns:
        ``{"rounds", "tokens", "samples": {kind: [(ttft, total) per round]},
        "ratios": {name: Ratio}}``: times in seconds; each `_report.Ratio` holds the
        per-round ratios (median, min-max, best-of).
    """
    if rounds < ROUNDS:
        raise ValueError(f"rounds must be >= {ROUNDS} (median of per-round ratios)")
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(tokens, child), daemon=True)
    server.start()
    try:
        base_url = parent.recv()
        with tempfile.TemporaryDirectory() as folder:
            samples = asyncio.run(_rounds(base_url, rounds, tokens, folder))
    finally:
        parent.send("stop")
        server.join(timeout=10)

    def times(kind: str, field: int) -> list[float]:
        return [sample[field] for sample in samples[kind]]

    ratios: dict[str, Ratio] = {}
    for kind in ("hit (memory)", "hit (sqlite)"):  # live / hit: how many times faster
        ratios[f"{kind} TTFT speed-up"] = Ratio.of(times("live", 0), times(kind, 0))
        ratios[f"{kind} total speed-up"] = Ratio.of(times("live", 1), times(kind, 1))
    ratios["miss / live total"] = Ratio.of(times("miss", 1), times("live", 1))
    return {"rounds": rounds, "tokens": tokens, "samples": samples, "ratios": ratios}


def markdown(figures: dict[str, Any]) -> str:
    """The RESULTS.md section of `measure`'s figures."""
    ratios, samples = figures["ratios"], figures["samples"]

    def ratio(name: str, bold: bool = True) -> str:
        return str(ratios[name].text(1, bold=bold))

    lines = [
        "## Response cache (`benchmarks/cache.py`)",
        "",
        f"One OpenAI chat answer of {figures['tokens']} tokens from a `ProviderServer` in "
        f"another process; {figures['rounds']} rounds in alternating order (each the best of "
        f"{REPEAT} streams); median of per-round ratios (min-max).",
        "",
        f"- {ratio('hit (memory) TTFT speed-up')} faster time to first token: a cache hit "
        "(memory) vs the live stream",
        f"- {ratio('hit (memory) total speed-up')} faster whole answer: a cache hit (memory) "
        "vs the live stream",
        f"- Cache hit (SQLite): first token {ratio('hit (sqlite) TTFT speed-up', False)}, "
        f"whole answer {ratio('hit (sqlite) total speed-up', False)} faster than live",
        f"- A miss (live + recording + storing) takes {ratio('miss / live total', False)} "
        "the live time",
        "",
        "| stream | TTFT median (ms) | total median (ms) |",
        "|---|---:|---:|",
    ]
    for kind in KINDS:
        firsts = [s[0] for s in samples[kind]]
        totals = [s[1] for s in samples[kind]]
        lines.append(
            f"| {kind} | {statistics.median(firsts) * 1e3:.2f} | "
            f"{statistics.median(totals) * 1e3:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``benchmarks/cache.py [--quick]``: measure, print and write the RESULTS.md section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    figures = measure(rounds=ROUNDS, tokens=200) if args.quick else measure()
    text = markdown(figures)
    print(text)
    write_section("cache", text)


if __name__ == "__main__":
    main()
