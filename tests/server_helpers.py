"""Shared helpers of the server tests: a running app against the loopback provider."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from rxtokens.providers import close_sessions
from rxtokens.server import (
    STATE_KEY,
    RedactingAccessLogger,
    ServerState,
    app_token,
    create_app,
)
from rxtokens.sse import SseEvent, SseParser
from rxtokens.testing import ProviderServer, Reply


@dataclass
class Running:
    """A server under test, its upstream and an HTTP session."""

    server: TestServer
    provider: ProviderServer
    session: aiohttp.ClientSession
    token: str

    @property
    def state(self) -> ServerState:
        return self.server.app[STATE_KEY]

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def start(self, prompt: str = "hi", **body: Any) -> str:
        async with self.session.post(
            self.url("/v1/streams"), json={"prompt": prompt, **body}, headers=self.auth
        ) as response:
            assert response.status == 201, await response.text()
            return str((await response.json())["id"])

    async def status(self, stream_id: str) -> dict[str, Any]:
        async with self.session.get(
            self.url(f"/v1/streams/{stream_id}"), headers=self.auth
        ) as response:
            assert response.status == 200, await response.text()
            result: dict[str, Any] = await response.json()
            return result


@contextlib.asynccontextmanager
async def running(
    reply: Reply | None = None,
    *,
    allow_provider: bool = False,
    api_key: str | None = None,
    upstream_provider: str | None = None,
    **options: Any,
) -> AsyncIterator[Running]:
    """Start the loopback provider, the app and a client session (all closed at the end).

    `allow_provider` adds the loopback provider's URL to ``allow_base_urls``;
    `api_key` is the upstream key the app is configured with; `upstream_provider`
    (``gemini``, ``openai_responses`` ...) makes the app's upstream that provider,
    served by the loopback provider in its wire format (default: the testing one).
    """
    async with ProviderServer(default=reply or Reply()) as provider:
        upstream = {"base_url": provider.base_url_for(upstream_provider or "openai")}
        if upstream_provider is not None:
            options["upstream"] = f"{upstream_provider}:test-model"
            api_key = api_key or "test-key"
        if api_key is not None:
            upstream["api_key"] = api_key
        options.setdefault("upstream_options", upstream)
        if allow_provider:
            options["allow_base_urls"] = [provider.base_url_for("openai")]
        app = create_app(**options)
        token = app_token(app) or ""
        server = TestServer(app)
        await server.start_server(access_log_class=RedactingAccessLogger)
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        try:
            yield Running(server, provider, session, token)
        finally:
            await session.close()
            await server.close()
            await close_sessions()


async def read_events(
    response: aiohttp.ClientResponse, limit: int | None = None, parser: SseParser | None = None
) -> list[SseEvent]:
    """Events of an SSE response until it ends (or `limit` events arrived)."""
    parser = parser or SseParser()
    events: list[SseEvent] = []
    async for chunk in response.content.iter_any():
        events.extend(parser.feed(chunk))
        if limit is not None and len(events) >= limit:
            return events[:limit]
    events.extend(parser.close())
    return events


def token_text(events: list[SseEvent]) -> str:
    """The joined text of the ``text`` events."""
    return "".join(json.loads(e.data)["text"] for e in events if e.event == "text")


async def until(
    condition: Callable[[], object],
    timeout: float = 20.0,  # noqa: ASYNC109 (a poll count, not a deadline to wrap)
    every: float = 0.01,
) -> None:
    """Poll `condition` every `every` seconds until it is true (TimeoutError after `timeout`)."""
    for _ in range(max(1, round(timeout / every))):
        if condition():
            return
        await asyncio.sleep(every)
    raise TimeoutError(f"condition not met within {timeout} s")
