"""The SSE server: streams, resumption, cancellation, retention, auth, limits, CORS."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest

from rxtokens.providers import close_sessions
from rxtokens.server import (
    ChatChunkEncoder,
    app_token,
    chat_completion_body,
    create_app,
    start_server,
)
from rxtokens.sse import SseParser
from rxtokens.testing import Reply
from rxtokens.testing.server import default_script
from rxtokens.tokens import Completion, Finish, TextDelta, ToolCall, ToolCallDelta, Usage

from .server_helpers import read_events, running, token_text

EXPECTED = default_script("hi").text


async def test_events_then_done_with_sequence_ids() -> None:
    async with running() as srv:
        stream_id = await srv.start("hi")
        parser = SseParser()
        async with srv.session.get(
            srv.url(f"/v1/streams/{stream_id}/events"), headers=srv.auth
        ) as response:
            assert response.status == 200
            assert response.content_type == "text/event-stream"
            events = await read_events(response, parser=parser)
        assert parser.reconnection_time == 2000  # retry: sent first
        tokens, end = events[:-1], events[-1]
        assert [int(e.id) for e in tokens] == list(range(1, len(tokens) + 1))
        assert {e.event for e in tokens} >= {"text", "finish", "usage"}
        assert token_text(events) == EXPECTED
        assert end.event == "done"
        assert end.id == str(len(tokens) + 1)
        assert json.loads(end.data)["text"] == EXPECTED
        status = await srv.status(stream_id)
        assert status["status"] == "done"
        assert status["completion"]["text"] == EXPECTED
        assert status["seq"] == len(tokens)
        # reconnecting after the terminal event: 204 tells EventSource to stop
        async with srv.session.get(
            srv.url(f"/v1/streams/{stream_id}/events"),
            headers={**srv.auth, "Last-Event-ID": end.id},
        ) as response:
            assert response.status == 204


async def test_many_clients_share_one_upstream_request() -> None:
    async with running(Reply(delay=0.002)) as srv:
        stream_id = await srv.start("hi")

        async def client() -> str:
            async with srv.session.get(
                srv.url(f"/v1/streams/{stream_id}/events"), headers=srv.auth
            ) as response:
                return token_text(await read_events(response))

        texts = await asyncio.gather(*(client() for _ in range(5)))
        assert texts == [EXPECTED] * 5
        assert len(srv.provider.requests) == 1


@pytest.mark.parametrize("cut", [0, 1, 2, 7, 30, 61, -1])
@pytest.mark.parametrize("how", ["header", "query"])
async def test_resume_after_disconnect_has_no_gap_and_no_duplicate(cut: int, how: str) -> None:
    async with running(Reply(delay=0.001)) as srv:
        stream_id = await srv.start("hi")
        url = srv.url(f"/v1/streams/{stream_id}/events")
        first: list[Any] = []
        if cut:
            async with srv.session.get(url, headers=srv.auth) as response:
                first = await read_events(response, limit=cut if cut > 0 else None)
            if cut < 0:
                first = first[:-1]  # lost the terminal event: resume after the last token
        last = first[-1].id if first else ""
        if how == "header":
            headers = {**srv.auth, "Last-Event-ID": last}
            params = {}
        else:
            headers = srv.auth
            params = {"last_event_id": last}
        async with srv.session.get(url, headers=headers, params=params) as response:
            rest = await read_events(response)
        ids = [int(e.id) for e in first + rest[:-1]]
        assert ids == list(range(1, len(ids) + 1))  # no gap, no duplicate
        assert token_text(first) + token_text(rest) == EXPECTED
        assert rest[-1].event == "done"


async def test_header_wins_over_query_and_bad_ids_are_rejected() -> None:
    async with running() as srv:
        stream_id = await srv.start("hi")
        url = srv.url(f"/v1/streams/{stream_id}/events")
        async with srv.session.get(
            url, headers={**srv.auth, "Last-Event-ID": "3"}, params={"last_event_id": "1"}
        ) as response:
            events = await read_events(response)
        assert events[0].id == "4"
        async with srv.session.get(url, headers={**srv.auth, "Last-Event-ID": "abc"}) as response:
            assert response.status == 400
            assert (await response.json())["error"]["type"] == "invalid_request_error"


async def test_last_client_leaving_cancels_the_upstream() -> None:
    async with running(Reply(delay=0.02), grace=0) as srv:
        stream_id = await srv.start("hi")
        async with srv.session.get(
            srv.url(f"/v1/streams/{stream_id}/events"), headers=srv.auth
        ) as response:
            await read_events(response, limit=2)
        record = await srv.provider.wait_ended(0)
        assert record.disconnected
        assert not record.completed
        for _ in range(500):
            status = await srv.status(stream_id)
            if status["status"] != "running":
                break
            await asyncio.sleep(0.01)
        assert status["status"] == "cancelled"
        assert status["error"]["type"] == "cancelled"


async def test_grace_period_lets_a_client_come_back() -> None:
    async with running(Reply(delay=0.005), grace=30) as srv:
        stream_id = await srv.start("hi")
        url = srv.url(f"/v1/streams/{stream_id}/events")
        async with srv.session.get(url, headers=srv.auth) as response:
            first = await read_events(response, limit=3)
        async with srv.session.get(
            url, headers={**srv.auth, "Last-Event-ID": first[-1].id}
        ) as response:
            rest = await read_events(response)
        assert token_text(first) + token_text(rest) == EXPECTED
        assert srv.provider.requests[0].completed


async def test_keep_alive_runs_to_completion_without_clients() -> None:
    async with running(Reply(delay=0.01), grace=0) as srv:
        stream_id = await srv.start("hi", keep_alive=True)
        async with srv.session.get(
            srv.url(f"/v1/streams/{stream_id}/events"), headers=srv.auth
        ) as response:
            await read_events(response, limit=2)
        record = await srv.provider.wait_ended(0)
        assert record.completed
        assert not record.disconnected
        final = srv.state.streams[stream_id].final
        assert final is not None
        assert (await final).text == EXPECTED
        await asyncio.sleep(0)  # the done-callback runs
        status = await srv.status(stream_id)
        assert status["status"] == "done"
        assert status["completion"]["text"] == EXPECTED
        async with srv.session.get(
            srv.url(f"/v1/streams/{stream_id}/events"), headers=srv.auth
        ) as response:
            assert token_text(await read_events(response)) == EXPECTED


async def test_ended_streams_are_purged_after_retention() -> None:
    async with running(retention=0.05) as srv:
        stream_id = await srv.start("hi")
        final = srv.state.streams[stream_id].final
        assert final is not None
        await final
        for _ in range(500):
            async with srv.session.get(
                srv.url(f"/v1/streams/{stream_id}"), headers=srv.auth
            ) as response:
                if response.status == 404:
                    body = await response.json()
                    break
            await asyncio.sleep(0.01)
        assert body["error"]["type"] == "not_found"
        assert stream_id not in srv.state.streams


async def test_delete_cancels_and_clients_get_an_error_event() -> None:
    async with running(Reply(delay=0.02), grace=30) as srv:
        stream_id = await srv.start("hi")
        async with srv.session.get(
            srv.url(f"/v1/streams/{stream_id}/events"), headers=srv.auth
        ) as response:
            head = await read_events(response, limit=1)
            async with srv.session.delete(
                srv.url(f"/v1/streams/{stream_id}"), headers=srv.auth
            ) as deleted:
                assert deleted.status == 200
            rest = await read_events(response)
        end = rest[-1]
        assert end.event == "error"
        body = json.loads(end.data)
        assert body["type"] == "cancelled"
        assert body["partial"]["text"] == token_text(head + rest)
        record = await srv.provider.wait_ended(0)
        assert record.disconnected


async def test_upstream_failure_is_an_error_event_with_the_partial_text() -> None:
    async with running(Reply(delay=0.001, drop_after=3000)) as srv:
        stream_id = await srv.start("hi")
        async with srv.session.get(
            srv.url(f"/v1/streams/{stream_id}/events"), headers=srv.auth
        ) as response:
            events = await read_events(response)
        end = events[-1]
        assert end.event == "error"
        body = json.loads(end.data)
        assert body["type"] in ("ConnectionLostError", "TruncatedStreamError")
        assert body["partial"]["text"] == token_text(events)
        assert token_text(events)  # some text arrived before the drop
        status = await srv.status(stream_id)
        assert status["status"] == "error"


async def test_heartbeat_comments_keep_idle_streams_alive() -> None:
    async with running(Reply(pause_after=2, pause=None), heartbeat=0.02, grace=0) as srv:
        stream_id = await srv.start("hi")
        async with srv.session.get(
            srv.url(f"/v1/streams/{stream_id}/events"), headers=srv.auth
        ) as response:
            seen = b""
            while seen.count(b": ping\n\n") < 2:
                seen += await response.content.readany()
        assert seen.startswith(b"retry: 2000\n\n")


# --------------------------------------------------------------------------- security


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


async def test_specs_and_launch_strings_when_allowed() -> None:
    async with running(allow_specs=True) as srv:
        base = srv.provider.base_url_for("openai")
        launch = f"testing prompt=hi base_url={base} ! redact pattern=rxtokens replacement=RX"
        spec = {
            "source": {"provider": "testing", "prompt": "hi", "params": {"base_url": base}},
            "operators": [
                {"name": "redact", "params": {"pattern": "rxtokens", "replacement": "RX"}}
            ],
        }
        for body in ({"launch": launch}, {"spec": spec}):
            async with srv.session.post(srv.url("/v1/streams"), json=body, headers=srv.auth) as r:
                assert r.status == 201, await r.text()
                stream_id = (await r.json())["id"]
            async with srv.session.get(
                srv.url(f"/v1/streams/{stream_id}/events"), headers=srv.auth
            ) as response:
                text = token_text(await read_events(response))
            assert text == EXPECTED.replace("rxtokens", "RX")
        async with srv.session.post(
            srv.url("/v1/streams"), json={"launch": "testing prompt=hi ! nope"}, headers=srv.auth
        ) as response:
            assert response.status == 400
            assert "nope" in (await response.json())["error"]["message"]


async def test_the_page_is_served_with_a_strict_policy() -> None:
    async with running() as srv:
        async with srv.session.get(srv.url("/"), params={"token": srv.token}) as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            html = await response.text()
            assert srv.token not in html
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
            assert response.headers["Referrer-Policy"] == "no-referrer"
        for name in ("app.js", "style.css"):
            async with srv.session.get(srv.url(f"/static/{name}")) as response:
                assert response.status == 200
        async with srv.session.get(srv.url("/static/..%2Fserver.py")) as response:
            assert response.status == 404


async def test_access_log_masks_tokens(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    app = create_app(token="the-secret-token")
    runner = await start_server(app, port=0)
    try:
        port = runner.addresses[0][1]
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://127.0.0.1:{port}/v1/streams/x/events", params={"token": "the-secret-token"}
            ) as response,
        ):
            assert response.status == 404
    finally:
        await runner.cleanup()
    assert "/v1/streams/x/events?token=***" in caplog.text
    assert "the-secret-token" not in caplog.text


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


# --------------------------------------------------------------------------- encoders


def test_chat_chunk_encoder_maps_tokens_to_openai_chunks() -> None:
    enc = ChatChunkEncoder("m", include_usage=True, chunk_id="chatcmpl-x", created=1)
    chunks = [
        c
        for token in [
            TextDelta("Hi"),
            ToolCallDelta(0, "call_1", "f", '{"a":'),
            ToolCallDelta(0, None, None, "1}"),
            ToolCall(0, "call_1", "f", {"a": 1}),
            ToolCall(1, None, "g", {}),
            Usage(3, 4),
            Finish("tool_use"),
        ]
        for c in enc.encode(token)
    ] + enc.finish()
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": "Hi"}
    assert deltas[1]["tool_calls"][0] == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"arguments": '{"a":', "name": "f"},
    }
    assert deltas[2]["tool_calls"][0] == {"index": 0, "function": {"arguments": "1}"}}
    assert deltas[3]["tool_calls"][0]["function"] == {"name": "g", "arguments": "{}"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_chat_completion_body() -> None:
    completion = Completion(
        text="",
        tool_calls=[ToolCall(0, "c", "f", {"x": 1})],
        finish_reason="tool_use",
        usage=Usage(1, 2),
    )
    body = chat_completion_body(completion, "m", chunk_id="chatcmpl-1")
    message = body["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x": 1}'}
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["usage"]["total_tokens"] == 3


# --------------------------------------------------------------------------- more lifecycle


async def test_tokens_emitted_on_a_worker_thread_reach_every_client() -> None:
    import threading

    import reactivex

    words = [f"w{i} " for i in range(200)]

    def upstream(_prompt: Any, _params: dict[str, Any]) -> Any:
        def subscribe(observer: Any, scheduler: Any = None) -> Any:
            def work() -> None:
                for word in words:
                    observer.on_next(TextDelta(word))
                observer.on_next(Finish("stop"))
                observer.on_completed()

            thread = threading.Thread(target=work)
            thread.start()
            return reactivex.disposable.Disposable()

        return reactivex.create(subscribe)

    async with running(upstream=upstream) as srv:
        stream_id = await srv.start("hi")

        async def client() -> str:
            async with srv.session.get(
                srv.url(f"/v1/streams/{stream_id}/events"), headers=srv.auth
            ) as response:
                return token_text(await read_events(response))

        assert await asyncio.gather(client(), client()) == ["".join(words)] * 2


async def test_a_stream_nobody_reads_is_cancelled_after_start_timeout() -> None:
    async with running(Reply(delay=0.05), start_timeout=0.05) as srv:
        stream_id = await srv.start("hi")
        final = srv.state.streams[stream_id].final
        assert final is not None
        with pytest.raises(Exception, match="cancelled"):
            await final
        record = await srv.provider.wait_ended(0)
        assert record.disconnected


async def test_a_client_too_far_behind_is_disconnected_and_can_resume() -> None:
    words = [f"w{i} " for i in range(50)]
    gate = asyncio.Event()

    def upstream(_prompt: Any, _params: dict[str, Any]) -> Any:
        from rxtokens.aio import from_async_iterable

        async def tokens() -> Any:
            yield TextDelta(words[0])
            await gate.wait()
            for word in words[1:]:
                yield TextDelta(word)
            yield Finish("stop")

        return from_async_iterable(tokens)

    async with running(upstream=upstream, max_pending=5) as srv:
        stream_id = await srv.start("hi")
        url = srv.url(f"/v1/streams/{stream_id}/events")
        async with srv.session.get(url, headers=srv.auth) as response:
            first = await read_events(response, limit=1)
            # the server queues the 49 remaining tokens at once: more than max_pending
            gate.set()
            rest = await read_events(response)
        assert all(e.event != "done" for e in rest)  # closed early, no terminal event
        seen = first + rest
        async with srv.session.get(
            url, headers={**srv.auth, "Last-Event-ID": seen[-1].id}
        ) as response:
            tail = await read_events(response)
        assert token_text(seen) + token_text(tail) == "".join(words)


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


def test_main_reports_bad_options() -> None:
    from rxtokens.server import main

    with pytest.raises(SystemExit) as info:
        main(["--upstream", "nope"])
    assert info.value.code == 2


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


async def test_only_max_retained_ended_streams_are_kept() -> None:
    async with running(max_retained=2) as srv:
        ids = []
        for i in range(4):
            stream_id = await srv.start(f"p{i}")
            final = srv.state.streams[stream_id].final
            assert final is not None
            await final
            await asyncio.sleep(0)  # the done-callback runs
            ids.append(stream_id)
        assert sorted(srv.state.streams) == sorted(ids[2:])  # the two oldest were purged
