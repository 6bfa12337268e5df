"""The AI SDK (npm package ``ai``) as the judge of our UI message stream.

`install` puts the pinned ``ai`` into a temporary folder once per test session
(``npm install --no-save --prefix DIR``); `run_script` runs one of the ``.mjs``
scripts of this folder there with Node. Without ``node`` / ``npm`` the tests skip
with one line, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.requirements import require_executable

AI_VERSION = "6.0.333"
"""The newest ``ai`` whose ``engines`` allow Node 20 (``ai@7`` needs Node 22); protocol v1."""

HERE = Path(__file__).parent


@functools.cache
def _install() -> Path | str:
    folder = Path(tempfile.mkdtemp(prefix="rxtokens-ai-sdk-"))
    done = subprocess.run(
        [
            "npm",
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(folder),
            f"ai@{AI_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        return f"npm install ai@{AI_VERSION} failed: {done.stderr[-2000:]}"
    for script in HERE.glob("*.mjs"):
        shutil.copy(script, folder / script.name)
    return folder


def install() -> Path:
    """The folder holding ``node_modules/ai`` and the scripts (skip or fail without Node)."""
    for tool in ("node", "npm"):
        require_executable(tool, "apt install nodejs npm")
    folder = _install()
    if isinstance(folder, str):
        pytest.fail(folder)
    return folder


def run_script(
    folder: Path, script: str, *args: str, stdin: bytes = b"", timeout: float = 60
) -> Any:
    """Run ``node script args`` in `folder` and parse its JSON output."""
    done = subprocess.run(
        ["node", script, *args],
        cwd=folder,
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"node {script} failed ({done.returncode}): {done.stderr.decode()}")
    return json.loads(done.stdout)
