"""Streams shared between server processes through Redis (``create_app(redis_url=...)``).

What lives in Redis, per stream ``<prefix>:stream:<id>``:

* the token log (a `RedisTokenLog` the producing process writes, with its
  heartbeat key ``...:alive``);
* ``...:meta``, a hash: the owner process, the SHA-256 of the read token,
  status, creation / end time, keep_alive, the owner's local clients, and a
  ``cancel`` flag any process may set;
* ``...:readers``, a sorted set: one member per *other* process reading the
  stream, scored by when its presence expires.

The producing process keeps the upstream request. Another process serves a
stream it does not own through a *relay*: one local `Broadcast` over
`from_log` per stream and process, whatever the number of its clients, so a
``Last-Event-ID`` resumes anywhere with the same sequence numbers. Every
`heartbeat` the monitor task of each process refreshes its presence on the
relays it serves and, for its own streams, reads the readers of other
processes (refcount cancellation: the grace period starts when nobody reads
anywhere) and the ``cancel`` flag (``DELETE`` on any process).

Bounds (``h`` = `heartbeat`, default 1 s): ``DELETE`` reaches the producer
within ``h``; a dead producer is reported to readers within ``4 h``
(`rxtokens.distributed.LOST_AFTER` + 1); a Redis outage fails streams in
progress after ``3 h``; a process's presence on a stream expires ``3 h``
after its last reader there left (or it died), then the producer's ``grace``
starts (the producer sees it within ``h``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable
from reactivex.subject import Subject
from redis.exceptions import RedisError

from ..broadcast import Broadcast
from ..completion import CompletionBuilder
from ..distributed import LOST_AFTER, RedisTokenLog, alive_key, connect, from_log
from ..distributed._codec import decode_batch, decode_end
from ..errors import ConfigError, StoreUnavailableError
from ..tokens import Completion, StreamToken
from .errors import _Abort, _describe
from .state import STATE_KEY, ServerState, _Stream
from .streams import _release_later

__all__ = ["SharedStreams"]

log = logging.getLogger("rxtokens.server")

_ERRORS = (RedisError, ConnectionError, TimeoutError, OSError)
"""What a Redis call raises when Redis is unreachable (or answers with an error)."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SharedStreams:
    """The Redis side of one server process (``ServerState.shared``).

    Args:
        url: ``redis://HOST:PORT[/DB]``.
        heartbeat: seconds between heartbeats (presence, monitor, producer).
        ttl: seconds the keys of an ended stream live (the app's ``retention``).
        prefix: the key prefix (several deployments can share one Redis).

    Example:
        >>> shared = SharedStreams("redis://127.0.0.1:6379", heartbeat=0.5)
        >>> shared.log_key("abc")
        'rxtokens:stream:abc'
    """

    def __init__(
        self, url: str, *, heartbeat: float = 1.0, ttl: float = 600.0, prefix: str = "rxtokens"
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(f"redis_url must be redis://HOST:PORT, got {url!r}")
        if isinstance(heartbeat, bool) or not isinstance(heartbeat, int | float) or heartbeat <= 0:
            raise ConfigError(f"redis_heartbeat must be > 0 seconds, got {heartbeat!r}")
        self.url = url
        self.where = f"{parts.hostname}:{parts.port or 6379}"  # no password in messages
        self.heartbeat = float(heartbeat)
        self.ttl = max(1.0, float(ttl))
        self.prefix = prefix
        self.node = hashlib.sha256(f"{id(self)}:{time.time_ns()}".encode()).hexdigest()[:16]
        self.client = connect(url, heartbeat=self.heartbeat)
        self._errors = _ERRORS
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lookups: dict[str, asyncio.Future[Any]] = {}
        self._timeout = max(5.0, LOST_AFTER * self.heartbeat + 1)
        """Seconds a request waits for Redis before its 503."""

    def __repr__(self) -> str:
        return f"SharedStreams(where={self.where!r}, node={self.node!r})"

    def log_key(self, stream_id: str) -> str:
        """The Redis key of a stream's token log."""
        return f"{self.prefix}:stream:{stream_id}"

    def _meta(self, stream_id: str) -> str:
        return f"{self.log_key(stream_id)}:meta"

    def _readers(self, stream_id: str) -> str:
        return f"{self.log_key(stream_id)}:readers"

    def _unavailable(self, exc: BaseException) -> _Abort:
        return _Abort(
            503,
            "store_unavailable",
            f"the shared stream store (Redis at {self.where}) is unreachable "
            f"({type(exc).__name__}); retry when it is back",
            **{"Retry-After": "1"},
        )

    async def _call(self, command: Callable[[], Any]) -> Any:
        """One Redis round trip for a request: 503 when Redis does not answer."""
        try:
            async with asyncio.timeout(self._timeout):
                return await command()
        except self._errors as exc:
            raise self._unavailable(exc) from None

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ producer side

    def attach(
        self, stream_id: str, source: Observable[StreamToken]
    ) -> tuple[Observable[StreamToken], RedisTokenLog]:
        """The log a new stream writes, and its source, which fails when the log cannot write."""
        failed: Subject[StreamToken] = Subject()
        token_log = RedisTokenLog(
            self.client,
            self.log_key(stream_id),
            ttl=self.ttl,
            heartbeat=self.heartbeat,
            on_failure=failed.on_error,
        )

        def subscribe(
            observer: abc.ObserverBase[StreamToken], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            return CompositeDisposable(
                failed.subscribe(on_error=observer.on_error),
                source.subscribe(observer, scheduler=scheduler),
            )

        return Observable(subscribe), token_log

    async def check(self) -> None:
        """503 unless Redis answers (before a new stream starts)."""
        await self._call(self.client.ping)

    async def register(self, stream: _Stream) -> None:
        """Publish a new stream: its metadata, and the producer's first heartbeat."""
        token_log = stream.broadcast.log
        if isinstance(token_log, RedisTokenLog):
            try:
                await token_log.started()
            except StoreUnavailableError as exc:
                raise self._unavailable(exc) from None
        meta: dict[Any, str | int | float] = {
            "owner": self.node,
            "read_token": _hash(stream.read_token),
            "status": "running",
            "created": stream.created,
            "keep_alive": int(stream.keep_alive),
            "clients": 0,
        }
        key = self._meta(stream.id)

        async def write() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(key, mapping=meta)
            pipe.expire(key, int(self.ttl + LOST_AFTER * self.heartbeat) + 1)
            await pipe.execute()

        await self._call(write)

    def on_finished(self, stream: _Stream) -> None:
        """A stream this process produced ended: record how (best effort: Redis may be down)."""
        if stream.remote or not isinstance(stream.broadcast.log, RedisTokenLog):
            return  # a relay, or a stream kept here only (``/v1/ui/chat``)
        error = None if stream.error is None else _describe(stream.error, ())
        fields: dict[Any, str | int | float] = {
            "status": stream.status,
            "finished": stream.finished_at or time.time(),
            "seq": stream.broadcast.seq,
            "error_type": "" if error is None else error[0],
            "error_message": "" if error is None else error[1],
        }
        ttl = int(self.ttl) + 1

        async def write() -> None:
            try:
                pipe = self.client.pipeline(transaction=False)
                pipe.hset(self._meta(stream.id), mapping=fields)
                for key in (self._meta(stream.id), self._readers(stream.id)):
                    pipe.expire(key, ttl)
                await pipe.execute()
            except self._errors as exc:
                log.warning("stream %s: could not record its end in Redis (%r)", stream.id[:6], exc)

        self._spawn(write())

    # ------------------------------------------------------------------ any process

    async def meta(self, stream_id: str) -> dict[str, str] | None:
        """The stream's metadata (None: unknown or expired); 503 when Redis is down.

        Concurrent lookups of one stream share one round trip (a crowd of readers
        arriving at once on a process that does not relay the stream yet).
        """
        lookup = self._lookups.get(stream_id)
        if lookup is None:
            lookup = asyncio.ensure_future(self.client.hgetall(self._meta(stream_id)))
            self._lookups[stream_id] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(stream_id, None))
        try:
            async with asyncio.timeout(self._timeout):
                raw: Any = await asyncio.shield(lookup)
        except self._errors as exc:
            raise self._unavailable(exc) from None
        return {_text(k): _text(v) for k, v in raw.items()} if raw else None

    async def read_token_ok(self, stream_id: str, given: str) -> bool:
        """Whether `given` is the read token of the stream (wherever it runs)."""
        expected: Any = await self._call(
            lambda: self.client.hget(self._meta(stream_id), "read_token")
        )
        return expected is not None and hmac.compare_digest(_hash(given), _text(expected))

    def follow(self, state: ServerState, stream_id: str) -> _Stream:
        """The relay of a stream another process produces (made on its first reader here)."""
        stream = state.streams.get(stream_id)
        if stream is not None:
            return stream
        source = from_log(self.url, self.log_key(stream_id), heartbeat=self.heartbeat)
        broadcast: Broadcast[Any] = Broadcast(source, name=f"relay-{stream_id[:6]}")
        stream = _Stream(stream_id, "", broadcast, keep_alive=False, remote=True)
        state.streams[stream_id] = stream
        stream.final = broadcast.final
        stream.final.add_done_callback(lambda _fut: self._relay_ended(state, stream))
        self._spawn(self._present({stream_id}))
        return stream

    def _relay_ended(self, state: ServerState, stream: _Stream) -> None:
        # A relay is a cache of the log: the next reader here makes a new one. Its presence
        # is left to expire (LOST_AFTER heartbeats), so the producer's monitor sees it even
        # when the reader stayed a moment only (that ends the producer's start timeout).
        if state.streams.get(stream.id) is stream:
            del state.streams[stream.id]

    async def status(self, stream_id: str, meta: dict[str, str]) -> dict[str, Any]:
        """``GET /v1/streams/{id}`` of a stream another process produces."""

        async def read() -> tuple[Any, Any, Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.xrange(self.log_key(stream_id))
            pipe.exists(alive_key(self.log_key(stream_id)))
            pipe.zcount(self._readers(stream_id), time.time(), "+inf")
            entries, alive, readers = await pipe.execute()
            return entries, alive, readers

        entries, alive, readers = await self._call(read)
        builder = CompletionBuilder()
        seq = 0
        completion: Completion | None = None
        for _entry_id, fields in entries:
            ended = decode_end(fields)
            if ended is not None:
                seq, completion = ended[0], ended[1].completion
                break
            items = decode_batch(fields)
            builder.add_all(item.token for item in items)
            seq = items[-1].seq
        status = meta.get("status", "running")
        error = None
        if meta.get("error_type"):
            error = {"type": meta["error_type"], "message": meta.get("error_message", "")}
        elif status == "running" and not alive:
            status = "error"
            error = {"type": "producer_lost", "message": "the producing process stopped"}
        finished = meta.get("finished")
        return {
            "id": stream_id,
            "status": status,
            "keep_alive": meta.get("keep_alive") == "1",
            "seq": seq,
            "clients": int(meta.get("clients", "0")) + int(readers),
            "created": float(meta.get("created", "0")),
            "finished": None if finished is None else float(finished),
            "completion": (completion or builder.build(strict=False)).to_dict(),
            "error": error,
        }

    async def cancel(self, stream_id: str) -> str:
        """Ask the producer to cancel (``DELETE``); the status once it did, or after ``4 h``."""
        await self._call(lambda: self.client.hset(self._meta(stream_id), "cancel", 1))
        deadline = time.monotonic() + (LOST_AFTER + 1) * self.heartbeat
        status = "running"
        while time.monotonic() < deadline:
            meta = await self.meta(stream_id)
            status = "cancelled" if meta is None else meta.get("status", "running")
            if status != "running":
                break
            await asyncio.sleep(self.heartbeat / 4)
        return status

    # ------------------------------------------------------------------ the monitor

    async def _present(self, stream_ids: set[str]) -> None:
        """Say this process reads `stream_ids` (for the next ``LOST_AFTER`` heartbeats)."""
        expires = time.time() + LOST_AFTER * self.heartbeat
        pipe = self.client.pipeline(transaction=False)
        for stream_id in stream_ids:
            pipe.zadd(self._readers(stream_id), {self.node: expires})
            pipe.expire(self._readers(stream_id), int(self.ttl) + 1)
        with contextlib.suppress(*self._errors):
            await pipe.execute()

    async def _tick(self, state: ServerState) -> None:
        relays = {s.id for s in state.streams.values() if s.remote and s.readers}
        if relays:
            await self._present(relays)
        own = [s for s in state.streams.values() if not s.remote and s.finished_at is None]
        if not own:
            return
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        for stream in own:
            meta = self._meta(stream.id)
            pipe.hset(meta, "clients", len(stream.readers))
            pipe.expire(meta, int(self.ttl + LOST_AFTER * self.heartbeat) + 1)
            pipe.zremrangebyscore(self._readers(stream.id), "-inf", now)
            pipe.zcard(self._readers(stream.id))
            pipe.hget(meta, "cancel")
        replies = await pipe.execute()
        for i, stream in enumerate(own):
            readers, cancel = replies[5 * i + 3], replies[5 * i + 4]
            if cancel is not None:
                stream.broadcast.cancel()
                continue
            self._remote_readers(state, stream, int(readers))

    def _remote_readers(self, state: ServerState, stream: _Stream, count: int) -> None:
        stream.remote_readers = count
        if count and stream.timer is not None:
            stream.timer.cancel()  # someone reads elsewhere: no start timeout, no grace
            stream.timer = None
        elif not count and not stream.readers and stream.timer is None:
            _release_later(state, stream)

    async def run(self, state: ServerState) -> None:
        """The monitor: every heartbeat, presence, remote readers and cancellations."""
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self._tick(state)
            except self._errors as exc:
                log.warning("shared streams: Redis at %s: %r", self.where, exc)
            except Exception:
                log.exception("shared streams: the monitor failed (it goes on)")

    async def context(self, app: web.Application) -> AsyncIterator[None]:
        """The app's cleanup context: runs the monitor, closes the client at the end."""
        task = asyncio.get_running_loop().create_task(self.run(app[STATE_KEY]))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for pending in list(self._tasks):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(pending, 1.0)
        await self.client.aclose()
