"""The README: its first two commands, and every ```python example shows what it claims.

Blocks fenced as ```python are executed (each in a fresh interpreter, so they stay
self-contained), and each is followed by a ```text block: the output it must print, compared
as doctest compares (``...`` matches anything, whitespace runs are equal). Blocks fenced as
```py are illustrations that need an API key or a running notebook, and are only compiled.
"""

from __future__ import annotations

import ast
import doctest
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


def examples() -> list[tuple[str, str]]:
    """Each ```python block with the ```text block that follows it (its expected output)."""
    fenced = list(re.finditer(r"```(\w*)\n(.*?)```", README, re.S))
    pairs = []
    for block, following in zip(fenced, [*fenced[1:], None], strict=True):
        if block.group(1) != "python":
            continue
        first_line = block.group(2).splitlines()[0]
        assert following is not None, first_line
        assert following.group(1) == "text", f"no ```text output after: {first_line}"
        assert not README[block.end() : following.start()].strip(), first_line
        pairs.append((block.group(2).strip(), following.group(2)))
    return pairs


_CHECKER = doctest.OutputChecker()
_OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize(
    ("code", "expected"), examples(), ids=lambda value: value.splitlines()[0][:40]
)
def test_python_examples_print_what_the_readme_says(code: str, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=90, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert _CHECKER.check_output(expected, result.stdout, _OPTIONS), (
        f"expected:\n{expected}\ngot:\n{result.stdout}"
    )


@pytest.mark.parametrize("code", blocks("py"), ids=lambda code: code.splitlines()[0][:40])
def test_illustrations_are_valid_python(code: str) -> None:
    ast.parse(code.replace("await ", ""))
