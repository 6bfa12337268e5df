"""Run every benchmark and write benchmarks/RESULTS.md with a summary table at the top.

Each ``benchmarks/NAME.py`` (every module not starting with ``_``, except this one) runs
as its own subprocess, one after the other (they measure CPU time: running them side by
side would distort every figure), with ``--quick`` passed through. Each writes its own
section (``_report.write_section``) into a scratch file; this script then writes the
results file: a title, the machine and the date, a summary of the headline figures of
every section (ratios against the peer measured in the same run first, absolute numbers
in the sections), then the sections themselves. A benchmark that fails or times out is
listed in the summary with its exit status and the end of its output, and makes this
script exit non-zero; the others still run.

The page opens with the goals of issue 17 (`_report.GOALS`), each with the figure a
benchmark tagged with `_report.goal` (the median of per-round ratios and its spread)
and whether it is met. The summary then takes, per section: the rows of a ``<!-- summary ... -->`` comment when the
benchmark wrote one (``concurrency.py`` does), else its bullet lines that start with a
bold figure (``- **3.1x ...**``), else the ratio cells of its first table that has some
(bold cells, values like ``3.1x``, numbers in a ratio column), with row label and header.

Run: ``.venv/bin/python benchmarks/run_all.py [--quick] [--only NAME,...] [--draft]``;
the output is ``benchmarks/RESULTS.md``, or ``$RXTOKENS_BENCH_RESULTS`` when set. It is
the one writer of RESULTS.md: a benchmark run alone only prints its section. The full
run takes about 8 minutes on the 2-core machine of this project.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import GOAL, GOALS, machine, results_path

HERE = Path(__file__).resolve().parent
SECTION = re.compile(r"<!-- begin (\S+) -->\n(.*?)\n<!-- end \1 -->", re.S)
SUMMARY_BLOCK = re.compile(r"<!-- summary\n(.*?)\n-->", re.S)
TITLE = """# Benchmark results

Every figure is measured beside its peer in the same run on the same bytes (the openai
and anthropic SDKs, llama-cpp-python's own streaming, a plain reactivex Subject, a raw
split ...): ratios first, absolute numbers second. Ratios are medians of per-round ratios
(the order of the contenders alternating from round to round) with their min-max spread.
This page is written only by `.venv/bin/python benchmarks/run_all.py` (about 8 minutes;
`--quick` for a smoke run, `--only NAME,...` to re-run some); a benchmark run alone
(`.venv/bin/python benchmarks/NAME.py [--quick]`) prints its section.
"""


def benchmarks() -> list[Path]:
    """Every benchmark script, in name order."""
    return sorted(
        p for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name != "run_all.py"
    )


def describe_machine() -> str:
    """CPU model, cores, memory, OS and Python: enough to compare two RESULTS.md files."""
    cpu = platform.processor() or platform.machine()
    memory = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
                break
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = f"; load average at start {os.getloadavg()[0]:.1f}"
    return f"{cpu}{memory}; {machine()}{load}"


def _bullets(markdown: str) -> list[str]:
    return [line[2:].strip() for line in markdown.splitlines() if line.startswith("- **")]


def _tables(markdown: str) -> list[tuple[list[str], list[list[str]]]]:
    """The section's tables as (header, data rows)."""
    tables: list[tuple[list[str], list[list[str]]]] = []
    for line in [*markdown.splitlines(), ""]:
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if tables and tables[-1][1] is not None and _is_rule(cells):
            continue
        if not tables or tables[-1][0] == [] or _starts_table(line, markdown):
            tables.append((cells, []))
        else:
            tables[-1][1].append(cells)
    return tables


def _is_rule(cells: list[str]) -> bool:
    return all(c and set(c) <= set(":- ") for c in cells)


def _starts_table(line: str, markdown: str) -> bool:
    lines = markdown.splitlines()
    index = lines.index(line)
    return index == 0 or not lines[index - 1].startswith("|")


RATIO = re.compile(r"^\**\d[\d.,]*x\b")
BASELINE = re.compile(r"^\**1(\.0+)?x\**( \(1(\.0+)?-1(\.0+)? |$)")
"""A baseline's own cell: 1.00x, alone or with a spread of 1.00-1.00 (`_report.Ratio.text`)."""
RATIO_HEADER = re.compile(r"ratio| / | vs |^x |\bx bare", re.I)


def _ratio_cells(markdown: str, limit: int = 8) -> list[tuple[str, str]]:
    """``(label: column, value)`` for the ratio cells of the first table that has some.

    A ratio cell is bold (``**3.1x**``), a value like ``3.1x``, or a number in a column
    whose header says it is a ratio; baseline rows (every ratio 1.00x) are skipped.
    """
    for header, rows in _tables(markdown):
        found: list[tuple[str, str]] = []
        for row in rows:
            picked = []
            for i, cell in enumerate(row[1:], start=1):
                if i >= len(header):
                    break
                if (
                    "**" in cell
                    or RATIO.match(cell)
                    or (RATIO_HEADER.search(header[i]) and re.match(r"^\d[\d.,]*$", cell))
                ):
                    picked.append((header[i], cell))
            if not picked or all(BASELINE.match(v) for _, v in picked):
                continue
            found.extend((f"{row[0]}: {h}", v) for h, v in picked[:2])
        if found:
            return found[:limit]
    return []


def summary_rows(name: str, markdown: str) -> list[str]:
    """Table rows ``| figure | value | section |`` for the summary (see the module doc)."""
    block = SUMMARY_BLOCK.search(markdown)
    if block:
        return [row for row in block.group(1).splitlines() if row.startswith("|")]
    bullets = _bullets(markdown)
    if bullets:
        return [f"| {line} | | {name} |" for line in bullets]
    cells = _ratio_cells(markdown)
    if not cells:
        return [f"| (no headline figure found) | see the section | {name} |"]
    return [f"| {figure} | {value} | {name} |" for figure, value in cells]


def goal_rows(text: str) -> list[str]:
    """One row per goal of issue 17 (`_report.GOALS`): its figure and whether it is met."""
    found = {m.group(1): (m.group(2), m.group(3)) for m in GOAL.finditer(text)}
    rows = []
    for key, (path, target) in GOALS.items():
        figure, verdict = found.get(key, ("not measured in this run", "not met"))
        rows.append(f"| {path} | {target} | {figure} | {verdict} |")
    return rows


DRAFT = (
    "**Draft:** measured on a shared, loaded machine to check the harness; these are not "
    "the figures to judge the goals by. Regenerate on a quiet machine (without `--draft`)."
)


def run(quick: bool, only: set[str] | None, draft: bool = False) -> int:
    """Run the benchmarks and rewrite RESULTS.md; the scratch folder is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="rxtokens-bench-") as scratch_dir:
        return _run(quick, only, Path(scratch_dir) / "sections.md", draft)


def _run(quick: bool, only: set[str] | None, scratch: Path, draft: bool = False) -> int:
    env = {**os.environ, "RXTOKENS_BENCH_RESULTS": str(scratch), "PYTHONUNBUFFERED": "1"}
    limit = 120 if quick else 600
    started = datetime.datetime.now(datetime.UTC)
    outcomes: list[tuple[str, int | None, float, str]] = []
    if only is not None and results_path().exists():
        # --only re-runs some benchmarks: the other sections stay as they were.
        scratch.write_text(results_path().read_text())
    for script in benchmarks():
        name = script.stem
        if only is not None and name not in only:
            continue
        command = [sys.executable, str(script), *(["--quick"] if quick else [])]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        before = scratch.read_text() if scratch.exists() else ""
        began = time.perf_counter()
        try:
            done = subprocess.run(
                command, env=env, cwd=HERE.parent, capture_output=True, text=True, timeout=limit
            )
            status: int | None = done.returncode
            tail = (done.stdout + done.stderr)[-1500:]
        except subprocess.TimeoutExpired as exc:
            status = None
            partial = exc.stdout or b""
            tail = (partial.decode() if isinstance(partial, bytes) else partial)[-1500:]
        seconds = time.perf_counter() - began
        print(f"   exit {status} in {seconds:.1f} s", flush=True)
        if status != 0:
            print(tail, file=sys.stderr)
        outcomes.append((name, status, seconds, tail))
        after = scratch.read_text() if scratch.exists() else ""
        if status == 0 and after == before:
            print(f"   warning: {name} wrote no section", file=sys.stderr)

    text = scratch.read_text() if scratch.exists() else ""
    sections = [(m.group(1), m.group(0), m.group(2)) for m in SECTION.finditer(text)]
    rows: list[str] = []
    for section, _, markdown in sections:
        rows.extend(summary_rows(section, markdown))
    failures = [(n, s, t) for n, s, _, t in outcomes if s != 0]
    for name, status, tail in failures:
        what = "timed out" if status is None else f"exit status {status}"
        last = " ".join(tail.strip().splitlines()[-1:])[:200].replace("|", "/")
        rows.append(f"| **{name}.py FAILED** ({what}) | {last} | {name} |")

    total = sum(s for _, _, s, _ in outcomes)
    page = [
        TITLE,
        f"**Run:** {started:%Y-%m-%d %H:%M} UTC{' (--quick)' if quick else ''}, "
        f"{len(outcomes)} benchmarks in {total:.0f} s.  ",
        f"**Machine:** {describe_machine()}.",
        "",
        *([DRAFT, ""] if draft else []),
        "## Goals (issue 17)",
        "",
        "Each figure: the median of per-round ratios, its min-max over the rounds (the order "
        "of the contenders alternates from round to round), and the best-of ratio beside it.",
        "",
        "| path | goal | figure | met |",
        "|---|---|---|---|",
        *goal_rows(text),
        "",
        "## Summary",
        "",
        "| figure | vs its peer in the same run | section |",
        "|---|---|---|",
        *rows,
        "",
        "| benchmark | status | seconds |",
        "|---|---|---:|",
        *(
            f"| {n} | {'ok' if s == 0 else 'timed out' if s is None else f'exit {s}'} | {t:.1f} |"
            for n, s, t, _ in outcomes
        ),
        "",
        *(block for _, block, _ in sections),
        "",
    ]
    out = results_path()
    out.write_text("\n".join(page))
    print(f"wrote {out} ({len(sections)} sections, {len(failures)} failures)")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument("--only", help="comma-separated benchmark names (default: all)")
    parser.add_argument(
        "--draft", action="store_true", help="say on the page that the machine was not quiet"
    )
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    sys.exit(run(args.quick, only, args.draft))


if __name__ == "__main__":
    main()
