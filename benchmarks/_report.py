"""Shared helpers for benchmarks: timing in rounds, ratios, goals, and writing a section.

How every benchmark reports a comparison (issue 17): the contenders run in rounds
(`rounds`), each once per round, in an order that alternates from round to round, so
that a change of load on this shared machine hits them alike; the figure is the
median of the per-round ratios with their min-max spread (`Ratio`), and a best-of
ratio may stand beside it, labelled. A figure that answers one of the issue's goals
is tagged with `goal` so that ``run_all.py`` puts it in the summary's goal table.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTIONS_ENV = "RXTOKENS_BENCH_RESULTS"


def results_path() -> Path:
    """Where ``run_all.py`` writes the page: RESULTS.md, or ``$RXTOKENS_BENCH_RESULTS``."""
    override = os.environ.get(SECTIONS_ENV)
    return Path(override) if override else RESULTS


def machine() -> str:
    """A one-line description of this machine."""
    return (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    )


ROUNDS = 5
"""The least number of rounds a comparison runs (the median of fewer says little)."""


def rounds(
    contenders: Mapping[str, Callable[[], object]],
    count: int = ROUNDS,
    clock: Callable[[], float] = time.process_time,
) -> dict[str, list[float]]:
    """Seconds of each contender in each of `count` rounds (one run each per round).

    The order alternates: as given in even rounds, reversed in odd ones. `clock` is
    the CPU time of this process by default (the other workers of a shared machine
    disturb it less than wall time); pass ``time.perf_counter`` for I/O.
    """
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(count):
        for name in names if index % 2 == 0 else reversed(names):
            start = clock()
            contenders[name]()
            times[name].append(clock() - start)
    return times


@dataclass(frozen=True)
class Ratio:
    """Per-round ratios of two contenders: median, min-max spread and the best-of ratio."""

    values: tuple[float, ...]
    best: float  # the ratio of the best (lowest) times, for reference

    @classmethod
    def of(cls, numerator: list[float], denominator: list[float]) -> Ratio:
        """``numerator[i] / denominator[i]`` per round (times: "how many times slower")."""
        values = tuple(n / d for n, d in zip(numerator, denominator, strict=True))
        return cls(values, min(numerator) / min(denominator))

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def text(self, digits: int = 2, bold: bool = True) -> str:
        """``**3.10x** (2.90-3.30 over 5 rounds; best-of 3.40x)``."""
        f = f"{{:.{digits}f}}"
        median = f.format(self.median) + "x"
        return (
            f"{f'**{median}**' if bold else median} ({f.format(self.low)}-{f.format(self.high)} "
            f"over {len(self.values)} rounds; best-of {f.format(self.best)}x)"
        )


GOALS: dict[str, tuple[str, str]] = {
    "openai_sdk": (
        "bytes -> tokens vs the openai SDK `chat.completions.create(stream=True)`",
        ">= 60x",
    ),
    "anthropic_sdk": (
        "bytes -> tokens vs the anthropic SDK `messages.create(stream=True)`",
        ">= 12x",
    ),
    "raw_split": (
        "bytes -> tokens time / raw split + `pydantic_core.from_json` (same JSON parser)",
        "<= 1.2x both",
    ),
    "sse_small": ("SSE parse, small events, vs the openai SDK decoder", ">= 10x"),
    "sse_one_event": (
        "SSE parse, one event per network chunk (token-paced streams), vs the openai SDK",
        ">= 5x",
    ),
    "concurrency": (
        "200 concurrent loopback streams, tokens/s vs raw aiohttp + split + `from_json`",
        ">= 0.9x (p99 TTFT <= 1.2x)",
    ),
    "chain": (
        "full chain parse -> decode -> count_tokens -> redact -> chunk_by -> metrics -> "
        "aggregate vs decode alone",
        ">= 0.7x",
    ),
    "memory": (
        "peak memory, one 1,000,000-token stream through Broadcast and aggregate",
        "<= 1.5x the final text",
    ),
}
"""The goals of issue 17: key -> (path, goal). ``run_all.py`` shows each with its figure."""

GOAL = re.compile(r"<!-- goal (\S+) \| (.*?) \| (met|not met) -->")


def goal(key: str, figure: str, met: bool) -> str:
    """A line tagging `figure` as the answer to goal `key` (an HTML comment, invisible)."""
    if key not in GOALS:
        raise KeyError(f"unknown goal {key!r}; known: {sorted(GOALS)}")
    return f"<!-- goal {key} | {figure.replace('|', '/')} | {'met' if met else 'not met'} -->"


def best_of(
    fn: Callable[[], object], repeat: int = 5, clock: Callable[[], float] = time.perf_counter
) -> float:
    """The fastest of `repeat` runs of `fn`, in seconds (the least disturbed by noise).

    `clock` is wall time by default; ``time.process_time`` measures this process's CPU
    time instead, which the other workers of a shared machine disturb less.
    """
    best = float("inf")
    for _ in range(repeat):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section `name` of the file ``$RXTOKENS_BENCH_RESULTS``.

    Sections are delimited by HTML comments so each benchmark owns its own part.
    ``run_all.py`` sets the variable to its scratch file and then writes RESULTS.md
    whole: it is the one writer of RESULTS.md. A benchmark run alone only prints.
    """
    override = os.environ.get(SECTIONS_ENV)
    if not override:
        print(f"(section {name!r} not written: RESULTS.md is regenerated by run_all.py)")
        return
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = (
        f"<!-- begin {name} -->\n{markdown.rstrip()}\n\n_{machine()}; {stamp}_\n<!-- end {name} -->"
    )
    path = Path(override)
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(
        rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->", re.S
    )
    if pattern.search(text):
        text = pattern.sub(lambda _: body, text)
    else:
        text = text.rstrip() + "\n\n" + body + "\n"
    path.write_text(text)
