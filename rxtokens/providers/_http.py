"""HTTP transport: one aiohttp session per event loop, requests as cold ``Observable[bytes]``.

`stream_bytes` turns an `HttpRequest` into a cold observable: each subscription sends
the request, emits the body chunk by chunk as it arrives (``response.content.iter_any()``)
and disposing the subscription closes the connection at once.

Failures become `rxtokens.errors` types:

- non-2xx status -> `ProviderHTTPError` with the provider's own error message
  (OpenAI, Anthropic and Gemini error JSON are understood; HTML pages are shortened),
  401 / 403 -> `AuthenticationError`, 429 and Anthropic's 529 -> `RateLimitError`
  with ``retry_after`` from ``retry-after-ms`` / ``retry-after``;
- a 200 response that is not ``text/event-stream`` -> `StreamDecodeError`;
- connect, time-to-first-byte and idle timeouts -> `StreamTimeoutError` (``phase`` is
  ``"connect"``, ``"first_token"`` or ``"idle"``); any bytes count as life, including
  SSE comments and pings (one `Watchdog` timer per stream, not one per read; the progress
  timeout and total deadline, which pings do not reset, are `_progress.watch_progress`);
- refused, reset or aborted connections -> `ConnectionLostError`.

API keys are never part of a message, a repr or a log line: provider messages that echo
a (masked) key are redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import html
import json
import re
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from reactivex import Observable

from ..aio import from_async_iterable
from ..errors import (
    AuthenticationError,
    ConnectionLostError,
    ProviderHTTPError,
    RateLimitError,
    StreamDecodeError,
    StreamError,
    StreamTimeoutError,
    TruncatedStreamError,
)
from ._timeouts import Expired, Timeouts, Watchdog

__all__ = [
    "HttpRequest",
    "Timeouts",
    "acquire_session",
    "close_sessions",
    "error_from_response",
    "iter_bytes",
    "parse_retry_after",
    "stream_bytes",
]

USER_AGENT = "rxtokens/0.1"
_MAX_ERROR_BODY = 64 * 1024
"""Error bodies are read up to this many bytes."""
_EXCERPT = 300
"""Non-JSON error bodies are shortened to this many characters in messages."""


# --------------------------------------------------------------------------- sessions


class _SessionSlot:
    """A loop's session and the async generator that closes it at loop shutdown."""

    __slots__ = ("closer", "session")

    def __init__(self, session: aiohttp.ClientSession, closer: AsyncGenerator[None, None]):
        self.session = session
        self.closer = closer


_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SessionSlot] = (
    weakref.WeakKeyDictionary()
)


async def _closer(
    session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop
) -> AsyncGenerator[None, None]:
    # Suspended at `yield` for the life of the loop. `loop.shutdown_asyncgens()` (which
    # asyncio.run() and asyncio.Runner call) closes it, and the finally block closes the
    # session on the loop that owns it, then forgets the slot (the session refers to
    # the loop, so a kept slot would keep every finished loop alive).
    try:
        yield
    finally:
        slot = _slots.get(loop)
        if slot is not None and slot.session is session:
            del _slots[loop]
        await session.close()


async def acquire_session() -> aiohttp.ClientSession:
    """The running loop's shared session, created on first use.

    The session is closed when the loop shuts down through `asyncio.run` /
    `asyncio.Runner` (or any ``loop.shutdown_asyncgens()``), or by `close_sessions`.
    """
    loop = asyncio.get_running_loop()
    slot = _slots.get(loop)
    if slot is not None and not slot.session.closed:
        return slot.session
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"User-Agent": USER_AGENT},
    )
    closer = _closer(session, loop)
    await closer.__anext__()  # registers it with the loop's shutdown_asyncgens
    _slots[loop] = _SessionSlot(session, closer)
    return session


async def close_sessions() -> None:
    """Close the running loop's shared session (a new one is made on next use).

    Example:
        >>> async def main() -> None:
        ...     try:
        ...         ...  # use providers
        ...     finally:
        ...         await close_sessions()
    """
    slot = _slots.get(asyncio.get_running_loop())
    if slot is not None:
        await slot.closer.aclose()


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One streaming HTTP request. `secret` (the API key) is used only for redaction.

    The body is `json` (serialised by aiohttp) or, when given, the exact bytes `data`.
    `signer`, when given, is called right before every send (each subscription, each
    retry) and returns headers to add: request signatures that carry a timestamp
    (AWS SigV4) are made then, not when the request is built. The repr shows neither
    the headers nor the secret.
    """

    method: str
    url: str
    provider: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    json: Any = field(default=None, repr=False)
    timeouts: Timeouts = field(default_factory=Timeouts)
    secret: str | None = field(default=None, repr=False)
    key_hint: str = field(default="the API key", repr=False)
    """How to fix a missing / wrong key, e.g. ``"set OPENAI_API_KEY or pass api_key=..."``."""
    expect_event_stream: bool = True
    data: bytes | None = field(default=None, repr=False)
    signer: Callable[[HttpRequest], Mapping[str, str]] | None = field(default=None, repr=False)
    stream_content_type: str = "text/event-stream"
    """The content type of a streaming response (checked when `expect_event_stream`)."""

    def send_headers(self) -> dict[str, str]:
        """The headers to send now: `headers`, plus the `signer`'s (made at this moment)."""
        headers = dict(self.headers)
        if self.signer is not None:
            headers.update(self.signer(self))
        return headers


_KEYLIKE = re.compile(r"\b(?:sk-[A-Za-z0-9_\-*.]{8,}|AIza[A-Za-z0-9_\-*]{10,})")


def redact(text: str, secret: str | None) -> str:
    """`text` with `secret` and anything shaped like an API key replaced by ``***``."""
    if secret:
        text = text.replace(secret, "***")
    return _KEYLIKE.sub("***", text)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date).

    Example:
        >>> parse_retry_after({"retry-after": "7"})
        7.0
        >>> parse_retry_after({"retry-after-ms": "250", "retry-after": "7"})
        0.25
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    ms = lowered.get("retry-after-ms")
    if ms is not None:
        with contextlib.suppress(ValueError):
            value = float(ms) / 1000.0
            if value >= 0:
                return value
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    with contextlib.suppress(ValueError):
        value = float(raw)
        return value if value >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _error_message(body: bytes, content_type: str) -> tuple[str, str | None]:
    """The provider's error message and type from an error body (any provider's shape)."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # Gemini's streaming endpoint wraps errors in a list
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            message = err.get("message") or err.get("detail") or ""
            kind = err.get("type") or err.get("status") or err.get("code")
            return str(message) or json.dumps(err)[:_EXCERPT], None if kind is None else str(kind)
        if isinstance(err, str):  # {"error": "model not found"} (Ollama, llama.cpp)
            return err, None
        detail = data.get("detail")
        if isinstance(detail, str):
            return detail, None
    stripped = text
    if "html" in content_type or stripped.lstrip().startswith("<"):
        stripped = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", text, flags=re.I | re.S)
        stripped = html.unescape(re.sub(r"<[^>]+>", " ", stripped))
    stripped = " ".join(stripped.split())
    if len(stripped) > _EXCERPT:
        stripped = stripped[:_EXCERPT] + "..."
    return stripped or "(empty body)", None


def error_from_response(
    request: HttpRequest, status: int, headers: Mapping[str, str], body: bytes
) -> ProviderHTTPError:
    """The exception for a non-2xx response (pure: used by tests and the SDK adapters)."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    message, error_type = _error_message(body, content_type.lower())
    message = redact(message, request.secret)
    body_text = redact(body.decode("utf-8", "replace"), request.secret)
    provider = request.provider
    kwargs: dict[str, Any] = {
        "status": status,
        "body": body_text,
        "headers": dict(headers),
        "provider": provider,
    }
    kind = f" ({error_type})" if error_type else ""
    # Gemini answers a bad key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID.
    bad_gemini_key = status == 400 and (
        b"API_KEY_INVALID" in body or "API key not valid" in message
    )
    if status in (401, 403) or bad_gemini_key:
        what = "not allowed to do this" if status == 403 else "missing or wrong"
        return AuthenticationError(
            f"{provider} rejected the request with HTTP {status}: the API key is {what} "
            f"({request.key_hint}). The provider said{kind}: {message}",
            **kwargs,
        )
    if status in (429, 529):
        retry_after = parse_retry_after(headers)
        wait = f"; retry after {retry_after:g} s" if retry_after is not None else ""
        what = "is overloaded" if status == 529 else "rate-limited the request"
        return RateLimitError(
            f"{provider} {what} (HTTP {status}{wait}). The provider said{kind}: {message}",
            retry_after=retry_after,
            **kwargs,
        )
    return ProviderHTTPError(
        f"{provider} returned HTTP {status}{kind}: {message}",
        **kwargs,
    )


async def _read_capped(response: aiohttp.ClientResponse, seconds: float | None) -> bytes:
    parts: list[bytes] = []
    size = 0
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with asyncio.timeout(seconds):
            while size < _MAX_ERROR_BODY:
                chunk = await response.content.read(_MAX_ERROR_BODY - size)
                if not chunk:
                    break
                parts.append(chunk)
                size += len(chunk)
    return b"".join(parts)


def _timeout_error(request: HttpRequest, phase: str, timeout: float) -> StreamTimeoutError:
    what = {
        "connect": "could not connect",
        "first_token": "sent no response bytes",
        "idle": "sent nothing (not even a ping)",
    }[phase]
    return StreamTimeoutError(
        f"{request.provider} {what} within {timeout:g} s ({phase} timeout, url "
        f"{request.url!r}); raise the timeout or check the server",
        phase=phase,
        timeout=timeout,
        provider=request.provider,
    )


def _lost(request: HttpRequest, exc: BaseException, when: str) -> StreamError:
    """The error for a failed connection.

    Before the response: `ConnectionLostError` (nothing was received; safe to retry).
    Mid-stream: `TruncatedStreamError`, like a body that ends without the terminal event
    (`StreamDecodeError` when aiohttp could not decode the body's content-encoding).
    """
    detail = redact(str(exc), request.secret) or type(exc).__name__
    cls: type[StreamError] = ConnectionLostError
    if when == "lost mid-stream":
        undecodable = "content-encoding" in detail.lower() or "decode" in detail.lower()
        cls = StreamDecodeError if undecodable else TruncatedStreamError
    return cls(
        f"{request.provider}: connection {when} ({type(exc).__name__}: {detail}; url "
        f"{request.url!r})",
        provider=request.provider,
    )


async def iter_bytes(request: HttpRequest) -> AsyncIterator[bytes]:
    """Send `request` and yield the response body chunk by chunk, as it arrives.

    Closing the generator early (``aclose()``, cancellation) closes the connection.

    Raises:
        ProviderHTTPError: (and subclasses) for a non-2xx status.
        StreamDecodeError: for a 200 response that is not an event stream.
        StreamTimeoutError: connect / first_token / idle timeout.
        ConnectionLostError: refused, reset or aborted connection.
    """
    t = request.timeouts
    session = await acquire_session()
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = None if t.first_token is None else started + t.first_token
    try:
        async with asyncio.timeout_at(deadline):
            response = await session.request(
                request.method,
                request.url,
                headers=request.send_headers(),
                json=request.json if request.data is None else None,
                data=request.data,
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=t.connect, sock_connect=t.connect, ceil_threshold=1e9
                ),
            )
    except aiohttp.ConnectionTimeoutError:
        raise _timeout_error(request, "connect", t.connect or 0.0) from None
    except TimeoutError:
        raise _timeout_error(request, "first_token", t.first_token or 0.0) from None
    except aiohttp.ClientError as exc:
        raise _lost(request, exc, "failed") from None
    finished = False
    watchdog = Watchdog(loop, response.content)
    try:
        if response.status >= 300:
            body = await _read_capped(response, t.idle)
            raise error_from_response(request, response.status, response.headers, body)
        expected = request.stream_content_type
        if request.expect_event_stream and response.content_type != expected:
            body = await _read_capped(response, t.idle)
            message, _ = _error_message(body[:4096], response.content_type)
            raise StreamDecodeError(
                f"{request.provider} answered HTTP {response.status} with content type "
                f"{response.content_type!r}, not {expected!r} (is the URL "
                f"{request.url!r} a streaming endpoint?): {redact(message, request.secret)}",
                provider=request.provider,
            )
        readany = response.content.readany
        if deadline is not None:
            watchdog.wait_until(deadline)
        chunk = b""
        try:
            chunk = await readany()
            watchdog.reading = False
            if t.idle is None:  # no idle timeout: the first read was the last one watched
                watchdog.cancel()
                while chunk:
                    yield chunk
                    chunk = await readany()
            else:
                idle = t.idle
                clock = loop.time
                while chunk:
                    yield chunk
                    watchdog.wait_until(clock() + idle)
                    chunk = await readany()
                    watchdog.reading = False
        except Expired:
            phase, limit = ("first_token", t.first_token) if not chunk else ("idle", t.idle)
            raise _timeout_error(request, phase, limit or 0.0) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _lost(request, exc, "lost mid-stream") from None
        finished = True
    finally:
        watchdog.cancel()
        if not finished:
            response.close()  # drop the connection now, never reuse a half-read one
        response.release()


def stream_bytes(request: HttpRequest) -> Observable[bytes]:
    """A cold observable of the response body of `request`, chunk by chunk.

    Each subscription sends the request once; disposing closes the connection.

    Example:
        >>> req = HttpRequest("POST", "http://127.0.0.1:8000/v1/chat/completions", "openai")
        >>> body = stream_bytes(req)  # nothing is sent until subscription
    """
    return from_async_iterable(lambda: iter_bytes(request))
