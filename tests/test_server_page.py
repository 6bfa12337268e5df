"""The web page: how it is served, and the page itself in real headless Chromium.

The browser test drives Chromium over the DevTools protocol (no extra deps,
helpers in ``tests/chromium.py``); it is skipped when ``chromium`` is not
installed (Debian: ``apt-get install -y chromium chromium-driver``). Screenshots
are saved to ``artifacts/``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from rxtokens.providers import close_sessions
from rxtokens.server import app_token, create_app, start_server
from rxtokens.testing import ProviderServer, Reply
from rxtokens.testing.server import default_script

from .chromium import browser, open_page, require_chromium
from .server_helpers import running

PROMPT = "Hello from the browser"
EXPECTED = default_script(PROMPT).text


async def test_the_page_streams_shares_and_resumes() -> None:
    require_chromium()  # skipped locally without it, a failure in CI
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


async def test_the_page_is_served_with_a_strict_policy() -> None:
    async with running() as srv:
        async with srv.session.get(srv.url("/"), params={"token": srv.token}) as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            html = await response.text()
            assert srv.token not in html
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
            assert response.headers["Referrer-Policy"] == "no-referrer"
        for name in ("app.js", "events.js", "style.css"):
            async with srv.session.get(srv.url(f"/static/{name}")) as response:
                assert response.status == 200
        async with srv.session.get(srv.url("/static/..%2Fserver.py")) as response:
            assert response.status == 404
