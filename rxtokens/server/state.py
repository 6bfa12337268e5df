"""What every part of the server shares: `ServerState` (one per app), `_Stream` (one per stream)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from aiohttp import web
from reactivex import Observable, abc

from ..broadcast import Broadcast
from ..errors import BroadcastCancelledError
from ..tokens import Completion, StreamToken

if TYPE_CHECKING:  # shared.py builds on this module (and needs the optional `redis` extra)
    from .shared import SharedStreams

__all__ = ["STATE_KEY", "Operator", "ServerState", "UpstreamFactory", "app_token"]

Operator: TypeAlias = Callable[[Observable[Any]], Observable[Any]]
"""A token operator (``Observable[StreamToken] -> Observable[StreamToken]``)."""


UpstreamFactory: TypeAlias = Callable[[Any, dict[str, Any]], Observable[StreamToken]]
"""``(prompt_or_messages, params) -> Observable[StreamToken]``: a custom upstream."""


class _EventClient(Protocol):
    """What the app needs of an open event connection: closing it (at shutdown)."""

    def close(self) -> None: ...


@dataclass(eq=False)
class _Stream:
    """One pipeline served to any number of clients."""

    id: str
    read_token: str
    broadcast: Broadcast[Any]
    keep_alive: bool
    created: float = field(default_factory=time.time)
    finished_at: float | None = None
    readers: set[_EventClient] = field(default_factory=set)
    hold: abc.DisposableBase | None = None
    timer: asyncio.TimerHandle | None = None
    purge: asyncio.TimerHandle | None = None
    error: BaseException | None = None
    final: asyncio.Future[Completion] | None = None
    remote: bool = False
    """A relay here of a stream another process produces (``redis_url``)."""
    remote_readers: int = 0
    """Other processes reading this stream (``redis_url``; refreshed every heartbeat)."""

    def __repr__(self) -> str:
        return f"_Stream(id={self.id!r}, read_token='***', status={self.status!r})"

    @property
    def clients(self) -> int:
        """Open event connections reading this stream."""
        return len(self.readers)

    @property
    def status(self) -> str:
        if self.finished_at is None:
            return "running"
        if self.error is None:
            return "done"
        if isinstance(self.error, BroadcastCancelledError):
            return "cancelled"
        return "error"


@dataclass(eq=False)
class ServerState:
    """The mutable state of one app (``app[STATE_KEY]``), exposed for tests and embedding."""

    token: str | None
    make_source: Callable[[Any, dict[str, Any]], Observable[StreamToken]]
    make_ui_source: Callable[[list[dict[str, Any]]], Observable[Any]]
    message_format: str
    upstream_model: str | None
    operators: list[Operator]
    cors_origins: frozenset[str]
    max_streams: int
    max_clients: int
    retention: float
    grace: float
    start_timeout: float
    heartbeat: float
    retry_ms: int
    allow_specs: bool
    max_pending: int
    max_retained: int
    secrets: tuple[str, ...] = ()
    max_clients_per_stream: int = 256
    max_clients_per_credential: int = 64
    write_timeout: float = 30.0
    allowed_base_urls: frozenset[str] = frozenset()
    streams: dict[str, _Stream] = field(default_factory=dict)
    ui_chats: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Chat id -> (stream id, message id) of the chat's running ``/v1/ui/chat`` stream."""
    queues: set[_EventClient] = field(default_factory=set)
    credential_clients: dict[str, int] = field(default_factory=dict)
    chats: int = 0
    closing: bool = False
    shared: SharedStreams | None = None
    """Streams shared through Redis (``create_app(redis_url=...)``), else None."""

    def __repr__(self) -> str:
        token = None if self.token is None else "***"
        return (
            f"ServerState(token={token!r}, secrets={('***',) * len(self.secrets)!r}, "
            f"upstream_model={self.upstream_model!r}, streams={len(self.streams)}, "
            f"clients={len(self.queues)}, chats={self.chats}, closing={self.closing})"
        )

    @property
    def running(self) -> int:
        """Streams and chat completions in progress (what `max_streams` limits)."""
        return self.chats + sum(
            1 for s in self.streams.values() if s.finished_at is None and not s.remote
        )


STATE_KEY: web.AppKey[ServerState] = web.AppKey("rxtokens_server_state", ServerState)
"""Where `create_app` keeps its `ServerState` in the application."""

READ_TOKEN_KEY: web.RequestKey[str] = web.RequestKey("rxtokens_read_token", str)
"""Set on a request authenticated by a stream's read token (the per-credential limit)."""


def app_token(app: web.Application) -> str | None:
    """The bearer token an app created by `create_app` requires (None: auth disabled)."""
    return app[STATE_KEY].token
