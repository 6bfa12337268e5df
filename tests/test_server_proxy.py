"""The OpenAI-compatible proxy over HTTP (the official client: test_server_proxy_openai.py)."""

from __future__ import annotations

import asyncio

from rxtokens.testing import Reply

from .server_helpers import running


async def test_the_proxy_cancels_the_upstream_when_its_client_leaves() -> None:
    async with running(Reply(delay=0.02)) as srv:
        async with srv.session.post(
            srv.url("/v1/chat/completions"),
            headers=srv.auth,
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        ) as response:
            assert response.status == 200
            await response.content.readany()
        record = await srv.provider.wait_ended(0)
        assert record.disconnected
        assert not record.completed
        for _ in range(200):
            if srv.state.chats == 0:
                break
            await asyncio.sleep(0.01)
        assert srv.state.chats == 0
