"""The ``/v1/streams`` lifecycle: create, events (``Last-Event-ID`` resume), status, delete, purge.

Each stream is one `Broadcast` with ``replay="all"`` held by a `_Stream` record;
each open event connection (`_Reader`) reads it through an `rxtokens.aio.BoundedSink`
and writes the events in the format of `rxtokens.formats.events`, in batches.

A client that stops reading is dropped (it can reconnect and resume with
``Last-Event-ID``): when it falls more than ``max_pending`` live tokens behind
(checked as tokens arrive, also while a write is blocked; the replay it started
with does not count), or when one write takes more than ``write_timeout``.

Timers: a stream nobody attaches to is released after ``start_timeout``, one
whose last client left after ``grace`` seconds, and an ended one is purged
after ``retention`` (clients still attached then are closed).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from reactivex import Observable

from ..aio import BoundedSink
from ..broadcast import Broadcast, Sequenced
from ..errors import BroadcastCancelledError, ConfigError, ProviderNotInstalledError
from ..formats.events import PING, done_event, error_event, retry_block, token_event
from ..spec import PipelineSpec, parse_launch
from ..tokens import Completion, StreamToken
from .errors import (
    _Abort,
    _check_capacity,
    _check_client_limits,
    _describe,
    _json_body,
    _last_event_id,
)
from .state import READ_TOKEN_KEY, STATE_KEY, ServerState, _Stream

log = logging.getLogger("rxtokens.server")

_BATCH = 1024
"""The most events written to a client in one write."""

_PING = PING.encode()


class _Reader:
    """One open event connection: the bounded sink it reads, and what it counts against."""

    __slots__ = ("credential", "sink")

    def __init__(self, sink: BoundedSink[Sequenced], credential: str | None) -> None:
        self.sink = sink
        self.credential = credential

    def close(self) -> None:
        """End after what is queued (shutdown, purge): the client resumes elsewhere or later."""
        self.sink.stop()


def _source_for(state: ServerState, data: dict[str, Any]) -> Observable[StreamToken]:
    given = [k for k in ("prompt", "messages", "spec", "launch") if k in data]
    if len(given) != 1:
        raise _Abort(
            400,
            "invalid_request_error",
            "give exactly one of 'prompt', 'messages', 'spec' or 'launch'",
        )
    kind = given[0]
    value = data[kind]
    try:
        if kind in ("spec", "launch"):
            if not state.allow_specs:
                raise _Abort(
                    403,
                    "specs_not_allowed",
                    "this server runs only its configured pipeline: send 'prompt' or "
                    "'messages' (start it with allow_specs=True / --allow-specs to accept "
                    "specs and launch strings)",
                )
            if kind == "launch":
                if not isinstance(value, str):
                    raise ConfigError("'launch' must be a launch string")
                spec = parse_launch(value)
            else:
                if not isinstance(value, dict):
                    raise ConfigError("'spec' must be a PipelineSpec JSON object")
                spec = PipelineSpec.from_dict(value)
            if spec.sinks:
                raise ConfigError("the server streams to its clients: remove the sinks")
            _check_base_url(state, spec)
            return spec.build()
        if kind == "prompt" and (not isinstance(value, str) or not value.strip()):
            raise ConfigError("'prompt' must be a non-empty string")
        if kind == "messages" and not (isinstance(value, list) and value):
            raise ConfigError("'messages' must be a non-empty list of {role, content} objects")
        return state.make_source(value, {})
    except (ConfigError, ProviderNotInstalledError) as exc:
        error = "invalid_request_error"
        if isinstance(exc, ProviderNotInstalledError):
            error = "provider_not_installed"
        raise _Abort(400, error, _describe(exc, state.secrets)[1]) from None
    except RecursionError:
        raise _Abort(400, "invalid_request_error", f"the {kind} is nested too deeply") from None


def _check_base_url(state: ServerState, spec: PipelineSpec) -> None:
    """403 for a ``base_url`` outside ``allow_base_urls``: the server's keys would go there."""
    base_url = spec.source.params.get("base_url")
    if base_url is None:
        return
    if not isinstance(base_url, str) or base_url.rstrip("/") not in state.allowed_base_urls:
        raise _Abort(
            403,
            "base_url_not_allowed",
            f"base_url {base_url!r} is not allowed: the server sends its own API keys "
            "upstream, only to the base URLs it was started with (allow_base_urls / "
            "--allow-base-url)",
        )


async def _create_stream(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    _check_capacity(state)
    data = await _json_body(request)
    keep_alive = data.get("keep_alive", False)
    if not isinstance(keep_alive, bool):
        raise _Abort(400, "invalid_request_error", "'keep_alive' must be true or false")
    shared = state.shared
    if shared is not None:
        await shared.check()  # 503 while Redis is unreachable: no stream kept in memory only
    stream = start_stream(state, _source_for(state, data), keep_alive=keep_alive, shared=True)
    if shared is not None:
        try:
            await shared.register(stream)
        except _Abort:
            stream.broadcast.cancel()
            raise
    stream_id = stream.id
    return web.json_response(
        {
            "id": stream_id,
            "read_token": stream.read_token,
            "status_url": f"/v1/streams/{stream_id}",
            "events_url": f"/v1/streams/{stream_id}/events",
        },
        status=201,
    )


def start_stream(
    state: ServerState,
    source: Observable[StreamToken],
    *,
    keep_alive: bool = False,
    shared: bool = False,
) -> _Stream:
    """Start `source` as a new stream of the app (a `Broadcast`, replay all), not yet read.

    With `shared` and the app's ``redis_url``, its tokens go to a Redis token log
    (register it with ``state.shared.register`` so other processes find it).
    """
    stream_id = secrets.token_urlsafe(16)
    token_log = None
    if shared and state.shared is not None:
        source, token_log = state.shared.attach(stream_id, source)
    broadcast: Broadcast[Any] = Broadcast(
        source, replay="all", keep_alive=keep_alive, name=f"stream-{stream_id[:6]}", log=token_log
    )
    stream = _Stream(stream_id, secrets.token_urlsafe(16), broadcast, keep_alive)
    state.streams[stream_id] = stream
    final = broadcast.final
    stream.final = final
    final.add_done_callback(lambda fut: _finished(state, stream, fut))
    stream.hold = broadcast.connect()
    if not broadcast.done:
        loop = asyncio.get_running_loop()
        stream.timer = loop.call_later(state.start_timeout, _release, stream)
    return stream


def _finished(state: ServerState, stream: _Stream, fut: asyncio.Future[Completion]) -> None:
    stream.finished_at = time.time()
    stream.error = fut.exception() if not fut.cancelled() else BroadcastCancelledError("cancelled")
    if stream.timer is not None:
        stream.timer.cancel()
        stream.timer = None
    if stream.hold is not None:
        stream.hold.dispose()
        stream.hold = None
    _arm_purge(state, stream)
    if state.shared is not None:
        state.shared.on_finished(stream)
    ended = [s for s in state.streams.values() if s.finished_at is not None and not s.clients]
    if len(ended) > state.max_retained:  # memory bound: drop the oldest ended streams
        ended.sort(key=lambda s: s.finished_at or 0.0)
        for old in ended[: len(ended) - state.max_retained]:
            if old.purge is not None:
                old.purge.cancel()
                old.purge = None
            state.streams.pop(old.id, None)


def _arm_purge(state: ServerState, stream: _Stream) -> None:
    loop = asyncio.get_running_loop()
    stream.purge = loop.call_later(state.retention, _purge, state, stream)


def _purge(state: ServerState, stream: _Stream) -> None:
    stream.purge = None
    for reader in list(stream.readers):  # clients still attached after `retention`
        reader.close()
    if state.streams.get(stream.id) is stream:
        del state.streams[stream.id]


def _release(stream: _Stream) -> None:
    """Nobody is reading: let the broadcast cancel the upstream (unless keep_alive)."""
    stream.timer = None
    if not stream.readers and not stream.remote_readers and stream.hold is not None:
        hold, stream.hold = stream.hold, None
        hold.dispose()


def _release_later(state: ServerState, stream: _Stream) -> None:
    """Nobody reads the stream (here or elsewhere): release it after ``grace``."""
    if stream.hold is None or stream.timer is not None:
        return
    if state.grace > 0 and not state.closing:
        loop = asyncio.get_running_loop()
        stream.timer = loop.call_later(state.grace, _release, stream)
    else:
        _release(stream)


def _stream_or_404(request: web.Request) -> _Stream:
    state = request.app[STATE_KEY]
    stream = state.streams.get(request.match_info["id"])
    if stream is None:
        raise _Abort(404, "not_found", "no such stream (it never existed or was purged)")
    return stream


async def _shared_meta(request: web.Request) -> dict[str, str] | None:
    """The metadata of a stream another process produces (None: local, or not shared)."""
    state = request.app[STATE_KEY]
    stream = state.streams.get(request.match_info["id"])
    if state.shared is None or (stream is not None and not stream.remote):
        return None
    meta = await state.shared.meta(request.match_info["id"])
    if meta is None:
        raise _Abort(404, "not_found", "no such stream (it never existed or was purged)")
    return meta


async def _stream_status(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    meta = await _shared_meta(request)
    if meta is not None and state.shared is not None:
        return web.json_response(await state.shared.status(request.match_info["id"], meta))
    stream = _stream_or_404(request)
    error = None
    if stream.error is not None:
        kind, message = _describe(stream.error, state.secrets)
        error = {"type": kind, "message": message}
    return web.json_response(
        {
            "id": stream.id,
            "status": stream.status,
            "keep_alive": stream.keep_alive,
            "seq": stream.broadcast.seq,
            "clients": stream.clients,
            "created": stream.created,
            "finished": stream.finished_at,
            "completion": stream.broadcast.completion_so_far().to_dict(),
            "error": error,
        }
    )


async def _cancel_stream(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    meta = await _shared_meta(request)
    if meta is not None and state.shared is not None:
        stream_id = request.match_info["id"]
        return web.json_response({"id": stream_id, "status": await state.shared.cancel(stream_id)})
    stream = _stream_or_404(request)
    stream.broadcast.cancel()
    return web.json_response({"id": stream.id, "status": stream.status})


def _terminal_event(state: ServerState, stream: _Stream, error: BaseException | None) -> str:
    seq = stream.broadcast.seq + 1
    if error is None:
        return done_event(seq, stream.broadcast.completion_so_far())
    kind, message = _describe(error, state.secrets)
    partial = getattr(error, "partial", None)
    if not isinstance(partial, Completion):
        partial = stream.broadcast.completion_so_far()
    return error_event(seq, kind, message, partial)


_EVENT_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-store, no-transform",
    "X-Accel-Buffering": "no",
}


async def _stream_events(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    after = _last_event_id(request)
    stream = state.streams.get(request.match_info["id"])
    if stream is None or not stream.remote:  # (a relay here needs no Redis round trip)
        meta = await _shared_meta(request)
        if meta is not None and state.shared is not None:
            if meta.get("status", "running") != "running" and after > int(meta.get("seq", "0")):
                return web.Response(status=204)  # the client has the terminal event: stop
            stream = state.shared.follow(state, request.match_info["id"])
        else:
            stream = _stream_or_404(request)
    if stream.finished_at is not None and after > stream.broadcast.seq:
        return web.Response(status=204)  # the client has the terminal event: stop
    return await serve_client(
        request,
        stream,
        headers=_EVENT_HEADERS,
        after=after,
        preamble=retry_block(state.retry_ms),
        write=lambda item: token_event(*item),
        end=lambda error: _terminal_event(state, stream, error),
    )


async def serve_client(
    request: web.Request,
    stream: _Stream,
    *,
    headers: Mapping[str, str],
    after: int,
    preamble: str,
    write: Callable[[Sequenced], str],
    end: Callable[[BaseException | None], str],
) -> web.StreamResponse:
    """Stream `stream` to one client from after seq `after`, in the format `write` / `end` define.

    The client counts as one of the stream's readers while it reads: when the
    last one leaves, the stream is released after the app's ``grace`` period.
    `write` gives the text of one `Sequenced` token, `end` that of the end (None:
    done, else the error); `preamble` is written first. Client limits
    (`_check_client_limits`) give 429; a client that stops reading is dropped
    (``max_pending``, ``write_timeout``) and may resume.
    """
    state = request.app[STATE_KEY]
    if state.closing:
        raise _Abort(503, "shutting_down", "the server is shutting down")
    credential = request.get(READ_TOKEN_KEY)
    _check_client_limits(state, stream, credential)
    response = web.StreamResponse(
        headers={**headers, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
    )
    origin = request.headers.get("Origin")
    if origin is not None and ("*" in state.cors_origins or origin in state.cors_origins):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    sink: BoundedSink[Sequenced] = BoundedSink(state.max_pending, exempt_initial=True)
    reader = _Reader(sink, credential)
    state.queues.add(reader)
    stream.readers.add(reader)
    if credential is not None:
        state.credential_clients[credential] = state.credential_clients.get(credential, 0) + 1
    if stream.timer is not None:
        stream.timer.cancel()
        stream.timer = None
    ended = False
    try:
        await response.prepare(request)
        if preamble:
            await _write(state, response, preamble.encode())
        sink.start(stream.broadcast.sequenced(after=after, on_gap="oldest"))
        await _pump(state, stream, sink, response, write, end)
        ended = True
    except (ConnectionError, asyncio.CancelledError):
        pass  # the client went away (a reconnect resumes)
    except TimeoutError:
        log.info("stream %s: a client stopped reading (write_timeout); closed", stream.id[:6])
        _abort_connection(request)
    finally:
        sink.close()
        state.queues.discard(reader)
        stream.readers.discard(reader)
        if credential is not None:
            left = state.credential_clients.pop(credential, 1) - 1
            if left > 0:
                state.credential_clients[credential] = left
        if not stream.readers and not stream.remote_readers:
            _release_later(state, stream)
    if ended:  # the end of the body may block too (a client that stopped reading)
        try:
            async with asyncio.timeout(state.write_timeout):
                await response.write_eof()
        except TimeoutError:
            _abort_connection(request)
        except (ConnectionError, asyncio.CancelledError):
            pass
    return response


def _abort_connection(request: web.Request) -> None:
    """Close a connection whose client stopped reading (a graceful end would block too)."""
    transport = request.transport
    if transport is not None:
        transport.abort()


async def _write(state: ServerState, response: web.StreamResponse, data: bytes) -> None:
    """One write, within ``write_timeout`` (TimeoutError: the client stopped reading)."""
    async with asyncio.timeout(state.write_timeout):
        await response.write(data)


async def _pump(
    state: ServerState,
    stream: _Stream,
    sink: BoundedSink[Sequenced],
    response: web.StreamResponse,
    write: Callable[[Sequenced], str],
    end: Callable[[BaseException | None], str],
) -> None:
    """Write the client's tokens as they come, a ping when idle, then the end.

    Pending tokens are written in batches (one write per batch), so a slow client
    gets fewer, larger writes. A client more than ``max_pending`` live tokens
    behind ends its sink (`BoundedSink` checks as tokens arrive, even while a
    write is blocked): it is closed without the end, and reconnects and resumes
    from the replay instead of holding a growing queue.
    """
    heartbeat = state.heartbeat
    while True:
        if sink.overflowed:
            log.info("stream %s: a client fell too far behind; closing it", stream.id[:6])
            response.force_close()  # the connection too, once the response has ended
            return
        items = sink.drain(_BATCH)
        if items:
            batch = "".join([write(item) for item in items])
            if batch:
                await _write(state, response, batch.encode())
            continue
        ended, error = sink.ended()
        if ended:
            if not sink.stopped:
                await _write(state, response, end(error).encode())
            return
        try:
            async with asyncio.timeout(heartbeat):
                await sink.ready()
        except TimeoutError:
            await _write(state, response, _PING)


async def _on_shutdown(app: web.Application) -> None:
    state = app[STATE_KEY]
    state.closing = True
    for reader in list(state.queues):
        reader.close()  # clients reconnect elsewhere / later with Last-Event-ID
    for stream in list(state.streams.values()):
        for handle in (stream.timer, stream.purge):
            if handle is not None:
                handle.cancel()
        stream.timer = stream.purge = None
        stream.broadcast.cancel()
        if stream.hold is not None:
            stream.hold.dispose()
            stream.hold = None
