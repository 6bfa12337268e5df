"""The web page in real headless Chromium, driven over the DevTools protocol (no extra deps).

Skipped when ``chromium`` is not installed (Debian: ``apt-get install -y chromium
chromium-driver``). Screenshots are saved to ``artifacts/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from rxtokens.providers import close_sessions
from rxtokens.server import app_token, create_app, start_server
from rxtokens.testing import ProviderServer, Reply
from rxtokens.testing.server import default_script

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

PROMPT = "Hello from the browser"
EXPECTED = default_script(PROMPT).text


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
        import base64

        data = (await self.call("Page.captureScreenshot", format="png"))["data"]
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        path.write_bytes(base64.b64decode(data))
        return path


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """Start headless Chromium; yield a session and the DevTools HTTP base URL."""
    assert CHROMIUM is not None
    # ignore_cleanup_errors: a helper process of chromium may still be writing its profile
    with tempfile.TemporaryDirectory(
        prefix="rxtokens-chromium-", ignore_cleanup_errors=True
    ) as profile:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM,
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
        from urllib.parse import quote

        async with session.put(f"{devtools}/json/new?{quote(url, safe='')}") as response:
            target = await response.json()
    async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
        page = Page(ws)
        await page.call("Page.enable")
        await page.call("Runtime.enable")
        yield page


async def test_the_page_streams_shares_and_resumes() -> None:
    seen: list[tuple[str, str | None]] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.endswith("/events"):
            seen.append(
                (
                    request.headers.get("Last-Event-ID") or "",
                    request.query.get("last_event_id"),
                )
            )
        return await handler(request)

    async with ProviderServer(default=Reply(delay=0.03)) as provider:
        app = create_app(upstream_options={"base_url": provider.base_url_for("openai")})
        app.middlewares.insert(0, record)
        token = app_token(app)
        runner = await start_server(app, port=0)
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with browser() as (session, devtools), open_page(session, devtools) as page:
                await page.call("Page.navigate", url=f"{base}/?token={token}")
                await page.wait_for("document.readyState === 'complete'")
                assert await page.js("location.search") == ""  # the token left the URL
                await page.js(
                    f"document.getElementById('prompt').value = {json.dumps(PROMPT)};"
                    "document.getElementById('send').click(); true"
                )
                await page.wait_for("document.getElementById('output').textContent.length > 40")
                stream_id = await page.wait_for("(/stream=([\\w-]+)/.exec(location.hash) || [])[1]")
                # a second tab on the same stream (its share link) sees the same text
                share = await page.js("document.getElementById('share').href")
                assert token not in share  # shared with the stream's read token
                async with open_page(session, devtools, share) as second:
                    await second.wait_for("document.readyState === 'complete'")
                    # reload the first tab mid-stream: it resumes where it was
                    before = await page.js("location.href")
                    await page.js("setTimeout(() => location.reload(), 0); true")
                    await page.wait_for(
                        "performance.getEntriesByType('navigation')[0].type === 'reload'"
                    )
                    await page.wait_for("document.readyState === 'complete'")
                    assert await page.js("location.href") == before
                    await page.wait_for("document.body.dataset.status === 'done'")
                    await second.wait_for("document.body.dataset.status === 'done'")
                    assert await second.js("document.getElementById('output').textContent") == (
                        EXPECTED
                    )
                    await second.screenshot("server_page_second_tab.png")
                assert await page.js("document.getElementById('output').textContent") == EXPECTED
                assert await page.js("document.getElementById('prompt').value") == PROMPT
                assert await page.js("document.getElementById('error').hidden") is True
                ttft = await page.js("document.getElementById('ttft').textContent")
                assert ttft.endswith(" ms")
                path = await page.screenshot("server_page.png")
                assert path.stat().st_size > 1000
        finally:
            await runner.cleanup()
            await close_sessions()
    assert len(provider.requests) == 1  # one upstream request for both tabs and the reload
    assert provider.requests[0].completed
    # the reloaded tab resumed after the last event it had (from sessionStorage)
    resumed = [q for _, q in seen if q]
    assert resumed, seen
    assert all(int(q) > 0 for q in resumed), seen
    assert stream_id
