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


async def test_upstream_4xx_is_answered_with_that_status_and_502_kept_for_the_servers_own() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    cases = [
        (Reply(status=400, error_message="bad temperature"), 400, "bad temperature"),
        (Reply(status=404, error_message="no model m"), 404, "no model m"),
        (Reply(status=422, error_message="unprocessable"), 422, "unprocessable"),
        (Reply(status=401), 502, "API key"),  # the server's own key was refused
        (Reply(status=500, error_message="upstream broke"), 502, "upstream broke"),
    ]
    for reply, status, message in cases:
        async with running(reply) as srv:
            for streaming in (False, True):
                async with srv.session.post(
                    srv.url("/v1/chat/completions"),
                    headers=srv.auth,
                    json={**body, "stream": streaming},
                ) as response:
                    assert response.status == status, (reply.status, streaming)
                    error = (await response.json())["error"]
                    assert message in error["message"]
