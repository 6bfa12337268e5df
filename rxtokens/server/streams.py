"""The ``/v1/streams`` lifecycle: create, events (``Last-Event-ID`` resume), status, delete, purge.

Each stream is one `Broadcast` with ``replay="all"`` held by a `_Stream` record;
each open event connection reads it through a `_ClientQueue`. The events are
written in the format of `rxtokens.formats.events`. Timers: a stream nobody
attaches to is released after ``start_timeout``, one whose last client left
after ``grace`` seconds, and an ended one is purged after ``retention``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from reactivex import Observable, abc

from ..broadcast import Broadcast, Sequenced
from ..errors import BroadcastCancelledError, ConfigError
from ..formats.events import PING, done_event, error_event, retry_block, token_event
from ..spec import PipelineSpec, parse_launch
from ..tokens import Completion, StreamToken
from .errors import _Abort, _check_capacity, _describe, _json_body
from .state import STATE_KEY, ServerState, _Stream

log = logging.getLogger("rxtokens.server")

_BATCH = 1024
"""The most events written to a client in one write."""

_PING = PING.encode()


class _ClientQueue:
    """What one SSE connection still has to write (fed inline by the broadcast)."""

    __slots__ = ("closed", "end", "event", "items", "loop", "thread", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.thread = threading.get_ident()
        self.items: deque[Sequenced] = deque()
        self.event = asyncio.Event()
        self.end: tuple[BaseException | None] | None = None
        self.closed = False
        self.waiting = False

    def _wake(self) -> None:
        if threading.get_ident() == self.thread:
            self.event.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self.loop.call_soon_threadsafe(self.event.set)

    def push(self, item: Sequenced) -> None:
        self.items.append(item)
        self._wake()

    def on_error(self, error: Exception) -> None:
        self.end = (error,)
        self._wake()

    def on_completed(self) -> None:
        self.end = (None,)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()


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
            return spec.build()
        if kind == "prompt" and (not isinstance(value, str) or not value.strip()):
            raise ConfigError("'prompt' must be a non-empty string")
        if kind == "messages" and not (isinstance(value, list) and value):
            raise ConfigError("'messages' must be a non-empty list of {role, content} objects")
        return state.make_source(value, {})
    except ConfigError as exc:
        raise _Abort(400, "invalid_request_error", _describe(exc, state.secrets)[1]) from None


async def _create_stream(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    _check_capacity(state)
    data = await _json_body(request)
    keep_alive = data.get("keep_alive", False)
    if not isinstance(keep_alive, bool):
        raise _Abort(400, "invalid_request_error", "'keep_alive' must be true or false")
    stream = start_stream(state, _source_for(state, data), keep_alive=keep_alive)
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
    state: ServerState, source: Observable[StreamToken], *, keep_alive: bool = False
) -> _Stream:
    """Start `source` as a new stream of the app (a `Broadcast`, replay all), not yet read."""
    stream_id = secrets.token_urlsafe(16)
    broadcast: Broadcast[Any] = Broadcast(
        source, replay="all", keep_alive=keep_alive, name=f"stream-{stream_id[:6]}"
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
    if stream.clients:  # still being read: look again later
        _arm_purge(state, stream)
        return
    if state.streams.get(stream.id) is stream:
        del state.streams[stream.id]


def _release(stream: _Stream) -> None:
    """Nobody is reading: let the broadcast cancel the upstream (unless keep_alive)."""
    stream.timer = None
    if stream.clients == 0 and stream.hold is not None:
        hold, stream.hold = stream.hold, None
        hold.dispose()


def _stream_or_404(request: web.Request) -> _Stream:
    state = request.app[STATE_KEY]
    stream = state.streams.get(request.match_info["id"])
    if stream is None:
        raise _Abort(404, "not_found", "no such stream (it never existed or was purged)")
    return stream


async def _stream_status(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
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
    stream = _stream_or_404(request)
    stream.broadcast.cancel()
    return web.json_response({"id": stream.id, "status": stream.status})


def _last_event_id(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID")
    if raw is None:
        raw = request.query.get("last_event_id", "")
    raw = raw.strip()
    if not raw:
        return 0
    if not raw.isdigit() or len(raw) > 18:
        raise _Abort(
            400, "invalid_request_error", f"Last-Event-ID must be a sequence number, got {raw!r}"
        )
    return int(raw)


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
    stream = _stream_or_404(request)
    after = _last_event_id(request)
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

    The client counts as one of the stream's clients while it reads: when the
    last one leaves, the stream is released after the app's ``grace`` period.
    `write` gives the text of one `Sequenced` token, `end` that of the end (None:
    done, else the error); `preamble` is written first.
    """
    state = request.app[STATE_KEY]
    if state.closing:
        raise _Abort(503, "shutting_down", "the server is shutting down")
    if len(state.queues) >= state.max_clients:
        raise _Abort(
            429,
            "too_many_clients",
            f"{state.max_clients} event streams are open already (max_clients)",
            **{"Retry-After": "1"},
        )
    response = web.StreamResponse(
        headers={**headers, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
    )
    origin = request.headers.get("Origin")
    if origin is not None and ("*" in state.cors_origins or origin in state.cors_origins):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    loop = asyncio.get_running_loop()
    queue = _ClientQueue(loop)
    state.queues.add(queue)
    stream.clients += 1
    if stream.timer is not None:
        stream.timer.cancel()
        stream.timer = None
    subscription: abc.DisposableBase | None = None
    try:
        await response.prepare(request)
        if preamble:
            await response.write(preamble.encode())
        subscription = stream.broadcast.sequenced(after=after, on_gap="oldest").subscribe(
            queue.push, queue.on_error, queue.on_completed
        )
        await _pump(state, stream, queue, response, write, end)
    except (ConnectionError, asyncio.CancelledError):
        pass  # the client went away (a reconnect resumes)
    finally:
        if subscription is not None:
            subscription.dispose()
        state.queues.discard(queue)
        stream.clients -= 1
        if stream.clients == 0 and stream.hold is not None and stream.timer is None:
            if state.grace > 0 and not state.closing:
                stream.timer = loop.call_later(state.grace, _release, stream)
            else:
                _release(stream)
    return response


async def _pump(
    state: ServerState,
    stream: _Stream,
    queue: _ClientQueue,
    response: web.StreamResponse,
    write: Callable[[Sequenced], str],
    end: Callable[[BaseException | None], str],
) -> None:
    """Write the client's tokens as they come, a ping when idle, then the end.

    Pending tokens are written in batches (one write per batch), so a slow client
    gets fewer, larger writes. A client more than ``max_pending`` live tokens
    behind (the replay it started with does not count) is disconnected: it
    reconnects and resumes from the replay instead of holding a growing queue.
    """
    items = queue.items
    event = queue.event
    heartbeat = state.heartbeat
    replay = len(items)  # what was queued at subscription (the replay) is not "behind"
    while True:
        ended = queue.end  # read before `items`: every token is queued before the end is
        if items:
            if len(items) > state.max_pending + replay:
                log.info("stream %s: a client fell too far behind; closing it", stream.id[:6])
                return
            count = min(len(items), _BATCH)
            batch = "".join([write(items.popleft()) for _ in range(count)])
            replay = max(0, replay - count)
            if batch:
                await response.write(batch.encode())
            continue
        if ended is not None:
            await response.write(end(ended[0]).encode())
            return
        if queue.closed:
            return
        event.clear()
        if items or queue.end is not None or queue.closed:
            continue
        try:
            async with asyncio.timeout(heartbeat):
                await event.wait()
        except TimeoutError:
            await response.write(_PING)


async def _on_shutdown(app: web.Application) -> None:
    state = app[STATE_KEY]
    state.closing = True
    for queue in list(state.queues):
        queue.close()  # clients reconnect elsewhere / later with Last-Event-ID
    for stream in list(state.streams.values()):
        for handle in (stream.timer, stream.purge):
            if handle is not None:
                handle.cancel()
        stream.timer = stream.purge = None
        stream.broadcast.cancel()
        if stream.hold is not None:
            stream.hold.dispose()
            stream.hold = None
