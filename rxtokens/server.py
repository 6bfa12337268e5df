"""Serve pipelines to browsers: an aiohttp app with SSE streams, a web page and an OpenAI proxy.

Routes (everything under ``/v1`` needs the bearer token, see *Security*):

==============================  ===============================================================
``POST /v1/streams``            start a pipeline; JSON ``{"prompt": ...}`` or ``{"messages":
                                [...]}`` (the configured upstream + pipeline), or ``{"spec":
                                {...}}`` / ``{"launch": "..."}`` (with ``allow_specs=True``);
                                ``"keep_alive": true`` lets it finish without clients. Answers
                                ``201 {"id", "read_token", "events_url", "status_url"}``.
``GET /v1/streams/{id}/events`` the tokens as SSE: ``event:`` the token type, ``id:`` its
                                sequence number (1, 2, ...), ``data:`` the token JSON
                                (`rxtokens.tokens.token_to_json`); then ``event: done`` (data:
                                the `Completion` JSON) or ``event: error`` (data: ``{"type",
                                "message", "partial"}``), whose ``id`` is the last seq + 1.
``GET /v1/streams/{id}``        ``{"id", "status", "seq", "clients", "keep_alive",
                                "completion", "error"}``; status is ``running``, ``done``,
                                ``error`` or ``cancelled`` (completion is partial until done).
``DELETE /v1/streams/{id}``     cancel the stream (its clients get ``event: error``).
``POST /v1/chat/completions``   OpenAI-compatible (stream and non-stream), forwarded to the
                                configured upstream through the configured pipeline.
``GET /``                       the web page (``rxtokens/static``), no token needed to load it.
==============================  ===============================================================

Streams and resumption:
    Every stream is one `Broadcast` with ``replay="all"``: any number of clients
    read the same request, and a client that reconnects with ``Last-Event-ID``
    (or ``?last_event_id=N``; the header wins) resumes exactly after that event,
    with no gap and no duplicate, for as long as the stream is retained. A client
    that reconnects after it received the terminal event (its id is the last seq
    + 1) gets ``204 No Content``, which tells an ``EventSource`` to stop.
    ``retry:`` is sent first, and a ``: ping`` comment every `heartbeat` seconds
    of silence keeps idle connections open through proxies.

Cancellation and retention:
    When the last client of a stream leaves, the stream keeps running for
    `grace` seconds (an ``EventSource`` reconnecting, a page reload); if no
    client came back by then the upstream request is cancelled, unless the
    stream was started with ``keep_alive``: then it runs to completion. A stream
    nobody attaches to is cancelled after `start_timeout`. Ended streams stay
    readable (status, replay) for `retention` seconds, then they are purged (404).

Security:
    * A bearer token is required by default: ``Authorization: Bearer <token>``.
      `create_app` generates one with `secrets` when none is given and `serve`
      prints it (with the page URL) on start. Comparison is constant-time.
      ``EventSource`` cannot send headers, so the GET routes of a stream also
      accept ``?token=<token>``. Each stream also has its own ``read_token``
      (in the POST answer) that can read that one stream and nothing else.
    * Bodies over `max_body` bytes get 413, more than `max_streams` running
      streams or `max_clients` open event connections get 429; every error is
      JSON ``{"error": {"type", "message"}}``.
    * CORS is closed by default (no ``Access-Control-Allow-Origin``; preflights
      are refused); `cors_origins` lists the allowed origins (``"*"``: any).
    * Tokens and API keys never appear in responses or logs: `serve` and
      `start_server` log the access log with ``token`` query values masked
      (`RedactingAccessLogger`; pass it as ``access_log_class`` when running the
      app another way), error messages from providers are redacted, and the
      page removes ``?token=`` from its address bar.
    * Launch strings and specs can name any provider, base URL and operator, so a
      client could send the server's own API keys (read from the environment) to
      a host it chooses: they are refused unless ``allow_specs=True``.
    * `serve` binds to ``127.0.0.1`` by default.

Example:
    >>> app = create_app(upstream="testing:demo", token="s3cret")  # doctest: +SKIP
    >>> serve(port=8765)  # doctest: +SKIP
    rxtokens server on http://127.0.0.1:8765/ ...
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TypeAlias

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from reactivex import Observable, abc

from .aio import collect, to_async_iterator
from .broadcast import Broadcast, BroadcastCancelledError, Sequenced
from .errors import (
    ConfigError,
    ProviderHTTPError,
    RateLimitError,
    StreamError,
    StreamTimeoutError,
)
from .providers._http import redact
from .tokens import (
    Completion,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    StreamToken,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    token_to_json,
)

__all__ = [
    "STATE_KEY",
    "ChatChunkEncoder",
    "Operator",
    "RedactingAccessLogger",
    "ServerState",
    "UpstreamFactory",
    "app_token",
    "chat_completion_body",
    "create_app",
    "main",
    "serve",
    "start_server",
]

log = logging.getLogger("rxtokens.server")

Operator: TypeAlias = Callable[[Observable[Any]], Observable[Any]]
"""A token operator (``Observable[StreamToken] -> Observable[StreamToken]``)."""

UpstreamFactory: TypeAlias = Callable[[Any, dict[str, Any]], Observable[StreamToken]]
"""``(prompt_or_messages, params) -> Observable[StreamToken]``: a custom upstream."""

_CHAT_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "user",
)
"""OpenAI request fields the chat proxy forwards to the upstream."""

_BATCH = 1024
"""The most events written to a client in one write."""

_QUERY_SECRET = re.compile(r"((?:^|[?&])(?:token|read_token|key|api_key)=)[^&#\s]*", re.I)


# --------------------------------------------------------------------------- errors


def _error(status: int, kind: str, message: str, **headers: str) -> web.Response:
    """A JSON error response ``{"error": {"type", "message"}}``."""
    return web.json_response(
        {"error": {"type": kind, "message": message, "param": None, "code": None}},
        status=status,
        headers={"Cache-Control": "no-store", **headers},
    )


class _Abort(Exception):
    """Raised by handlers to answer with a JSON error."""

    def __init__(self, status: int, kind: str, message: str, **headers: str) -> None:
        super().__init__(message)
        self.response = _error(status, kind, message, **headers)


def _describe(exc: BaseException, secrets_: Sequence[str]) -> tuple[str, str]:
    """``(type, message)`` of an exception for clients, with secrets and key-like strings masked."""
    kind = "cancelled" if isinstance(exc, BroadcastCancelledError) else type(exc).__name__
    message = str(exc) or kind
    for secret in secrets_:
        if secret:
            message = message.replace(secret, "***")
    return kind, redact(message, None)  # also an upstream key that came from the environment


# --------------------------------------------------------------------------- streams


@dataclass(eq=False)
class _Stream:
    """One pipeline served to any number of clients."""

    id: str
    read_token: str
    broadcast: Broadcast[Any]
    keep_alive: bool
    created: float = field(default_factory=time.time)
    finished_at: float | None = None
    clients: int = 0
    hold: abc.DisposableBase | None = None
    timer: asyncio.TimerHandle | None = None
    purge: asyncio.TimerHandle | None = None
    error: BaseException | None = None
    final: asyncio.Future[Completion] | None = None

    @property
    def status(self) -> str:
        if self.finished_at is None:
            return "running"
        if self.error is None:
            return "done"
        if isinstance(self.error, BroadcastCancelledError):
            return "cancelled"
        return "error"


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


@dataclass(eq=False)
class ServerState:
    """The mutable state of one app (``app[STATE_KEY]``), exposed for tests and embedding."""

    token: str | None
    make_source: Callable[[Any, dict[str, Any]], Observable[StreamToken]]
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
    streams: dict[str, _Stream] = field(default_factory=dict)
    queues: set[_ClientQueue] = field(default_factory=set)
    chats: int = 0
    closing: bool = False

    @property
    def running(self) -> int:
        """Streams and chat completions in progress (what `max_streams` limits)."""
        return self.chats + sum(1 for s in self.streams.values() if s.finished_at is None)


STATE_KEY: web.AppKey[ServerState] = web.AppKey("rxtokens_server_state", ServerState)
"""Where `create_app` keeps its `ServerState` in the application."""


def app_token(app: web.Application) -> str | None:
    """The bearer token an app created by `create_app` requires (None: auth disabled)."""
    return app[STATE_KEY].token


# --------------------------------------------------------------------------- upstream


def _make_upstream(
    upstream: str | UpstreamFactory, options: Mapping[str, Any]
) -> tuple[Callable[[Any, dict[str, Any]], Observable[StreamToken]], str | None]:
    if callable(upstream):
        factory = upstream

        def custom(messages: Any, params: dict[str, Any]) -> Observable[StreamToken]:
            return factory(messages, params)

        return custom, None
    if not isinstance(upstream, str) or ":" not in upstream:
        raise ConfigError(
            f"upstream must be a 'provider:model' id (e.g. 'testing:demo', "
            f"'openai:gpt-4o-mini') or a function (messages, params) -> Observable, "
            f"got {upstream!r}"
        )
    from .providers import PROVIDERS, stream

    name, _, model = upstream.partition(":")
    if name not in PROVIDERS or not model:
        raise ConfigError(
            f"upstream {upstream!r}: unknown provider or no model; known providers: "
            f"{', '.join(sorted(PROVIDERS))}"
        )
    config = options  # the same dict: a demo upstream fills in its base_url at startup

    def provider(messages: Any, params: dict[str, Any]) -> Observable[StreamToken]:
        return stream(upstream, messages, **config, **params)

    return provider, model


def _make_operators(pipeline: Operator | Sequence[Operator] | str | None) -> list[Operator]:
    if pipeline is None:
        return []
    if isinstance(pipeline, str):
        from .spec import parse_launch

        # operators only: borrow the launch grammar with a placeholder source
        spec = parse_launch(f"testing prompt=x ! {pipeline}")
        if spec.sinks:
            raise ConfigError(f"the server pipeline {pipeline!r} must not contain sinks")
        return [op.build() for op in spec.operators]
    if callable(pipeline):
        return [pipeline]
    if not isinstance(pipeline, Iterable):
        raise ConfigError(
            "pipeline must be an operator, a list of operators or a launch string, "
            f"got {pipeline!r}"
        )
    ops = list(pipeline)
    for i, op in enumerate(ops):
        if not callable(op):
            raise ConfigError(f"pipeline[{i}] must be an operator (a callable), got {op!r}")
    return ops


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if value != value or value < 0 or (value == 0 and not allow_zero):  # NaN included
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


# --------------------------------------------------------------------------- the app


def create_app(
    *,
    upstream: str | UpstreamFactory = "testing:demo",
    upstream_options: Mapping[str, Any] | None = None,
    pipeline: Operator | Sequence[Operator] | str | None = None,
    token: str | None = None,
    auth: bool = True,
    cors_origins: Sequence[str] = (),
    max_body: int = 64 * 1024,
    max_streams: int = 64,
    max_clients: int = 1024,
    retention: float = 600.0,
    grace: float = 5.0,
    start_timeout: float = 30.0,
    heartbeat: float = 15.0,
    retry_ms: int = 2000,
    allow_specs: bool = False,
    max_pending: int = 100_000,
    max_retained: int = 1000,
    demo_delay: float = 0.03,
) -> web.Application:
    """The aiohttp application (see the module docstring for routes and security).

    Run it with `serve`, ``aiohttp.web.run_app`` or an ``aiohttp.test_utils.TestServer``;
    an ``AppRunner`` should be made with ``handler_cancellation=True`` so a client
    that disconnects is noticed at once (`serve` and ``TestServer`` do this; otherwise
    it is noticed at the next token or heartbeat).

    Args:
        upstream: a ``"provider:model"`` id (default: the bundled ``testing``
            loopback provider, no API key) or ``(messages, params) -> Observable``.
        upstream_options: provider configuration (``base_url``, ``api_key``,
            ``timeout`` ...); the API key is never shown to clients.
        pipeline: operators applied to every upstream stream (e.g.
            ``redact(r"sk-\\w{20}")``): one, a list, or launch-string elements
            (``"redact pattern='\\d{16}' ! smooth delay=0.02"``).
        token: the bearer token; None generates one (read it with `app_token`).
        auth: False disables the token check (only behind a trusted proxy).
        cors_origins: origins allowed to call the API from a browser (``"*"``: any).
        max_body: the largest request body, in bytes (413 beyond).
        max_streams: running streams plus chat completions at once (429 beyond).
        max_clients: open event-stream connections at once (429 beyond).
        retention: seconds an ended stream stays readable.
        max_retained: ended streams kept at most (the oldest are purged first).
        grace: seconds a stream without clients keeps running before it is cancelled.
        start_timeout: seconds a new stream waits for its first client.
        heartbeat: seconds of silence before a ``: ping`` comment.
        retry_ms: the ``retry:`` sent to clients (reconnection delay).
        allow_specs: accept ``spec`` / ``launch`` bodies in ``POST /v1/streams``.
        max_pending: a client that falls this many tokens behind is disconnected
            (it reconnects and resumes from the replay).
        demo_delay: with the ``testing`` upstream and no ``base_url``, the app runs
            the bundled loopback provider while it runs, one word every `demo_delay`
            seconds (a live-looking demo without an API key).

    Raises:
        ConfigError: invalid arguments.

    Example:
        >>> from rxtokens.operators import redact
        >>> app = create_app(pipeline=redact(r"sk-[a-z]{4}"), token="t0ken-t0ken")
        >>> app_token(app)
        't0ken-t0ken'
    """
    for name, value in (
        ("max_body", max_body),
        ("max_streams", max_streams),
        ("max_clients", max_clients),
        ("heartbeat", heartbeat),
        ("max_pending", max_pending),
        ("max_retained", max_retained),
        ("start_timeout", start_timeout),
    ):
        _positive(name, value)
    for name, value in (
        ("retention", retention),
        ("grace", grace),
        ("retry_ms", retry_ms),
        ("demo_delay", demo_delay),
    ):
        _positive(name, value, allow_zero=True)
    if token is not None and (not isinstance(token, str) or len(token) < 8):
        raise ConfigError("token must be a string of at least 8 characters")
    if isinstance(cors_origins, str):
        cors_origins = (cors_origins,)
    if upstream_options is not None and not isinstance(upstream_options, Mapping):
        raise ConfigError(f"upstream_options must be a dict, got {upstream_options!r}")
    options = dict(upstream_options or {})
    make_upstream, model = _make_upstream(upstream, options)
    operators = _make_operators(pipeline)

    def make_source(messages: Any, params: dict[str, Any]) -> Observable[StreamToken]:
        source = make_upstream(messages, params)
        return source.pipe(*operators) if operators else source

    if auth and token is None:
        token = secrets.token_urlsafe(24)
    state = ServerState(
        token=token if auth else None,
        make_source=make_source,
        upstream_model=model,
        operators=operators,
        cors_origins=frozenset(cors_origins),
        max_streams=int(max_streams),
        max_clients=int(max_clients),
        retention=float(retention),
        grace=float(grace),
        start_timeout=float(start_timeout),
        heartbeat=float(heartbeat),
        retry_ms=int(retry_ms),
        allow_specs=allow_specs,
        max_pending=int(max_pending),
        max_retained=int(max_retained),
        secrets=tuple(s for s in (token, options.get("api_key")) if isinstance(s, str) and s),
    )
    app = web.Application(
        client_max_size=int(max_body),
        middlewares=[_errors_middleware, _headers_middleware, _cors_middleware, _auth_middleware],
    )
    app[STATE_KEY] = state
    app.router.add_get("/", _index)
    app.router.add_get("/static/{name}", _static)
    app.router.add_post("/v1/streams", _create_stream)
    app.router.add_get("/v1/streams/{id}", _stream_status)
    app.router.add_delete("/v1/streams/{id}", _cancel_stream)
    app.router.add_get("/v1/streams/{id}/events", _stream_events)
    app.router.add_post("/v1/chat/completions", _chat_completions)
    app.router.add_get("/v1/models", _models)
    app.on_shutdown.append(_on_shutdown)
    if isinstance(upstream, str) and upstream.startswith("testing:") and "base_url" not in options:
        app.cleanup_ctx.append(_demo_upstream(options, demo_delay))
    return app


def _demo_upstream(
    options: dict[str, Any], delay: float
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Run the bundled loopback provider next to the app, paced like a real model."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        from .testing.server import ProviderServer, Reply

        async with ProviderServer(default=Reply(delay=delay)) as provider:
            options["base_url"] = provider.base_url_for("openai")
            yield
            options.pop("base_url", None)

    return context


# --------------------------------------------------------------------------- middlewares

_Handler: TypeAlias = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except _Abort as abort:
        return abort.response
    except web.HTTPRequestEntityTooLarge as exc:
        return _error(413, "request_too_large", f"the request body is too large ({exc.text})")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        return _error(exc.status, kind, exc.reason)
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return _error(500, "internal_error", "internal server error (see the server log)")


@web.middleware
async def _headers_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    response = await handler(request)
    if not response.prepared:
        _security_headers(response)
    return response


def _security_headers(response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def _cors_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    origin = request.headers.get("Origin")
    allowed = origin is not None and ("*" in state.cors_origins or origin in state.cors_origins)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if not allowed:
            return _error(
                403,
                "cors_forbidden",
                "cross-origin requests are not allowed from this origin "
                "(start the server with cors_origins=[...] / --cors-origin)",
            )
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": origin or "",
                "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": "Authorization, Content-Type, Last-Event-ID",
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            },
        )
    response = await handler(request)
    if allowed and not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = origin or ""
        response.headers["Vary"] = "Origin"
    return response


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _given_token(request: web.Request, *, query: bool) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if query and request.method == "GET":
        return request.query.get("token")
    return None


@web.middleware
async def _auth_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    if state.token is None or not request.path.startswith("/v1/"):
        return await handler(request)
    stream_get = request.method == "GET" and request.path.startswith("/v1/streams/")
    given = _given_token(request, query=stream_get)
    if given is not None and _same(given, state.token):
        return await handler(request)
    if given is not None and stream_get:
        stream = state.streams.get(request.path.split("/")[3])
        if stream is not None and _same(given, stream.read_token):
            return await handler(request)
    return _error(
        401,
        "authentication_error",
        "missing or invalid bearer token: send 'Authorization: Bearer <token>' (the token "
        "is printed when the server starts; event streams also accept ?token=<token>)",
        **{"WWW-Authenticate": 'Bearer realm="rxtokens"'},
    )


# --------------------------------------------------------------------------- the page


def _static_file(name: str) -> bytes | None:
    if not re.fullmatch(r"[A-Za-z0-9_-]+\.(html|js|css|svg)", name):
        return None
    try:
        return (resources.files("rxtokens") / "static" / name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


_TYPES = {
    "html": "text/html",
    "js": "text/javascript",
    "css": "text/css",
    "svg": "image/svg+xml",
}


def _page_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        ),
        "Cache-Control": "no-store",
    }


async def _index(request: web.Request) -> web.StreamResponse:
    # The page reads ?token= itself (and removes it from the address bar); the HTML
    # holds no secret, so it is served without the token.
    return await _static_named("index.html")


async def _static(request: web.Request) -> web.StreamResponse:
    return await _static_named(request.match_info["name"])


async def _static_named(name: str) -> web.StreamResponse:
    body = _static_file(name)
    if body is None:
        raise _Abort(404, "not_found", f"no static file {name!r}")
    kind = _TYPES[name.rsplit(".", 1)[1]]
    return web.Response(body=body, content_type=kind, charset="utf-8", headers=_page_headers())


async def _models(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    model = state.upstream_model or "rxtokens"
    return web.json_response(
        {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "rxtokens"}]}
    )


# --------------------------------------------------------------------------- /v1/streams


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise _Abort(
            415, "invalid_request_error", "send a JSON body with Content-Type: application/json"
        )
    try:
        data = json.loads(await request.read())
    except web.HTTPRequestEntityTooLarge:
        raise
    except ValueError as exc:
        raise _Abort(400, "invalid_request_error", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _Abort(400, "invalid_request_error", "the body must be a JSON object")
    return data


def _check_capacity(state: ServerState) -> None:
    if state.closing:
        raise _Abort(503, "shutting_down", "the server is shutting down")
    if state.running >= state.max_streams:
        raise _Abort(
            429,
            "too_many_streams",
            f"{state.max_streams} streams are running already (max_streams); "
            "retry when one has ended",
            **{"Retry-After": "1"},
        )


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
            from .spec import PipelineSpec, parse_launch

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
    source = _source_for(state, data)
    stream_id = secrets.token_urlsafe(16)
    broadcast: Broadcast[Any] = Broadcast(
        source, replay="all", keep_alive=keep_alive, name=f"stream-{stream_id[:6]}"
    )
    stream = _Stream(stream_id, secrets.token_urlsafe(16), broadcast, keep_alive)
    state.streams[stream_id] = stream
    loop = asyncio.get_running_loop()
    final = broadcast.final
    stream.final = final
    final.add_done_callback(lambda fut: _finished(state, stream, fut))
    stream.hold = broadcast.connect()
    if not broadcast.done:
        stream.timer = loop.call_later(state.start_timeout, _release, stream)
    return web.json_response(
        {
            "id": stream_id,
            "read_token": stream.read_token,
            "status_url": f"/v1/streams/{stream_id}",
            "events_url": f"/v1/streams/{stream_id}/events",
        },
        status=201,
    )


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


def _token_event(item: Sequenced) -> str:
    token = item.token
    return f"event: {token.type}\nid: {item.seq}\ndata: {token_to_json(token)}\n\n"


def _terminal_event(state: ServerState, stream: _Stream, error: BaseException | None) -> str:
    seq = stream.broadcast.seq + 1
    if error is None:
        payload = json.dumps(stream.broadcast.completion_so_far().to_dict(), ensure_ascii=False)
        return f"event: done\nid: {seq}\ndata: {payload}\n\n"
    kind, message = _describe(error, state.secrets)
    partial = getattr(error, "partial", None)
    if not isinstance(partial, Completion):
        partial = stream.broadcast.completion_so_far()
    body = {"type": kind, "message": message, "partial": partial.to_dict()}
    return f"event: error\nid: {seq}\ndata: {json.dumps(body, ensure_ascii=False)}\n\n"


async def _stream_events(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    stream = _stream_or_404(request)
    after = _last_event_id(request)
    if stream.finished_at is not None and after > stream.broadcast.seq:
        return web.Response(status=204)  # the client has the terminal event: stop
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
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, no-store, no-transform",
            "X-Accel-Buffering": "no",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
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
        await response.write(f"retry: {state.retry_ms}\n\n".encode())
        subscription = stream.broadcast.sequenced(after=after, on_gap="oldest").subscribe(
            queue.push, queue.on_error, queue.on_completed
        )
        await _pump(state, stream, queue, response)
    except (ConnectionError, asyncio.CancelledError):
        pass  # the client went away (a reconnect resumes with Last-Event-ID)
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
    state: ServerState, stream: _Stream, queue: _ClientQueue, response: web.StreamResponse
) -> None:
    """Write the client's tokens as they come, a ping when idle, then the terminal event.

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
        end = queue.end  # read before `items`: every token is queued before the end is
        if items:
            if len(items) > state.max_pending + replay:
                log.info("stream %s: a client fell too far behind; closing it", stream.id[:6])
                return
            count = min(len(items), _BATCH)
            batch = [_token_event(items.popleft()) for _ in range(count)]
            replay = max(0, replay - count)
            await response.write("".join(batch).encode())
            continue
        if end is not None:
            await response.write(_terminal_event(state, stream, end[0]).encode())
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
            await response.write(b": ping\n\n")


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


# --------------------------------------------------------------------------- OpenAI proxy

_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "function_call",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "BLOCKLIST": "content_filter",
    "SPII": "content_filter",
    "MALFORMED_FUNCTION_CALL": "stop",
    "completed": "stop",
    "incomplete": "length",
}


def _openai_finish(reason: str | None) -> str:
    return _FINISH_REASONS.get(reason or "stop", "stop")


def _usage_dict(usage: Usage) -> dict[str, Any]:
    """OpenAI's ``usage``, with ``prompt_tokens_details.cached_tokens`` and
    ``completion_tokens_details.reasoning_tokens`` when the upstream reported them."""
    prompt = usage.input_tokens or 0
    completion = usage.output_tokens or 0
    body: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if usage.cache_read_input_tokens is not None:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cache_read_input_tokens}
    if usage.reasoning_tokens is not None:
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return body


class ChatChunkEncoder:
    """Re-encodes a token stream as OpenAI ``chat.completion.chunk`` objects.

    `encode` returns the chunks (dicts) for one token, `finish` the trailing usage
    chunk (when ``include_usage``). Each choice's first chunk carries
    ``role: "assistant"``; reasoning goes out as ``reasoning_content`` (the
    convention of OpenAI-compatible servers); provider finish reasons are mapped
    to OpenAI's (``end_turn`` -> ``stop``, ``MAX_TOKENS`` -> ``length`` ...); a
    complete `ToolCall` whose fragments were not streamed is sent as one fragment.

    Example:
        >>> enc = ChatChunkEncoder("demo", chunk_id="chatcmpl-1", created=0)
        >>> enc.encode(TextDelta("Hi"))[0]["choices"][0]["delta"]
        {'role': 'assistant', 'content': 'Hi'}
        >>> enc.encode(Finish("end_turn"))[0]["choices"][0]["finish_reason"]
        'stop'
    """

    __slots__ = ("_seen_calls", "_started", "_usage", "created", "id", "include_usage", "model")

    def __init__(
        self,
        model: str,
        *,
        include_usage: bool = False,
        chunk_id: str | None = None,
        created: int | None = None,
    ) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = chunk_id or f"chatcmpl-{secrets.token_hex(12)}"
        self.created = int(time.time()) if created is None else created
        self._started: set[int] = set()
        self._seen_calls: set[tuple[int, int]] = set()
        self._usage: Usage | None = None

    def _chunk(
        self, index: int, delta: dict[str, Any], finish: str | None = None
    ) -> dict[str, Any]:
        if index not in self._started:
            self._started.add(index)
            delta = {"role": "assistant", **delta}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }

    def encode(self, token: Any) -> list[dict[str, Any]]:
        """The chunks for one token (often one, none for `Usage`)."""
        kind = type(token)
        if kind is TextDelta:
            return [self._chunk(token.index, {"content": token.text})] if token.text else []
        if kind is ReasoningDelta:
            return [self._chunk(token.index, {"reasoning_content": token.text})]
        if kind is RefusalDelta:
            return [self._chunk(token.index, {"refusal": token.text})]
        if kind is ToolCallDelta:
            self._seen_calls.add((token.choice, token.index))
            call: dict[str, Any] = {"index": token.index}
            if token.id is not None:
                call["id"] = token.id
                call["type"] = "function"
            function: dict[str, Any] = {"arguments": token.arguments}
            if token.name is not None:
                function["name"] = token.name
            call["function"] = function
            return [self._chunk(token.choice, {"tool_calls": [call]})]
        if kind is ToolCall:
            if (token.choice, token.index) in self._seen_calls:
                return []
            self._seen_calls.add((token.choice, token.index))
            whole = {
                "index": token.index,
                "id": token.id or f"call_{secrets.token_hex(8)}",
                "type": "function",
                "function": {"name": token.name, "arguments": json.dumps(token.arguments)},
            }
            return [self._chunk(token.choice, {"tool_calls": [whole]})]
        if kind is Finish:
            return [self._chunk(token.index, {}, _openai_finish(token.reason))]
        if kind is Usage:
            self._usage = token
        return []

    def finish(self) -> list[dict[str, Any]]:
        """The final usage chunk (``choices: []``), when asked for and known."""
        if not self.include_usage:
            return []
        usage = self._usage or Usage(None, None)
        return [
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": _usage_dict(usage),
            }
        ]


def chat_completion_body(
    completion: Completion, model: str, *, chunk_id: str | None = None
) -> dict[str, Any]:
    """A `Completion` as an OpenAI ``chat.completion`` object (the non-streaming answer).

    Example:
        >>> body = chat_completion_body(Completion(text="Hi", finish_reason="end_turn"), "m")
        >>> body["choices"][0]["message"]["content"], body["choices"][0]["finish_reason"]
        ('Hi', 'stop')
    """
    rows: list[dict[str, Any]] = []
    # a Completion built by hand may have no choices: choice 0 is the top level
    sources: list[Any] = list(completion.choices) if completion.choices else [completion]
    for i, choice in enumerate(sources):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": choice.text if (choice.text or not choice.tool_calls) else None,
            "refusal": choice.refusal or None,
        }
        if choice.reasoning:
            message["reasoning_content"] = choice.reasoning
        if choice.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_{secrets.token_hex(8)}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in choice.tool_calls
            ]
        rows.append(
            {
                "index": getattr(choice, "index", i),
                "message": message,
                "logprobs": None,
                "finish_reason": _openai_finish(choice.finish_reason),
            }
        )
    body: dict[str, Any] = {
        "id": chunk_id or f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": rows,
    }
    if completion.usage is not None:
        body["usage"] = _usage_dict(completion.usage)
    return body


def _upstream_error(state: ServerState, exc: BaseException) -> web.Response:
    """The JSON error answer for a failure before any byte was sent."""
    message = _describe(exc, state.secrets)[1]
    if isinstance(exc, ConfigError):
        return _error(400, "invalid_request_error", message)
    if isinstance(exc, RateLimitError):
        headers = {}
        if exc.retry_after is not None:
            headers["Retry-After"] = f"{max(0, round(exc.retry_after))}"
        return _error(429, "rate_limit_exceeded", f"upstream rate limit: {message}", **headers)
    if isinstance(exc, StreamTimeoutError):
        return _error(504, "upstream_timeout", message)
    if isinstance(exc, ProviderHTTPError):
        return _error(502, "upstream_error", f"upstream answered HTTP {exc.status}: {message}")
    if isinstance(exc, StreamError):
        return _error(502, "upstream_error", message)
    log.error("chat completion failed", exc_info=exc)
    return _error(500, "internal_error", "internal server error (see the server log)")


def _chat_request(
    state: ServerState, data: dict[str, Any]
) -> tuple[Observable[StreamToken], str, bool, bool]:
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Abort(400, "invalid_request_error", "'messages' must be a non-empty list")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise _Abort(400, "invalid_request_error", "'model' must be a string")
    params = {k: data[k] for k in _CHAT_PARAMS if k in data and data[k] is not None}
    if state.upstream_model is None and model:
        params["model"] = model
    tools = data.get("tools")
    if tools:
        params["tools"] = tools
    stream = data.get("stream", False)
    options = data.get("stream_options") or {}
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    try:
        source = state.make_source(messages, params)
    except ConfigError as exc:
        raise _Abort(400, "invalid_request_error", _describe(exc, state.secrets)[1]) from None
    shown = state.upstream_model or model or "rxtokens"
    return source, shown, bool(stream), include_usage


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    _check_capacity(state)
    data = await _json_body(request)
    source, model, streaming, include_usage = _chat_request(state, data)
    state.chats += 1
    try:
        if not streaming:
            try:
                completion = await collect(source)
            except Exception as exc:
                return _upstream_error(state, exc)
            return web.json_response(chat_completion_body(completion, model))
        return await _chat_stream(request, state, source, model, include_usage)
    finally:
        state.chats -= 1


async def _chat_stream(
    request: web.Request,
    state: ServerState,
    source: Observable[StreamToken],
    model: str,
    include_usage: bool,
) -> web.StreamResponse:
    encoder = ChatChunkEncoder(model, include_usage=include_usage)
    response: web.StreamResponse | None = None

    async def send(chunks: list[dict[str, Any]]) -> None:
        nonlocal response
        if response is None:
            response = web.StreamResponse(
                headers={
                    "Content-Type": "text/event-stream; charset=utf-8",
                    "Cache-Control": "no-cache, no-store",
                    "X-Accel-Buffering": "no",
                }
            )
            await response.prepare(request)
        if chunks:
            text = "".join(f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks)
            await response.write(text.encode())

    iterator = to_async_iterator(source, maxsize=256)
    try:
        async for token in iterator:
            chunks = encoder.encode(token)
            if chunks:
                await send(chunks)
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as exc:
        if response is None:  # nothing sent yet: a proper HTTP error
            return _upstream_error(state, exc)
        kind, message = _describe(exc, state.secrets)
        error = {"error": {"type": kind, "message": message, "param": None, "code": None}}
        with contextlib.suppress(ConnectionError):
            await send([error])
        return response
    finally:
        await iterator.aclose()
    await send(encoder.finish())
    assert response is not None
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


# --------------------------------------------------------------------------- running


class RedactingAccessLogger(AbstractAccessLogger):
    """One line per request, with ``token`` (and key-like) query values masked."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = _QUERY_SECRET.sub(r"\1***", request.path_qs)
        self.logger.info(
            '%s "%s %s" %s %.3fs',
            request.remote,
            request.method,
            path,
            response.status,
            time,
        )


async def start_server(
    app: web.Application, host: str = "127.0.0.1", port: int = 8765
) -> web.AppRunner:
    """Start `app` on ``host:port`` (0: any free port) and return its runner (``cleanup()`` stops).

    Client disconnects cancel their handler at once (``handler_cancellation``), and the
    access log masks tokens.
    """
    runner = web.AppRunner(
        app,
        handle_signals=False,
        handler_cancellation=True,
        access_log_class=RedactingAccessLogger,
        shutdown_timeout=1.0,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    print_token: Callable[[str], object] = print,
    **options: Any,
) -> None:
    """Run the server until interrupted (Ctrl-C). `options` go to `create_app`.

    When no ``token`` is given one is generated and printed (with the page URL)
    through `print_token` (stdout by default; never to the log).

    Example:
        >>> serve(port=8765, upstream="openai:gpt-4o-mini")  # doctest: +SKIP
    """
    app = create_app(**options)
    token = app_token(app)

    async def main() -> None:
        runner = await start_server(app, host, port)
        try:
            bound = runner.addresses[0]
            shown = f"[{bound[0]}]" if ":" in str(bound[0]) else str(bound[0])
            base = f"http://{shown}:{bound[1]}/"
            if token is not None and "token" not in options:
                print_token(
                    f"rxtokens server on {base}\n  token: {token}\n  open:  {base}?token={token}"
                )
            else:
                print_token(f"rxtokens server on {base}")
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def main(argv: Sequence[str] | None = None) -> int:
    """``rxtokens serve`` (also ``python -m rxtokens.server``): parse arguments and `serve`."""
    import argparse
    import os

    parser = argparse.ArgumentParser(prog="rxtokens serve", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--upstream", default="testing:demo", help="'provider:model' (default testing:demo)"
    )
    parser.add_argument("--base-url", help="the upstream's base URL")
    parser.add_argument(
        "--pipeline", help="operators in launch syntax, e.g. \"redact pattern='\\d{16}'\""
    )
    parser.add_argument(
        "--token-env",
        default="RXTOKENS_SERVER_TOKEN",
        help="environment variable holding the bearer token (default RXTOKENS_SERVER_TOKEN; "
        "unset: a token is generated and printed)",
    )
    parser.add_argument("--no-auth", action="store_true", help="disable the bearer token")
    parser.add_argument("--cors-origin", action="append", default=[], help="allowed origin")
    parser.add_argument("--allow-specs", action="store_true", help="accept specs / launch strings")
    parser.add_argument("--max-streams", type=int, default=64)
    parser.add_argument("--max-clients", type=int, default=1024)
    parser.add_argument("--retention", type=float, default=600.0)
    parser.add_argument("--grace", type=float, default=5.0)
    args = parser.parse_args(argv)
    options: dict[str, Any] = {
        "upstream": args.upstream,
        "pipeline": args.pipeline,
        "auth": not args.no_auth,
        "cors_origins": tuple(args.cors_origin),
        "allow_specs": args.allow_specs,
        "max_streams": args.max_streams,
        "max_clients": args.max_clients,
        "retention": args.retention,
        "grace": args.grace,
    }
    if args.base_url:
        options["upstream_options"] = {"base_url": args.base_url}
    token = os.environ.get(args.token_env) if args.token_env else None
    if token:
        options["token"] = token
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        serve(args.host, args.port, **options)
    except ConfigError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
