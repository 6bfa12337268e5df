"""Smoke test of the benchmarks: each runs with ``--quick`` and writes its RESULTS.md section.

Every ``benchmarks/NAME.py`` runs as a subprocess with ``RXTOKENS_BENCH_RESULTS``
pointing to a scratch file (the real RESULTS.md is never touched). All of them take
about 35 s together on the loaded 2-core CI machine (each --quick run must stay < 20 s).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import _report, run_all

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(
    p.stem for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_") and p.stem != "run_all"
)
SECTIONS = {"concurrency": ["concurrency", "memory", "cancellation"]}
"""Benchmarks that write sections not named after the script."""


def _run(args: list[str], results: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a benchmark script with its own empty temp folder (``results.parent / "tmp"``)."""
    scratch = results.parent / "tmp"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "RXTOKENS_BENCH_RESULTS": str(results), "TMPDIR": str(scratch)}
    return subprocess.run(
        [sys.executable, *args],
        cwd=BENCHMARKS.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _leftovers(scratch: Path) -> list[str]:
    """What a run left in its temp folder, but tiktoken's own download cache (kept on purpose)."""
    return [p.name for p in scratch.iterdir() if p.name != "data-gym-cache"]


def test_every_benchmark_is_covered() -> None:
    assert "concurrency" in SCRIPTS
    assert len(SCRIPTS) >= 10


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_quick_run_writes_its_section(name: str, tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    done = _run([f"benchmarks/{name}.py", "--quick"], results, timeout=80)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert not _leftovers(tmp_path / "tmp")
    text = results.read_text()
    for section in SECTIONS.get(name, [name]):
        match = re.search(rf"<!-- begin {section} -->\n(.*?)<!-- end {section} -->", text, re.S)
        assert match, f"{name}.py did not write section {section!r}"
        assert match.group(1).strip()


@pytest.mark.timeout(90)
def test_run_all_writes_a_summary_then_the_sections(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    done = _run(["benchmarks/run_all.py", "--quick", "--only", "tokens,fanout"], results, 80)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    text = results.read_text()
    assert text.startswith("# Benchmark results")
    assert "**Machine:**" in text
    assert "2 benchmarks" in text
    summary = text.index("## Summary")
    assert summary < text.index("<!-- begin fanout -->")
    assert summary < text.index("<!-- begin tokens -->")
    assert "| tokens | ok |" in text
    assert "| fanout | ok |" in text
    assert not _leftovers(tmp_path / "tmp")
    # the goal table: every goal of issue 17, measured or not
    goals = text[text.index("## Goals (issue 17)") : summary]
    assert goals.count("not measured in this run") == 8


def test_a_benchmark_run_alone_does_not_touch_results_md(tmp_path: Path) -> None:
    """run_all.py is the one writer of RESULTS.md: a benchmark alone only prints."""
    env = {k: v for k, v in os.environ.items() if k != "RXTOKENS_BENCH_RESULTS"}
    before = (BENCHMARKS / "RESULTS.md").stat().st_mtime_ns
    done = subprocess.run(
        [sys.executable, "benchmarks/tokens.py", "--quick"],
        cwd=BENCHMARKS.parent,
        env={**env, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "not written" in done.stdout
    assert (BENCHMARKS / "RESULTS.md").stat().st_mtime_ns == before


def test_goal_rows_show_a_tagged_figure_and_its_verdict() -> None:
    text = _report.goal("chain", "**0.71x** (0.6-0.8)", True) + "\n"
    text += _report.goal("memory", "**1.23x** the final text", True)
    rows = run_all.goal_rows(text)
    assert len(rows) == len(_report.GOALS) == 8
    assert any("**0.71x** (0.6-0.8) | met |" in row for row in rows)
    assert sum("not measured in this run" in row for row in rows) == 6
