"""The README: its first two commands, and every ```python example actually runs.

Blocks fenced as ```python are executed (in order, each in a fresh interpreter, so they
stay self-contained); blocks fenced as ```py are illustrations that need an API key or a
running notebook, and are only compiled.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return [b.strip() for b in re.findall(rf"```{language}\n(.*?)```", README, re.S)]


def test_readme_opens_with_the_main_job_then_the_test_command() -> None:
    main_job, test_command = blocks("bash")[:2]
    assert README.index(main_job) < README.index(test_command) < README.index("```python")
    assert main_job.endswith("rxtokens demo")
    assert test_command.endswith("-m pytest")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = blocks("bash")[1]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


@pytest.mark.parametrize("code", blocks("python"), ids=lambda code: code.splitlines()[0][:40])
def test_python_examples_run(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=90, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "every example prints what it shows"


@pytest.mark.parametrize("code", blocks("py"), ids=lambda code: code.splitlines()[0][:40])
def test_illustrations_are_valid_python(code: str) -> None:
    ast.parse(code.replace("await ", ""))
