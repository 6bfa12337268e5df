"""The application: `create_app` (its routes and configuration) and the middlewares.

Middlewares, outermost first: errors (JSON answers for `_Abort` and HTTP
errors), security headers, CORS (closed unless ``cors_origins``), bearer-token
auth for ``/v1/`` (the app token, or a stream's read token for its GET routes).
The routes live beside: `.streams` (``/v1/streams``), `.proxy`
(``/v1/chat/completions``, ``/v1/models``) and `.page` (the web page).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeAlias

from aiohttp import web
from reactivex import Observable

from ..cache import CacheStore, open_store
from ..errors import ConfigError
from ..tokens import StreamToken
from .errors import _Abort, _error, _redacted_traceback, redacted_aiohttp_logs
from .page import _index, _static
from .proxy import _chat_completions, _models
from .state import READ_TOKEN_KEY, STATE_KEY, Operator, ServerState, UpstreamFactory
from .streams import _cancel_stream, _create_stream, _on_shutdown, _stream_events, _stream_status
from .ui_chat import ui_chat, ui_chat_resume
from .upstream import (
    _base_url,
    _make_operators,
    _make_ui_source,
    _make_upstream,
    _message_format,
    _secrets,
)

__all__ = ["create_app"]

log = logging.getLogger("rxtokens.server")


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if value != value or value < 0 or (value == 0 and not allow_zero):  # NaN included
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


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
    max_clients_per_stream: int | None = None,
    max_clients_per_credential: int | None = None,
    write_timeout: float = 30.0,
    allow_base_urls: Sequence[str] = (),
    retention: float = 600.0,
    grace: float = 5.0,
    start_timeout: float = 30.0,
    heartbeat: float = 15.0,
    retry_ms: int = 2000,
    allow_specs: bool = False,
    max_pending: int = 10_000,
    max_retained: int = 1000,
    demo_delay: float = 0.03,
    tools: Any = None,
    max_steps: int = 5,
    message_format: str | None = None,
    redis_url: str | None = None,
    redis_heartbeat: float = 1.0,
    cache: str | CacheStore | None = None,
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
            ``timeout`` ...); the API key is never shown to clients. Without a
            ``timeout`` the server uses ``upstream.SERVER_TIMEOUTS``: a progress timeout
            of 5 minutes without a token (pings do not count) and a 1-hour deadline.
        pipeline: operators applied to every upstream stream (e.g.
            ``redact(r"sk-\\w{20}")``): one, a list, or launch-string elements
            (``"redact pattern='\\d{16}' ! smooth delay=0.02"``).
        token: the bearer token; None generates one (read it with `app_token`).
        auth: False disables the token check (only behind a trusted proxy).
        cors_origins: origins allowed to call the API from a browser (``"*"``: any).
        max_body: the largest request body, in bytes (413 beyond).
        max_streams: running streams plus chat completions at once (429 beyond).
        max_clients: open event-stream connections at once (429 beyond).
        max_clients_per_stream: open event-stream connections of one stream (429
            beyond; default half of `max_clients`).
        max_clients_per_credential: open event-stream connections opened with one
            stream's read token (429 beyond; default a quarter of `max_clients`),
            so a reader cannot take everyone's slots. The app token (the owner's)
            is bound by `max_clients` only.
        write_timeout: seconds one write to an event-stream client may take; a
            client that stops reading for longer is disconnected (it can resume
            with ``Last-Event-ID``).
        allow_base_urls: upstream base URLs that specs and launch strings may name
            (``base_url=``); any other gets 403, so the server's own API keys never
            go to a host a client chose.
        retention: seconds an ended stream stays readable.
        max_retained: ended streams kept at most (the oldest are purged first).
        grace: seconds a stream without clients keeps running before it is cancelled.
        start_timeout: seconds a new stream waits for its first client.
        heartbeat: seconds of silence before a ``: ping`` comment.
        retry_ms: the ``retry:`` sent to clients (reconnection delay).
        allow_specs: accept ``spec`` / ``launch`` bodies in ``POST /v1/streams``.
        max_pending: a client that falls this many tokens behind is disconnected
            (it reconnects and resumes from the replay); checked as tokens arrive,
            also while a write to that client is blocked.
        demo_delay: with the ``testing`` upstream and no ``base_url``, the app runs
            the bundled loopback provider while it runs, one word every `demo_delay`
            seconds (a live-looking demo without an API key).
        tools: tools the ``/v1/ui/chat`` route offers the model and runs (a
            `ToolRegistry`, a list of callables or a ``{name: callable}`` dict).
        max_steps: with `tools`, the most model responses per chat request
            (`run_agent`); 1 runs the tools without a follow-up (`dispatch_tools`).
        message_format: how ``/v1/ui/chat`` writes the history for the upstream
            (None: the upstream provider's format; OpenAI chat for a function).
        redis_url: ``redis://HOST:PORT``: share ``/v1/streams`` with every server
            started with the same Redis (read, resume, inspect, cancel on any;
            see `rxtokens.server.shared`; needs ``rxtokens[redis]``).
        redis_heartbeat: seconds between the shared streams' heartbeats (the
            failure bounds are a few of them).
        cache: a response cache for the configured upstream: ``"memory"``,
            ``"sqlite:PATH"``, ``"redis://HOST:PORT/DB"`` or a `rxtokens.cache`
            store. A request whose key (`rxtokens.providers.cache_key`: upstream,
            model, messages, tools, parameters) matches a stored answer is replayed
            without calling the upstream, through the same formats, its `Usage`
            marked ``cached``; the pipeline still runs. Specs and launch strings
            are never cached.

    Raises:
        ConfigError: invalid arguments.

    Example:
        >>> from rxtokens.operators import redact
        >>> from rxtokens.server import app_token
        >>> app = create_app(pipeline=redact(r"sk-[a-z]{4}"), token="t0ken-t0ken")
        >>> app_token(app)
        't0ken-t0ken'
    """
    for name, value in (
        ("max_body", max_body),
        ("max_streams", max_streams),
        ("max_clients", max_clients),
        ("write_timeout", write_timeout),
        ("heartbeat", heartbeat),
        ("max_pending", max_pending),
        ("max_retained", max_retained),
        ("start_timeout", start_timeout),
    ):
        _positive(name, value)
    if max_clients_per_stream is None:
        max_clients_per_stream = max(1, max_clients // 2)
    if max_clients_per_credential is None:
        max_clients_per_credential = max(1, max_clients // 4)
    _positive("max_clients_per_stream", max_clients_per_stream)
    _positive("max_clients_per_credential", max_clients_per_credential)
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
    if isinstance(allow_base_urls, str):
        allow_base_urls = (allow_base_urls,)
    if upstream_options is not None and not isinstance(upstream_options, Mapping):
        raise ConfigError(f"upstream_options must be a dict, got {upstream_options!r}")
    options = dict(upstream_options or {})
    store = None if cache is None else open_store(cache)
    make_upstream, model = _make_upstream(upstream, options, store)
    operators = _make_operators(pipeline)
    ui_format = _message_format(upstream, message_format)

    def make_source(messages: Any, params: dict[str, Any]) -> Observable[StreamToken]:
        source = make_upstream(messages, params)
        return source.pipe(*operators) if operators else source

    make_ui_source = _make_ui_source(make_source, tools, max_steps, ui_format)

    if auth and token is None:
        token = secrets.token_urlsafe(24)
    state = ServerState(
        token=token if auth else None,
        make_source=make_source,
        make_ui_source=make_ui_source,
        message_format=ui_format,
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
        secrets=_secrets(token, options),
        max_clients_per_stream=int(max_clients_per_stream),
        max_clients_per_credential=int(max_clients_per_credential),
        write_timeout=float(write_timeout),
        allowed_base_urls=frozenset(_base_url(url) for url in allow_base_urls),
    )
    app = web.Application(
        client_max_size=int(max_body),
        middlewares=[_errors_middleware, _headers_middleware, _cors_middleware, _auth_middleware],
    )
    app[STATE_KEY] = state
    if redis_url is not None:
        # imported here: `redis` is an optional extra, loaded only when streams are shared
        from .shared import SharedStreams

        state.shared = SharedStreams(redis_url, heartbeat=redis_heartbeat, ttl=retention)
        app.cleanup_ctx.append(state.shared.context)
    app.router.add_get("/", _index)
    app.router.add_get("/static/{name}", _static)
    app.router.add_post("/v1/streams", _create_stream)
    app.router.add_get("/v1/streams/{id}", _stream_status)
    app.router.add_delete("/v1/streams/{id}", _cancel_stream)
    app.router.add_get("/v1/streams/{id}/events", _stream_events)
    app.router.add_post("/v1/chat/completions", _chat_completions)
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/v1/ui/chat", ui_chat)
    app.router.add_get("/v1/ui/chat/{chat_id}/stream", ui_chat_resume)
    app.on_shutdown.append(_on_shutdown)
    app.cleanup_ctx.append(redacted_aiohttp_logs(state))
    if isinstance(upstream, str) and upstream.startswith("testing:") and "base_url" not in options:
        app.cleanup_ctx.append(_demo_upstream(options, demo_delay))
    return app


def _demo_upstream(
    options: dict[str, Any], delay: float
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Run the bundled loopback provider next to the app, paced like a real model."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        # imported here, not at the top: the production path never loads rxtokens.testing
        from ..testing.server import ProviderServer, Reply

        async with ProviderServer(default=Reply(delay=delay)) as provider:
            options["base_url"] = provider.base_url_for("openai")
            yield
            options.pop("base_url", None)

    return context


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
    except Exception as exc:
        state = request.app[STATE_KEY]
        log.error(
            "unexpected error in %s %s\n%s",
            request.method,
            request.path,
            _redacted_traceback(exc, state.secrets),
        )
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
    # header bytes that are not UTF-8 arrive as surrogate escapes: compare them, never fail
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


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
        stream_id = request.path.split("/")[3]
        stream = state.streams.get(stream_id)
        if stream is not None and not stream.remote:
            if _same(given, stream.read_token):
                request[READ_TOKEN_KEY] = stream.read_token
                return await handler(request)
        elif state.shared is not None and await state.shared.read_token_ok(stream_id, given):
            request[READ_TOKEN_KEY] = given  # a stream another process produces
            return await handler(request)
    return _error(
        401,
        "authentication_error",
        "missing or invalid bearer token: send 'Authorization: Bearer <token>' (the token "
        "is printed when the server starts; event streams also accept ?token=<token>)",
        **{"WWW-Authenticate": 'Bearer realm="rxtokens"'},
    )
