"""The AI SDK (npm package ``ai``) as the judge of our UI message stream.

`install` puts the pinned ``ai`` into a temporary folder once per test session
(``npm install --no-save --prefix DIR``); `run_script` runs one of the ``.mjs``
scripts of this folder there with Node. Without ``node`` / ``npm`` the tests skip
with one line, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from rxtokens.completion import CompletionBuilder
from rxtokens.tokens import Completion, StepBoundary, ToolResult
from tests.requirements import require_executable

AI_VERSION = "6.0.333"
"""The newest ``ai`` whose ``engines`` allow Node 20 (``ai@7`` needs Node 22); protocol v1."""

HERE = Path(__file__).parent


@functools.cache
def _install() -> Path | str:
    folder = Path(tempfile.mkdtemp(prefix="rxtokens-ai-sdk-"))
    atexit.register(shutil.rmtree, folder, True)
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


async def run_chat(folder: Path, config: dict[str, Any]) -> Any:
    """Run ``chat.mjs`` (the AI SDK's chat client) with `config`, without blocking the loop."""
    process = await asyncio.create_subprocess_exec(
        "node",
        "chat.mjs",
        json.dumps(config),
        cwd=folder,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise AssertionError(f"node chat.mjs failed ({process.returncode}): {err.decode()}")
    return json.loads(out)


# ---------------------------------------------------------------- comparing


def steps_of(tokens: list[Any]) -> list[tuple[Completion, list[tuple[Any, ...]]]]:
    """Per step (cut at StepBoundary): its Completion and its tool results."""
    steps: list[tuple[Completion, list[tuple[Any, ...]]]] = []
    builder, results = CompletionBuilder(), []
    for token in tokens:
        if type(token) is StepBoundary:
            steps.append((builder.build(strict=False), results))
            builder, results = CompletionBuilder(), []
        elif type(token) is ToolResult:
            results.append((token.call_id, token.name, token.result, token.error))
        else:
            builder.add(token)
    steps.append((builder.build(strict=False), results))
    return steps


def ui_summary(message: dict[str, Any]) -> dict[str, Any]:
    """What a UIMessage says: text, reasoning, tool calls with input and outputs, steps."""
    parts = message["parts"]
    tools = [
        {
            "id": p["toolCallId"],
            "name": p["type"][len("tool-") :],
            "input": p.get("input"),
            "state": p["state"],
            "output": p.get("output"),
            "error": p.get("errorText"),
        }
        for p in parts
        if p["type"].startswith("tool-")
    ]
    return {
        "text": "".join(p["text"] for p in parts if p["type"] == "text"),
        "reasoning": "".join(p["text"] for p in parts if p["type"] == "reasoning"),
        "tools": tools,
        "steps": sum(1 for p in parts if p["type"] == "step-start"),
    }


def completion_summary(tokens: list[Any]) -> dict[str, Any]:
    """What our Completions (one per step) and ToolResults say, in the same shape."""
    steps = steps_of(tokens)
    tools = []
    for completion, results in steps:
        outcome = {r[0]: r for r in results}
        for call in completion.tool_calls:
            _, _, result, error = outcome.get(call.id, (None, None, None, None))
            state = "input-available"
            if call.id in outcome:
                state = "output-error" if error is not None else "output-available"
            tools.append(
                {
                    "id": call.id,
                    "name": call.name,
                    "input": call.arguments,
                    "state": state,
                    "output": result,
                    "error": error,
                }
            )
    return {
        "text": "".join(c.text for c, _ in steps),
        "reasoning": "".join(c.reasoning for c, _ in steps),
        "tools": tools,
        "steps": len(steps),
    }
