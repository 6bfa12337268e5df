"""The app: bearer-token auth, read tokens, limits, CORS, error answers, configuration."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest

from rxtokens.providers import close_sessions
from rxtokens.server import app_token, create_app, start_server
from rxtokens.testing import Reply
from rxtokens.testing.server import default_script

from .server_helpers import read_events, running, token_text

EXPECTED = default_script("hi").text


async def test_auth_is_required_and_the_token_never_echoed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running() as srv:
        stream_id = await srv.start("hi")
        checks = [
            ("POST", "/v1/streams", {}),
            ("POST", "/v1/streams", {"Authorization": "Bearer wrong-token"}),
            ("GET", f"/v1/streams/{stream_id}", {}),
            ("GET", f"/v1/streams/{stream_id}/events", {"Authorization": "Basic abc"}),
            ("DELETE", f"/v1/streams/{stream_id}", {}),
            ("POST", "/v1/chat/completions", {}),
        ]
        for method, path, headers in checks:
            async with srv.session.request(
                method, srv.url(path), headers=headers, json={"prompt": "x"}
            ) as response:
                assert response.status == 401, (method, path)
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                text = await response.text()
                assert json.loads(text)["error"]["type"] == "authentication_error"
                assert srv.token not in text
        # ?token= is accepted on the GET routes of a stream (EventSource), not elsewhere
        async with srv.session.get(
            srv.url(f"/v1/streams/{stream_id}/events"), params={"token": srv.token}
        ) as response:
            assert response.status == 200
            assert token_text(await read_events(response)) == EXPECTED
        async with srv.session.post(
            srv.url("/v1/streams"), params={"token": srv.token}, json={"prompt": "x"}
        ) as response:
            assert response.status == 401
    assert srv.token not in caplog.text


async def test_read_tokens_read_one_stream_only() -> None:
    async with running() as srv:
        async with srv.session.post(
            srv.url("/v1/streams"), json={"prompt": "hi"}, headers=srv.auth
        ) as response:
            created = await response.json()
        other = await srv.start("other")
        read = {"Authorization": f"Bearer {created['read_token']}"}
        async with srv.session.get(srv.url(created["status_url"]), headers=read) as response:
            assert response.status == 200
        async with srv.session.get(
            srv.url(created["events_url"]), params={"token": created["read_token"]}
        ) as response:
            assert token_text(await read_events(response)) == EXPECTED
        for method, path in [
            ("GET", f"/v1/streams/{other}"),
            ("DELETE", created["status_url"]),
            ("POST", "/v1/streams"),
        ]:
            async with srv.session.request(
                method, srv.url(path), headers=read, json={"prompt": "x"}
            ) as response:
                assert response.status == 401, (method, path)


async def test_limits_answer_with_json_errors() -> None:
    async with running(Reply(pause_after=1, pause=None), max_body=200, max_streams=1) as srv:
        async with srv.session.post(
            srv.url("/v1/streams"), json={"prompt": "x" * 500}, headers=srv.auth
        ) as response:
            assert response.status == 413
            assert (await response.json())["error"]["type"] == "request_too_large"
        await srv.start("first")
        async with srv.session.post(
            srv.url("/v1/streams"), json={"prompt": "second"}, headers=srv.auth
        ) as response:
            assert response.status == 429
            body = await response.json()
            assert body["error"]["type"] == "too_many_streams"
            assert "max_streams" in body["error"]["message"]
        async with srv.session.post(
            srv.url("/v1/streams"),
            data="not json",
            headers={**srv.auth, "Content-Type": "application/json"},
        ) as response:
            assert response.status in (400, 429)
        async with srv.session.get(srv.url("/v1/streams/nope"), headers=srv.auth) as response:
            assert response.status == 404
            assert (await response.json())["error"]["type"] == "not_found"


async def test_client_limit_and_bad_bodies() -> None:
    async with running(Reply(pause_after=3, pause=None), max_clients=1) as srv:
        stream_id = await srv.start("hi")
        url = srv.url(f"/v1/streams/{stream_id}/events")
        async with srv.session.get(url, headers=srv.auth) as first:
            await read_events(first, limit=1)
            async with srv.session.get(url, headers=srv.auth) as second:
                assert second.status == 429
                assert (await second.json())["error"]["type"] == "too_many_clients"
        for body in (
            {},
            {"prompt": ""},
            {"prompt": "a", "messages": []},
            {"prompt": "a", "keep_alive": 1},
        ):
            async with srv.session.post(srv.url("/v1/streams"), json=body, headers=srv.auth) as r:
                assert r.status == 400, body
                assert (await r.json())["error"]["type"] == "invalid_request_error"
        async with srv.session.post(
            srv.url("/v1/streams"), json={"launch": "testing prompt=hi"}, headers=srv.auth
        ) as response:
            assert response.status == 403
            assert (await response.json())["error"]["type"] == "specs_not_allowed"


async def test_cors_is_closed_by_default_and_configurable() -> None:
    preflight = {
        "Origin": "http://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    async with running() as srv:
        async with srv.session.options(srv.url("/v1/streams"), headers=preflight) as response:
            assert response.status == 403
            assert "Access-Control-Allow-Origin" not in response.headers
        async with srv.session.post(
            srv.url("/v1/streams"),
            json={"prompt": "hi"},
            headers={**srv.auth, "Origin": "http://evil.example"},
        ) as response:
            assert "Access-Control-Allow-Origin" not in response.headers
    async with running(cors_origins=["http://ok.example"]) as srv:
        ok = {**preflight, "Origin": "http://ok.example"}
        async with srv.session.options(srv.url("/v1/streams"), headers=ok) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "http://ok.example"
            assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
        async with srv.session.options(srv.url("/v1/streams"), headers=preflight) as response:
            assert response.status == 403


def test_error_messages_for_clients_mask_secrets() -> None:
    from rxtokens.server.errors import _describe

    error = RuntimeError("upstream said: bad key sk-proj-abcdefghijkl (token the-token-123)")
    kind, message = _describe(error, ("the-token-123",))
    assert kind == "RuntimeError"
    assert message == "upstream said: bad key *** (token ***)"


def test_invalid_configuration_is_rejected() -> None:
    from rxtokens.errors import ConfigError

    for kwargs, named in (
        ({"upstream": "nope"}, "'nope'"),
        ({"upstream": "unknown:model"}, "'unknown:model'"),
        ({"max_streams": 0}, "got 0"),
        ({"heartbeat": -1}, "got -1"),
        ({"pipeline": [1]}, "got 1"),
        ({"pipeline": 5}, "got 5"),
        ({"upstream_options": 5}, "got 5"),
        ({"retention": float("nan")}, "got nan"),
    ):
        with pytest.raises(ConfigError, match=named):  # names the bad value
            create_app(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least 8") as info:
        create_app(token="short")
    assert "short" not in str(info.value)  # a secret is not echoed


async def test_the_default_upstream_is_a_bundled_demo_provider() -> None:
    app = create_app(demo_delay=0)
    runner = await start_server(app, port=0)
    try:
        port = runner.addresses[0][1]
        headers = {"Authorization": f"Bearer {app_token(app)}"}
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"http://127.0.0.1:{port}/v1/streams", json={"prompt": "demo"}, headers=headers
            ) as response:
                stream_id = (await response.json())["id"]
            async with session.get(
                f"http://127.0.0.1:{port}/v1/streams/{stream_id}/events", headers=headers
            ) as response:
                text = token_text(await read_events(response))
    finally:
        await runner.cleanup()
        await close_sessions()
    assert text == default_script("demo").text
