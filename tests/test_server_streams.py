"""The ``/v1/streams`` lifecycle: events, resumption, cancellation, grace, retention, specs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import pytest

from rxtokens.sse import SseParser
from rxtokens.testing import Reply
from rxtokens.testing.server import default_script
from rxtokens.tokens import Finish, TextDelta

from .server_helpers import read_events, running, token_text, until

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


async def test_specs_and_launch_strings_when_allowed() -> None:
    async with running(allow_specs=True, allow_provider=True) as srv:
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


def _flood(count: int, gate: asyncio.Event, size: int = 1000) -> Any:
    """An upstream that sends `count` tokens of `size` characters as fast as it can.

    It starts when `gate` is set (a client is attached: the tokens are live, not replay).
    """
    from rxtokens.aio import from_async_iterable

    def upstream(_prompt: Any, _params: dict[str, Any]) -> Any:
        async def tokens() -> Any:
            await gate.wait()
            for i in range(count):
                yield TextDelta(f"{i:08d}".ljust(size, "x"))
            yield Finish("stop")

        return from_async_iterable(tokens)

    return upstream


async def _silent_client(
    srv: Any, stream_id: str, gate: asyncio.Event
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that asks for the events and then never reads; `gate` is set once it is in."""
    reader, writer = await asyncio.open_connection(srv.server.host, srv.server.port)
    writer.write(
        f"GET /v1/streams/{stream_id}/events HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {srv.token}\r\n\r\n".encode()
    )
    await writer.drain()
    await until(lambda: srv.state.queues)
    gate.set()
    return reader, writer


async def _read_to_the_end(reader: asyncio.StreamReader) -> None:
    """Read what the server still sends until it closes the connection."""
    async with asyncio.timeout(20):
        with contextlib.suppress(ConnectionError):
            while await reader.read(1 << 16):
                pass


async def test_a_client_that_stops_reading_is_dropped_within_its_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The queue stays within max_pending while writes block, and the client is dropped."""
    caplog.set_level(logging.INFO, logger="rxtokens.server")
    gate = asyncio.Event()
    max_pending = 500
    async with running(
        upstream=_flood(20_000, gate), max_pending=max_pending, write_timeout=30, grace=0
    ) as srv:
        stream_id = await srv.start("hi")
        reader, writer = await _silent_client(srv, stream_id, gate)
        try:
            longest = [0]

            def dropped() -> bool:  # when it falls max_pending behind
                for reader in list(srv.state.queues):
                    sink = reader.sink  # type: ignore[attr-defined]
                    longest[0] = max(longest[0], len(sink.queue) - sink.exempt)
                return not srv.state.queues

            await until(dropped, every=0.005)
            assert longest[0] <= max_pending
            assert "fell too far behind" in caplog.text
            await _read_to_the_end(reader)  # the connection is closed
        finally:
            writer.close()


async def test_a_client_whose_writes_block_is_dropped_after_write_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rxtokens.server")
    gate = asyncio.Event()
    async with running(
        upstream=_flood(20_000, gate), max_pending=1_000_000, write_timeout=0.3, grace=0
    ) as srv:
        stream_id = await srv.start("hi")
        reader, writer = await _silent_client(srv, stream_id, gate)
        try:
            await until(lambda: not srv.state.queues)
            assert "write_timeout" in caplog.text
            await _read_to_the_end(reader)
        finally:
            writer.close()


async def test_an_ended_stream_is_purged_even_with_a_client_that_stopped_reading() -> None:
    gate = asyncio.Event()
    async with running(
        upstream=_flood(20_000, gate), max_pending=1_000_000, write_timeout=60, retention=0.1
    ) as srv:
        stream_id = await srv.start("hi")
        _reader, writer = await _silent_client(srv, stream_id, gate)
        try:
            await until(lambda: stream_id not in srv.state.streams)
            async with srv.session.get(
                srv.url(f"/v1/streams/{stream_id}"), headers=srv.auth
            ) as response:
                assert response.status == 404
        finally:
            writer.close()
