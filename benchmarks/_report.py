"""Shared helpers for benchmarks: timing and writing a section of RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def results_path() -> Path:
    """Where sections are written: RESULTS.md, or $RXTOKENS_BENCH_RESULTS (smoke tests use it)."""
    override = os.environ.get("RXTOKENS_BENCH_RESULTS")
    return Path(override) if override else RESULTS


HEADER = """# Benchmark results

Every figure is measured beside its baseline in the same run on the same bytes
(ratios first, absolute numbers second). Regenerate with
`.venv/bin/python benchmarks/run_all.py`; each benchmark also runs alone
(`.venv/bin/python benchmarks/NAME.py`, `--quick` for a smoke run).

"""


def machine() -> str:
    """A one-line description of this machine."""
    return (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    )


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
    """Replace (or append) the section `name` of RESULTS.md with `markdown`.

    Sections are delimited by HTML comments so each benchmark owns its own part.
    """
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = (
        f"<!-- begin {name} -->\n{markdown.rstrip()}\n\n_{machine()}; {stamp}_\n<!-- end {name} -->"
    )
    path = results_path()
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(
        rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->", re.S
    )
    if pattern.search(text):
        text = pattern.sub(lambda _: body, text)
    else:
        text = text.rstrip() + "\n\n" + body + "\n"
    path.write_text(text)
