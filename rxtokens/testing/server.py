"""A loopback provider server that speaks each provider's exact wire format.

`ProviderServer` is an aiohttp app on ``127.0.0.1`` (an ephemeral port) with the real
routes of the providers:

=================================================  ====================
``POST /v1/chat/completions``                      OpenAI Chat Completions
``POST /v1/responses``                             OpenAI Responses
``POST /v1/messages``                              Anthropic Messages
``POST /v1beta/models/{model}:streamGenerateContent``  Gemini (``?alt=sse``)
``POST /model/{modelId}/converse-stream``          Amazon Bedrock ConverseStream
``GET /v1/models``, ``GET /v1beta/models``         model lists (health checks)
``GET /foundation-models``                         Bedrock's model list
=================================================  ====================

Bodies are made by the byte-exact encoders of `rxtokens.testing.wire` from a `Script`
(Bedrock's: binary AWS event stream messages; it has no pings, so a stall is silent).
Each request takes the next queued `Reply` (or the server's default: a built-in answer
about the prompt) whose options shape the delivery: per-event delay, re-chunking, an
HTTP error in the provider's error shape (429 / 529 with ``retry-after``), a dropped
connection after N bytes, a stall, pings, a wrong content type, gzip.

Every request is recorded (`RecordedRequest`: headers without credentials, the JSON
body) with how it ended: completed, or the client disconnected first.

Example:
    >>> with ProviderServer.running_in_thread() as srv:
    ...     url = srv.base_url_for("openai")  # http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import threading
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..errors import ConfigError
from ..providers import find_provider
from .wire import Script, encode

__all__ = [
    "DEMO_ANSWER",
    "MAX_CHOICES",
    "ProviderServer",
    "RecordedRequest",
    "Reply",
    "default_script",
]

DEMO_ANSWER = (
    "rxtokens turns every language model provider into a ReactiveX observable. "
    "Bytes arrive over HTTP, the SSE parser cuts them into events, a decoder turns the "
    "events into tokens, and operators shape the flow on its way to you. "
    "Disposing the subscription closes the connection at once, so nothing keeps running "
    "in the background. This answer came from the bundled loopback server over real "
    "HTTP, so no API key was needed."
)
"""The built-in answer of the default script."""

MAX_CHOICES = 16
"""The most choices (``n``) the default script answers (beyond: 400, as OpenAI past 128)."""

_AUTH_HEADERS = (
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "cookie",
    "x-amz-security-token",
)

_ROUTES = {
    "/v1/chat/completions": "openai_chat",
    "/v1/responses": "openai_responses",
    "/v1/messages": "anthropic",
}

_PINGS = {
    "openai_chat": b": ping\n\n",
    "openai_responses": b": ping\n\n",
    "anthropic": b'event: ping\ndata: {"type": "ping"}\n\n',
    "gemini": b": ping\r\n\r\n",
    "bedrock": b"",  # the event stream protocol has no keep-alive message
}
_CONTENT_TYPES = {"bedrock": "application/vnd.amazon.eventstream"}
_BEDROCK_ERRORS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


@dataclass(frozen=True)
class Reply:
    """How the server answers one request.

    Attributes:
        script: what the model says (None: `default_script` of the request's prompt).
        events: pre-encoded SSE events, sent instead of encoding `script`.
        encode_options: extra options for the wire encoder (``ping_every`` ...).
        status: the HTTP status; >= 400 sends an error body in the provider's shape.
        error_message: the error message of that body (None: a typical one).
        error_type: the provider's error type / code (None: a typical one).
        body: a raw body sent instead (an HTML error page ...).
        content_type: overrides the content type (``text/event-stream`` / JSON).
        headers: extra response headers.
        retry_after: sent as ``retry-after`` (seconds).
        delay: seconds before each unit (event, or chunk with `chunk_size`).
        chunk_size: re-cut the body into pieces of this many bytes (ignoring events).
        drop_after: abort the connection after this many body bytes.
        pause_after: after this many units, pause (stall) ...
        pause: ... for this many seconds (None: until the client disconnects).
        ping_interval: during the pause send a ping every so many seconds.
        gzip: ``Content-Encoding: gzip``, flushed after each unit.
    """

    script: Script | None = None
    events: Sequence[bytes] | None = None
    encode_options: Mapping[str, Any] = field(default_factory=dict)
    status: int = 200
    error_message: str | None = None
    error_type: str | None = None
    body: bytes | str | None = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    delay: float = 0.0
    chunk_size: int | None = None
    drop_after: int | None = None
    pause_after: int | None = None
    pause: float | None = None
    ping_interval: float | None = None
    gzip: bool = False


@dataclass
class RecordedRequest:
    """One request the server received, and how its response ended.

    Attributes:
        method, path, query: the request line.
        headers: the request headers without credentials (Authorization, x-api-key ...).
        json: the parsed JSON body (None when absent / invalid).
        format: the wire format of the route (None for other routes).
        authorized: whether the credentials matched (always True without `api_key`).
        status: the status sent.
        units_total / units_sent: events (or chunks) planned / written.
        bytes_sent: body bytes written.
        completed: the whole body was written and the response ended normally.
        disconnected: the client went away before the end.
        started_at / ended_at: ``time.monotonic()`` when the request arrived / its response
            ended (completed, failed or disconnected).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    format: str | None
    authorized: bool = True
    status: int = 0
    units_total: int = 0
    units_sent: int = 0
    bytes_sent: int = 0
    completed: bool = False
    disconnected: bool = False
    started_at: float = field(default_factory=time.monotonic)
    ended_at: float | None = None
    ended: threading.Event = field(default_factory=threading.Event, repr=False)


def _prompt_of(fmt: str, body: Any) -> str:
    """The last user text of a request body (for the default echo script)."""
    if not isinstance(body, dict):
        return ""
    if fmt == "gemini":
        for content in reversed(body.get("contents") or []):
            if isinstance(content, dict) and content.get("role", "user") == "user":
                texts = [p.get("text", "") for p in content.get("parts", []) if isinstance(p, dict)]
                return "".join(t for t in texts if isinstance(t, str))
        return ""
    messages = body.get("input") if fmt == "openai_responses" else body.get("messages")
    if isinstance(messages, str):
        return messages
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def default_script(prompt: str, *, n: int = 1, model: str | None = None) -> Script:
    """The default reply: a short echo of `prompt` followed by `DEMO_ANSWER`.

    Example:
        >>> default_script("Hi").text.startswith('You asked: "Hi". ')
        True
    """
    shown = " ".join(prompt.split())
    if len(shown) > 80:
        shown = shown[:77] + "..."
    text = (f'You asked: "{shown}". ' if shown else "") + DEMO_ANSWER
    deltas = len(text.split())
    return Script(text=text, usage=(max(1, len(prompt.split())), deltas), n=n, model=model)


def _error_body(fmt: str, status: int, message: str | None, kind: str | None) -> bytes:
    defaults: dict[int, tuple[str, str, str]] = {
        # status: (openai type, anthropic type, gemini status)
        400: ("invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT"),
        401: ("invalid_request_error", "authentication_error", "UNAUTHENTICATED"),
        403: ("invalid_request_error", "permission_error", "PERMISSION_DENIED"),
        404: ("invalid_request_error", "not_found_error", "NOT_FOUND"),
        429: ("rate_limit_exceeded", "rate_limit_error", "RESOURCE_EXHAUSTED"),
        500: ("server_error", "api_error", "INTERNAL"),
        503: ("server_error", "api_error", "UNAVAILABLE"),
        529: ("server_error", "overloaded_error", "UNAVAILABLE"),
    }
    openai_type, anthropic_type, gemini_status = defaults.get(
        status, ("server_error", "api_error", "UNKNOWN")
    )
    if fmt == "bedrock":
        return json.dumps({"message": message or f"HTTP {status}"}).encode()
    if fmt == "anthropic":
        text = message or ("Overloaded" if status == 529 else f"HTTP {status}")
        payload: dict[str, Any] = {
            "type": "error",
            "error": {"type": kind or anthropic_type, "message": text},
        }
    elif fmt == "gemini":
        text = message or f"HTTP {status}"
        payload = {"error": {"code": status, "message": text, "status": kind or gemini_status}}
    else:
        text = message or f"HTTP {status}"
        payload = {
            "error": {
                "message": text,
                "type": kind or openai_type,
                "param": None,
                "code": "invalid_api_key" if status == 401 else None,
            }
        }
    return json.dumps(payload, indent=2).encode()


class ProviderServer:
    """The loopback provider server (see the module docstring).

    Args:
        api_key: when set, requests must carry it (``Authorization: Bearer``,
            ``x-api-key``, ``x-goog-api-key`` or ``?key=``) or get a 401 in the
            provider's shape (whose message echoes a masked key, as OpenAI's does).
        default: the `Reply` options used when no reply is queued.
        host: the interface (loopback only).

    Use as ``async with ProviderServer() as srv`` on the running loop, or
    ``with ProviderServer.running_in_thread() as srv`` from synchronous code.
    """

    def __init__(
        self, *, api_key: str | None = None, default: Reply | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.api_key = api_key
        self.default = default or Reply()
        self.host = host
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self._queue: collections.deque[Reply] = collections.deque()
        self._registered: dict[str, Reply] = {}
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (the root; see `base_url_for`)."""
        if not self.port:
            raise RuntimeError(
                "ProviderServer is not running: use 'async with' or running_in_thread()"
            )
        return f"http://{self.host}:{self.port}"

    def base_url_for(self, provider: str) -> str:
        """The ``base_url`` a provider (or its SDK) expects: OpenAI ones include ``/v1``.

        Args:
            provider: a provider name (its record's wire format decides) or a wire format.
        """
        record = find_provider(provider)
        fmt = record.wire_format if record is not None and record.wire_format else provider
        return self.base_url + ("/v1" if fmt.startswith("openai") else "")

    async def start(self) -> None:
        """Start listening on an ephemeral port."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self.port = int(runner.addresses[0][1])
        self._runner = runner

    async def close(self) -> None:
        """Stop the server and drop open connections."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> ProviderServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @classmethod
    @contextlib.contextmanager
    def running_in_thread(cls, **kwargs: Any) -> Iterator[ProviderServer]:
        """Run a server on its own event loop in a background thread.

        Example:
            >>> with ProviderServer.running_in_thread() as srv:
            ...     srv.base_url.startswith("http://127.0.0.1:")
            True
        """
        server = cls(**kwargs)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_forever, name="rxtokens-provider-server", daemon=True
        )
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(server.start(), loop).result()
            yield server
        finally:
            # Everything runs on the server's own loop, in its thread: the calling thread may
            # have a running loop of its own (a notebook, an ``async def``).
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=30)
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    # ------------------------------------------------------------------ scripting

    def queue(self, *replies: Reply | Script) -> None:
        """Answer the next requests with these replies, in order (then `register` ed / default)."""
        with self._lock:
            for reply in replies:
                self._queue.append(reply if isinstance(reply, Reply) else Reply(script=reply))

    def register(self, fmt: str, reply: Reply | Script) -> None:
        """Answer every request of wire format `fmt` with `reply` when nothing is queued.

        `fmt` is one of ``openai_chat``, ``openai_responses``, ``anthropic``, ``gemini``.

        Raises:
            ConfigError: `fmt` is not one of those (a `ValueError`).
        """
        if fmt not in _PINGS:
            raise ConfigError(f"unknown wire format {fmt!r}; known: {', '.join(_PINGS)}")
        with self._lock:
            self._registered[fmt] = reply if isinstance(reply, Reply) else Reply(script=reply)

    def _next_reply(self, fmt: str) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            return self._registered.get(fmt, self.default)

    async def wait_ended(self, index: int = -1, within: float = 10.0) -> RecordedRequest:
        """Wait until the response to request `index` has ended (completed or disconnected)."""
        record = self.requests[index]
        if not record.ended.is_set():
            loop = asyncio.get_running_loop()
            deadline = loop.time() + within
            while not record.ended.is_set():
                if loop.time() > deadline:
                    raise TimeoutError(f"request {index} did not end within {within} s")
                await asyncio.sleep(0.005)
        return record

    # ------------------------------------------------------------------ handling

    def _authorized(self, request: web.Request) -> bool:
        if self.api_key is None:
            return True
        given = (
            request.headers.get("x-api-key")
            or request.headers.get("x-goog-api-key")
            or request.query.get("key")
            or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        )
        return given == self.api_key

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        fmt = _ROUTES.get(path)
        model_from_path = None
        if path.startswith("/v1beta/models/") and path.endswith(":streamGenerateContent"):
            fmt = "gemini"
            model_from_path = path[len("/v1beta/models/") : -len(":streamGenerateContent")]
        elif path.startswith("/model/") and path.endswith("/converse-stream"):
            fmt = "bedrock"
            model_from_path = path[len("/model/") : -len("/converse-stream")]
        body: Any = None
        if request.can_read_body:
            with contextlib.suppress(ValueError):
                body = json.loads(await request.read())
        record = RecordedRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            headers={k: v for k, v in request.headers.items() if k.lower() not in _AUTH_HEADERS},
            json=body,
            format=fmt,
        )
        self.requests.append(record)
        try:
            return await self._respond(request, record, fmt, body, model_from_path)
        finally:
            record.ended_at = time.monotonic()
            record.ended.set()

    async def _respond(
        self,
        request: web.Request,
        record: RecordedRequest,
        fmt: str | None,
        body: Any,
        model_from_path: str | None,
    ) -> web.StreamResponse:
        if request.method == "GET" and path_is_models(request.path):
            path = request.path
            fmt_for_errors = (
                "gemini"
                if path.startswith("/v1beta")
                else "bedrock"
                if path.startswith("/foundation-models")
                else "openai_chat"
            )
            if not self._authorized(request):
                record.authorized = False
                return self._error_response(record, fmt_for_errors, 401, Reply(status=401))
            record.status = 200
            record.completed = True
            return web.json_response({"object": "list", "data": [{"id": "rxtokens-test"}]})
        if fmt is None or request.method != "POST":
            record.status = 404
            record.completed = True
            return web.json_response({"error": {"message": f"no route {request.path}"}}, status=404)
        if not self._authorized(request):
            record.authorized = False
            return self._error_response(record, fmt, 401, Reply(status=401))
        reply = self._next_reply(fmt)
        if reply.status >= 300 or (reply.body is not None and reply.status != 200):
            return self._error_response(record, fmt, reply.status, reply)
        events = list(reply.events) if reply.events is not None else None
        if events is None:
            model = (body or {}).get("model") if isinstance(body, dict) else None
            model = model or model_from_path
            script = reply.script
            if script is None:
                n = body.get("n", 1) if isinstance(body, dict) and fmt == "openai_chat" else 1
                n = 1 if n is None else n
                if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CHOICES:
                    message = f"'n' must be an integer from 1 to {MAX_CHOICES}, got {n!r}"
                    return self._error_response(
                        record, fmt, 400, Reply(status=400, error_message=message)
                    )
                script = default_script(_prompt_of(fmt, body), n=n, model=model)
            elif script.model is None and model:
                script = dataclasses.replace(script, model=model)
            options = dict(reply.encode_options)
            if fmt == "openai_chat" and "include_usage" not in options:
                stream_options = (body or {}).get("stream_options") or {}
                options["include_usage"] = bool(stream_options.get("include_usage"))
            events = encode(fmt, script, **options)
        if reply.body is not None:
            raw = reply.body.encode() if isinstance(reply.body, str) else reply.body
            events = [raw]
        return await self._stream(request, record, fmt, reply, events)

    def _error_response(
        self, record: RecordedRequest, fmt: str, status: int, reply: Reply
    ) -> web.Response:
        if reply.body is not None:
            raw = reply.body.encode() if isinstance(reply.body, str) else reply.body
            content_type = reply.content_type or "text/html"
        else:
            message = reply.error_message
            if fmt == "bedrock" and status == 401:
                status = 403  # what Bedrock answers for a bad key or signature
                message = message or "The security token included in the request is invalid."
            if status == 401 and message is None:
                message = (
                    "Incorrect API key provided: sk-wr***ong. You can find your API key at "
                    "https://platform.openai.com/account/api-keys."
                    if fmt.startswith("openai")
                    else "invalid x-api-key"
                    if fmt == "anthropic"
                    else "API key not valid. Please pass a valid API key."
                )
            raw = _error_body(fmt, status, message, reply.error_type)
            content_type = reply.content_type or "application/json"
            if fmt == "gemini" and status == 401 and reply.error_message is None:
                # what Google really sends for a wrong key: 400 with reason API_KEY_INVALID
                status = 400
                raw = json.dumps(
                    {
                        "error": {
                            "code": 400,
                            "message": message,
                            "status": "INVALID_ARGUMENT",
                            "details": [
                                {
                                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                    "reason": "API_KEY_INVALID",
                                    "domain": "googleapis.com",
                                    "metadata": {"service": "generativelanguage.googleapis.com"},
                                }
                            ],
                        }
                    },
                    indent=2,
                ).encode()
        headers = dict(reply.headers)
        if reply.retry_after is not None:
            headers["retry-after"] = f"{reply.retry_after:g}"
        if fmt == "anthropic":
            headers.setdefault("request-id", "req_011CTestRequestId")
        if fmt == "bedrock":
            kind = reply.error_type or _BEDROCK_ERRORS.get(status, "InternalServerException")
            headers.setdefault(
                "x-amzn-ErrorType", f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
            )
            headers.setdefault("x-amzn-RequestId", "2f7c2f47-0b1e-4c2b-9d3a-7e3f0c8a9b10")
        record.status = status
        record.completed = True
        record.units_total = record.units_sent = 1
        record.bytes_sent = len(raw)
        return web.Response(status=status, body=raw, headers=headers, content_type=content_type)

    async def _stream(
        self,
        request: web.Request,
        record: RecordedRequest,
        fmt: str,
        reply: Reply,
        events: list[bytes],
    ) -> web.StreamResponse:
        units = events
        if reply.chunk_size:
            data = b"".join(events)
            size = reply.chunk_size
            units = [data[i : i + size] for i in range(0, len(data), size)]
        record.units_total = len(units)
        headers = {"Cache-Control": "no-cache", **reply.headers}
        content_type = reply.content_type or _CONTENT_TYPES.get(fmt, "text/event-stream")
        if content_type.startswith("text/event-stream") and "charset" not in content_type:
            content_type += "; charset=utf-8"
        headers["Content-Type"] = content_type
        compressor = None
        if reply.gzip:
            headers["Content-Encoding"] = "gzip"
            compressor = zlib.compressobj(wbits=31)
        response = web.StreamResponse(status=reply.status, headers=headers)
        record.status = reply.status
        await response.prepare(request)
        ping = _PINGS[fmt]

        async def send(piece: bytes) -> bool:
            if compressor is not None:
                piece = compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)
            try:
                await response.write(piece)
            except (ConnectionError, RuntimeError):
                return False
            return _connected(request)

        pause_at = -1 if reply.pause_after is None else reply.pause_after
        try:
            for i, unit in enumerate(units):
                if i == pause_at and not await self._pause(request, reply, send, ping):
                    record.disconnected = True
                    return response
                if reply.delay and not await _sleep(request, reply.delay):
                    record.disconnected = True
                    return response
                if (
                    reply.drop_after is not None
                    and record.bytes_sent + len(unit) >= reply.drop_after
                ):
                    cut = unit[: max(0, reply.drop_after - record.bytes_sent)]
                    if cut:
                        await send(cut)
                        record.bytes_sent += len(cut)
                    transport = request.transport
                    if transport is not None:
                        transport.abort()
                    record.disconnected = False
                    return response
                if not await send(unit):
                    record.disconnected = True
                    return response
                record.units_sent += 1
                record.bytes_sent += len(unit)
            if pause_at >= len(units) and not await self._pause(request, reply, send, ping):
                record.disconnected = True
                return response
            if compressor is not None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await response.write(compressor.flush(zlib.Z_FINISH))
            try:
                await response.write_eof()
            except (ConnectionError, RuntimeError):
                record.disconnected = True
                return response
            record.completed = True
            return response
        except asyncio.CancelledError:
            record.disconnected = True
            raise

    async def _pause(self, request: web.Request, reply: Reply, send: Any, ping: bytes) -> bool:
        """Stall for `reply.pause` (None: forever), pinging if asked; False if the client left."""
        loop = asyncio.get_running_loop()
        end = None if reply.pause is None else loop.time() + reply.pause
        step = reply.ping_interval
        while end is None or loop.time() < end:
            wait = step if step is not None else 0.01
            if end is not None:
                wait = min(wait, max(0.0, end - loop.time()))
            if not await _sleep(request, wait):
                return False
            if step is not None and (end is None or loop.time() < end) and not await send(ping):
                return False
        return True


def path_is_models(path: str) -> bool:
    """Whether `path` is a model-list route (``/v1/models``, ``/v1beta/models``, Bedrock's)."""
    return path.rstrip("/") in ("/v1/models", "/v1beta/models", "/foundation-models")


def _connected(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and not transport.is_closing()


async def _sleep(request: web.Request, seconds: float) -> bool:
    """Sleep, waking early when the client disconnects; False if it did."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while True:
        if not _connected(request):
            return False
        left = end - loop.time()
        if left <= 0:
            return True
        await asyncio.sleep(min(left, 0.01))
