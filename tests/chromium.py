"""Headless Chromium driven over the DevTools protocol (no extra dependency), for browser tests.

`require_chromium()` finds Chromium (a missing one skips the test locally and fails
it in CI, see ``tests/requirements.py``), `browser()` starts it,
`open_page()` opens a tab as a `Page` (``call`` a DevTools method, evaluate ``js``,
``wait_for`` a condition, take a ``screenshot`` into ``artifacts/``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from .requirements import require_executable


def require_chromium() -> str:
    """The Chromium executable: skip the test when it is missing (fail in CI)."""
    found = shutil.which("chromium-browser")  # another distribution's name
    return found or require_executable("chromium", "Debian: apt-get install chromium")


ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

_NAVIGATING = ("navigated or closed", "Cannot find context", "Execution context was destroyed")
"""DevTools errors of an evaluation that raced a navigation: polling simply tries again."""


class Page:
    """One browser tab over a DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        call_id = self.next_id
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        async with asyncio.timeout(30):
            while True:
                message = await self.ws.receive_json()
                if message.get("id") == call_id:
                    if "error" in message:
                        raise RuntimeError(f"{method}: {message['error']}")
                    result: dict[str, Any] = message.get("result", {})
                    return result

    async def js(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, within: float = 30.0) -> Any:
        try:
            async with asyncio.timeout(within):
                while True:
                    try:
                        value = await self.js(expression)
                    except RuntimeError as exc:  # evaluated while the tab was (re)loading
                        if not any(m in str(exc) for m in _NAVIGATING):
                            raise
                        value = None
                    if value:
                        return value
                    await asyncio.sleep(0.05)
        except TimeoutError:
            await self.screenshot("server_page_failure.png")
            state = await self.js(
                "JSON.stringify({url: location.href, status: document.body.dataset.status, "
                "error: document.getElementById('error').textContent, "
                "output: document.getElementById('output').textContent.slice(0, 200)})"
            )
            raise AssertionError(f"timed out waiting for {expression}; page: {state}") from None

    async def screenshot(self, name: str) -> Path:
        data = (await self.call("Page.captureScreenshot", format="png"))["data"]
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        path.write_bytes(base64.b64decode(data))
        return path


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """Start headless Chromium; yield a session and the DevTools HTTP base URL."""
    chromium = require_chromium()
    # ignore_cleanup_errors: a helper process of chromium may still be writing its profile
    with tempfile.TemporaryDirectory(
        prefix="rxtokens-chromium-", ignore_cleanup_errors=True
    ) as profile:
        proc = await asyncio.create_subprocess_exec(
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1000,760",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped together below
        )
        session = aiohttp.ClientSession()
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            async with asyncio.timeout(60):
                while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
                    if proc.returncode is not None:
                        pytest.fail(f"chromium exited with {proc.returncode}")
                    await asyncio.sleep(0.05)
            port = port_file.read_text().split("\n")[0].strip()
            yield session, f"http://127.0.0.1:{port}"
        finally:
            await session.close()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # the group of the chromium we started
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


@contextlib.asynccontextmanager
async def open_page(
    session: aiohttp.ClientSession, devtools: str, url: str | None = None
) -> AsyncIterator[Page]:
    if url is None:
        target = None
        async with asyncio.timeout(30):
            while target is None:  # the first tab may not be listed yet
                async with session.get(f"{devtools}/json/list") as response:
                    targets = await response.json()
                target = next((t for t in targets if t["type"] == "page"), None)
                if target is None:
                    await asyncio.sleep(0.05)
    else:
        async with session.put(f"{devtools}/json/new?{quote(url, safe='')}") as response:
            target = await response.json()
    async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
        page = Page(ws)
        await page.call("Page.enable")
        await page.call("Runtime.enable")
        yield page
