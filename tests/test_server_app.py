"""The app: bearer-token auth, read tokens, limits, CORS, error answers, configuration."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
from pathlib import Path

import aiohttp
import pytest

from rxtokens.errors import ConfigError
from rxtokens.providers import close_sessions
from rxtokens.server import app_token, create_app, start_server
from rxtokens.testing import Reply
from rxtokens.testing.server import default_script

from .server_helpers import Running, read_events, running, token_text

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


# --- hostile input (issue 15) -------------------------------------------------------------

DEEP_JSON = '{"prompt": ' + "[" * 20_000 + "]" * 20_000 + "}"
DEEP_CHAT = '{"messages": ' + "[" * 20_000 + "]" * 20_000 + "}"


async def _raw_request(srv: Running, head: bytes) -> bytes:
    """Send raw request bytes (headers no client library would send) and read the answer."""
    reader, writer = await asyncio.open_connection(srv.server.host, srv.server.port)
    try:
        writer.write(head)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


def _gguf_without_llama_cpp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A file that passes the GGUF check, with llama-cpp-python 'not installed'."""
    from rxtokens.errors import ProviderNotInstalledError

    llama = importlib.import_module("rxtokens.providers.llama")  # the function shadows it

    def missing() -> None:
        raise ProviderNotInstalledError("llama-cpp-python", "local")

    monkeypatch.setattr(llama, "_import_llama_cpp", missing)
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF" + bytes(64))
    return str(path)


async def test_bad_requests_to_every_route_are_4xx_json_errors_without_a_traceback(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    model = _gguf_without_llama_cpp(tmp_path, monkeypatch)
    async with running(allow_specs=True) as srv:
        sid = await srv.start("hi")
        json_type = {"Content-Type": "application/json"}
        chat = "/v1/chat/completions"
        events = f"/v1/streams/{sid}/events"
        table: list[tuple[str, str, dict[str, str], str | None, int]] = [
            # method, path, headers, body, expected status
            ("POST", "/v1/streams", json_type, DEEP_JSON, 400),
            ("POST", chat, json_type, DEEP_CHAT, 400),
            ("POST", "/v1/streams", json_type, "{not json", 400),
            ("POST", "/v1/streams", json_type, "[1, 2]", 400),
            ("POST", "/v1/streams", {"Content-Type": "text/plain"}, "hi", 415),
            ("POST", "/v1/streams", json_type, '{"prompt": 42}', 400),
            ("POST", "/v1/streams", json_type, '{"prompt": "x", "keep_alive": "y"}', 400),
            ("POST", "/v1/streams", json_type, '{"messages": "x"}', 400),
            ("POST", "/v1/streams", json_type, '{"launch": 42}', 400),
            ("POST", "/v1/streams", json_type, '{"spec": [1]}', 400),
            (
                "POST",
                "/v1/streams",
                json_type,
                '{"launch": "testing prompt=' + "[" * 5000 + '"}',
                400,
            ),
            (
                "POST",
                "/v1/streams",
                json_type,
                json.dumps({"launch": "testing prompt=" + "[" * 5000 + "]" * 5000}),
                400,
            ),
            (
                "POST",
                "/v1/streams",
                json_type,
                json.dumps({"launch": f"llama:{model} prompt=hi"}),
                400,
            ),
            ("POST", "/v1/streams", json_type, "x" * 70_000, 413),
            ("POST", chat, json_type, '{"messages": []}', 400),
            ("POST", chat, json_type, '{"messages": [{"role": "user"}], "model": 5}', 400),
            (
                "POST",
                chat,
                json_type,
                json.dumps({"messages": [{"role": "user", "content": "hi"}], "n": 5000}),
                400,
            ),
            ("GET", events, {"Last-Event-ID": "abc"}, None, 400),
            ("GET", events, {"Last-Event-ID": "9" * 30}, None, 400),
            ("GET", events + "?last_event_id=%C2%B2", {}, None, 400),
            ("GET", "/v1/streams/nope", {}, None, 404),
            ("GET", "/v1/streams/nope/events", {}, None, 404),
            ("DELETE", "/v1/streams/nope", {}, None, 404),
            ("PUT", "/v1/streams", {}, None, 405),
            ("GET", "/v1/nothing-here", {}, None, 404),
            ("GET", "/static/..%2F..%2Fetc%2Fpasswd", {}, None, 404),
        ]
        for method, path, headers, body, status in table:
            async with srv.session.request(
                method, srv.url(path), headers={**srv.auth, **headers}, data=body
            ) as response:
                text = await response.text()
                assert response.status == status, (method, path, body and body[:40], text)
                error = json.loads(text)["error"]
                assert error["type"], text
                assert error["message"], text
        # headers a client library would not send: raw bytes
        raw = [
            (f"GET {events} HTTP/1.1\r\nLast-Event-ID: ²\r\n", 400),
            (f"GET {events} HTTP/1.1\r\nLast-Event-ID: ١٢\r\n", 400),
            ("GET /v1/models HTTP/1.1\r\nAuthorization: Bearer \udcff\udcfe\r\n", 401),
            (f"GET {events} HTTP/1.1\r\nAuthorization: Bearer \udcff\udcfe\r\n", 401),
        ]
        for head, status in raw:
            head = head.replace("\r\nLast", f"\r\nAuthorization: Bearer {srv.token}\r\nLast")
            answer = await _raw_request(
                srv,
                (head + "Host: x\r\nConnection: close\r\n\r\n").encode("utf-8", "surrogateescape"),
            )
            assert answer.startswith(f"HTTP/1.1 {status} ".encode()), (head, answer[:80])
            assert b'"error"' in answer
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_client_chosen_base_urls_are_refused_with_403(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-servers-own-openai-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "the-servers-own-anthropic-key")
    monkeypatch.setenv("GEMINI_API_KEY", "the-servers-own-gemini-key")
    async with running(allow_specs=True) as srv:
        elsewhere = srv.provider.base_url_for("openai")  # a host the client chose
        for launch in (
            f"openai:gpt-4o-mini prompt=x base_url={elsewhere}",
            f"anthropic:claude-x prompt=x base_url={srv.provider.base_url_for('anthropic')}",
            f"gemini:gemini-x prompt=x base_url={srv.provider.base_url_for('gemini')}",
        ):
            async with srv.session.post(
                srv.url("/v1/streams"), json={"launch": launch}, headers=srv.auth
            ) as response:
                assert response.status == 403, await response.text()
                assert (await response.json())["error"]["type"] == "base_url_not_allowed"
        await asyncio.sleep(0.05)
        assert srv.provider.requests == []  # no key was sent anywhere
    # an allowed base URL works
    async with running(allow_specs=True, allow_provider=True) as srv:
        base = srv.provider.base_url_for("openai")
        async with srv.session.post(
            srv.url("/v1/streams"),
            json={"launch": f"testing prompt=hi base_url={base}/"},
            headers=srv.auth,
        ) as response:
            assert response.status == 201, await response.text()


async def test_every_configured_secret_is_masked_by_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "plain-anthropic-value-42"  # not shaped like a key
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    reply = Reply(status=400, error_message=f"echo {secret} and upstream-key-xyz-1")
    async with running(reply, api_key="upstream-key-xyz-1") as srv:
        assert srv.token not in repr(srv.state)
        assert "upstream-key-xyz-1" not in repr(srv.state)
        assert "***" in repr(srv.state)
        stream_id = await srv.start("hi")
        async with srv.session.get(
            srv.url(f"/v1/streams/{stream_id}/events"), headers=srv.auth
        ) as response:
            events = await read_events(response)
        assert events[-1].event == "error"
        status = await srv.status(stream_id)
        async with srv.session.post(
            srv.url("/v1/chat/completions"),
            json={"messages": [{"role": "user", "content": "hi"}]},
            headers=srv.auth,
        ) as response:
            chat = await response.text()
        for text in (events[-1].data, json.dumps(status), chat, repr(srv.state.streams)):
            assert secret not in text, text
            assert "upstream-key-xyz-1" not in text, text
        assert "echo ***" in events[-1].data


async def test_one_read_token_cannot_take_everyones_slots() -> None:
    async with running(Reply(delay=0.05), max_clients=20) as srv:
        async with srv.session.post(
            srv.url("/v1/streams"), json={"prompt": "a"}, headers=srv.auth
        ) as response:
            created = await response.json()
        url = srv.url(created["events_url"])
        reader = {"Authorization": f"Bearer {created['read_token']}"}
        opened = []
        statuses = []
        for _ in range(20):
            response = await srv.session.get(url, headers=reader)
            statuses.append(response.status)
            opened.append(response)
        try:
            assert statuses.count(200) == 5  # max_clients // 4 per read token
            assert set(statuses[5:]) == {429}
            other = await srv.start("b")  # the owner's other streams still answer
            async with srv.session.get(
                srv.url(f"/v1/streams/{other}/events"), headers=srv.auth
            ) as response:
                assert response.status == 200
        finally:
            for response in opened:
                response.close()
    async with running(Reply(delay=0.05), max_clients=20, max_clients_per_stream=2) as srv:
        sid = await srv.start("a")
        url = srv.url(f"/v1/streams/{sid}/events")
        first = await srv.session.get(url, headers=srv.auth)
        second = await srv.session.get(url, headers=srv.auth)
        async with srv.session.get(url, headers=srv.auth) as third:
            assert (first.status, second.status, third.status) == (200, 200, 429)
            assert "max_clients_per_stream" in (await third.json())["error"]["message"]
        first.close()
        second.close()


def test_an_upstream_without_its_key_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="set OPENAI_API_KEY"):
        create_app(upstream="openai:gpt-4o-mini")
    create_app(upstream="openai:m", upstream_options={"base_url": "http://127.0.0.1:9/v1"})
    create_app(upstream="openai:m", upstream_options={"api_key": "sk-test"})
