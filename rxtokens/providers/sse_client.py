"""`sse`: any server-sent-events endpoint as an Observable, with EventSource reconnection.

The reconnection rules follow the browser's ``EventSource``
(https://html.spec.whatwg.org/multipage/server-sent-events.html#sse-processing-model):

* the last event ID seen is sent as ``Last-Event-ID`` on every reconnection;
* a ``retry:`` field sets the reconnection delay (in ms) for the rest of the stream;
* a response other than ``200 text/event-stream`` fails the stream for good
  (no reconnection), except ``204 No Content``, which ends it normally;
* a network error, or the server closing the body, reconnects after the delay.

Unlike a browser it gives up after `max_retries` consecutive reconnection attempts
that produced no event, with `ConnectionLostError`.

With ``decode="rxtokens"`` (the default) the events of an rxtokens server
(`rxtokens.server`; the format is `rxtokens.formats.events`) are decoded: token
events become `StreamToken` s, ``done`` completes the Observable, ``error`` fails
it with `ProviderError` (``error_type`` is the server's error type, ``.partial``
the server's partial `Completion`).
``decode="raw"`` emits every `SseEvent` as it is and never ends by itself
(except on 204), like an ``EventSource``.

Example:
    >>> from rxtokens.aio import collect
    >>> tokens = sse("http://127.0.0.1:8765/v1/streams/ID/events", token="...")  # cold
    >>> completion = await collect(tokens)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

import aiohttp
from reactivex import Observable

from ..aio import from_async_iterable
from ..errors import ConfigError, ConnectionLostError, StreamDecodeError
from ..formats.events import Done, Failed, decode_event
from ..sse import SseParser
from ._http import (
    HttpRequest,
    Timeouts,
    acquire_session,
    error_from_response,
    redact,
)

__all__ = ["DEFAULT_RETRY_MS", "sse"]

DEFAULT_RETRY_MS = 3000
"""The reconnection delay before the server sends ``retry:`` (browsers use about 3 s)."""

_sleep = asyncio.sleep  # tests replace it to observe the reconnection delays


class _State:
    """What survives a reconnection: the last event ID and the reconnection delay."""

    __slots__ = ("got", "last_id", "retry")

    def __init__(self, last_id: str, retry: int) -> None:
        self.last_id = last_id
        self.retry = retry
        self.got = False  # an event arrived on the current connection


class _Reconnect(Exception):
    """The connection ended or failed: reconnect (`cause` says why)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def sse(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    token: str | None = None,
    max_retries: int = 5,
    decode: Literal["rxtokens", "raw"] = "rxtokens",
    last_event_id: str | None = None,
    retry_ms: int = DEFAULT_RETRY_MS,
    timeout: Timeouts | float | None = None,
) -> Observable[Any]:
    """A cold Observable over the SSE endpoint `url`, reconnecting like ``EventSource``.

    Each subscription opens its own connection; disposing it closes the connection.

    Marble diagram (``decode="rxtokens"``; ``x`` a dropped connection)::

        server:  -t1-t2-x     (retry ms)     -t3-done|
        sse():   -T1-T2-----------------------T3-|      (reconnects with Last-Event-ID: 2)

    Args:
        url: the ``http(s)`` URL of the event stream.
        headers: extra request headers.
        token: sent as ``Authorization: Bearer <token>`` (never shown in errors).
        max_retries: consecutive reconnection attempts without an event before
            giving up with `ConnectionLostError` (0: never reconnect).
        decode: ``"rxtokens"`` (StreamTokens from an rxtokens server) or ``"raw"``
            (every `SseEvent`).
        last_event_id: resume after this event ID from the first connection on.
        retry_ms: the reconnection delay until the server sends ``retry:``.
        timeout: connect / first byte / idle timeouts (an idle timeout reconnects;
            the rxtokens server sends a ping every 15 s by default).

    Returns:
        ``Observable[StreamToken]`` (``decode="rxtokens"``) or ``Observable[SseEvent]``.

    Raises:
        ConfigError: invalid arguments (at call time).

    Errors (``on_error``):
        ConnectionLostError: `max_retries` attempts in a row failed.
        ProviderHTTPError: the server answered with an error status (no reconnection).
        StreamDecodeError: not an event stream, or an event that is not a token.
        ProviderError: the server sent ``event: error`` (rxtokens decoding).

    Example:
        >>> obs = sse("http://127.0.0.1:8765/v1/streams/abc/events", token="t", max_retries=3)
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"sse() needs an http(s) URL, got {url!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"max_retries must be an int >= 0, got {max_retries!r}")
    if decode not in ("rxtokens", "raw"):
        raise ConfigError(f"decode must be 'rxtokens' or 'raw', got {decode!r}")
    if isinstance(retry_ms, bool) or not isinstance(retry_ms, int) or retry_ms < 0:
        raise ConfigError(f"retry_ms must be an int >= 0, got {retry_ms!r}")
    if last_event_id is not None and (
        not isinstance(last_event_id, str) or any(c in last_event_id for c in "\r\n\0")
    ):
        raise ConfigError(
            f"last_event_id must be a string without CR, LF or NUL, got {last_event_id!r}"
        )
    if headers is not None and not isinstance(headers, Mapping):
        raise ConfigError(f"headers must be a dict of strings, got {headers!r}")
    if token is not None and not isinstance(token, str):
        raise ConfigError(f"token must be a string, got {type(token).__name__}")
    timeouts = Timeouts.coerce(timeout)
    base_headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    base_headers.update(headers or {})
    if token is not None:
        base_headers["Authorization"] = f"Bearer {token}"
    request = HttpRequest("GET", url, "sse", headers=base_headers, timeouts=timeouts, secret=token)

    def factory() -> AsyncIterator[Any]:
        return _events(request, max_retries, decode, last_event_id or "", retry_ms)

    return from_async_iterable(factory)


async def _events(
    request: HttpRequest, max_retries: int, decode: str, last_id: str, retry_ms: int
) -> AsyncIterator[Any]:
    """The events of every connection, in order, reconnecting as ``EventSource`` does."""
    failures = 0
    state = _State(last_id, retry_ms)
    while True:
        state.got = False
        try:
            async for item in _connection(request, decode, state):
                yield item
        except _Reconnect as why:
            cause = why.cause
        else:
            return  # done / 204: the stream has ended
        if state.got:
            failures = 0
        failures += 1
        if failures > max_retries:
            raise ConnectionLostError(
                f"sse: gave up on {request.url!r} after {max_retries} reconnection attempt"
                f"{'' if max_retries == 1 else 's'} ({cause}); last event id "
                f"{state.last_id!r}",
                provider="sse",
            )
        await _sleep(state.retry / 1000)


async def _connection(request: HttpRequest, decode: str, state: _State) -> AsyncIterator[Any]:
    """One connection: yield its events; raise `_Reconnect` when it should be retried."""
    t = request.timeouts
    headers = dict(request.headers)
    if state.last_id:
        headers["Last-Event-ID"] = state.last_id
    session = await acquire_session()
    try:
        async with asyncio.timeout(t.first_token):
            response = await session.get(
                request.url,
                headers=headers,
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=t.connect, sock_connect=t.connect, ceil_threshold=1e9
                ),
            )
    except TimeoutError:
        raise _Reconnect("timed out connecting") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise _Reconnect(f"{type(exc).__name__}: {redact(str(exc), request.secret)}") from None
    try:
        if response.status == 204:
            return
        if response.status != 200:
            body = await response.content.read(64 * 1024)
            raise error_from_response(request, response.status, response.headers, body)
        if response.content_type != "text/event-stream":
            raise StreamDecodeError(
                f"sse: {request.url!r} answered with content type {response.content_type!r}, "
                "not 'text/event-stream'",
                provider="sse",
            )
        parser = SseParser()
        if state.last_id:  # the last event ID persists across connections (as in EventSource)
            parser.feed(f"id: {state.last_id}\n\n".encode())
        content = response.content
        while True:
            try:
                async with asyncio.timeout(t.idle):
                    chunk = await content.readany()
            except TimeoutError:
                raise _Reconnect(f"no data for {t.idle} s") from None
            except (aiohttp.ClientError, OSError) as exc:
                raise _Reconnect(f"connection lost ({type(exc).__name__})") from None
            events = parser.feed(chunk) if chunk else parser.close()
            retry = parser.reconnection_time
            if retry is not None:
                state.retry = retry
            for event in events:
                state.last_id = event.id
                state.got = True
                if decode == "raw":
                    yield event
                    continue
                item = decode_event(event)
                if item is None:  # not an rxtokens event ("message" ...): ignored
                    continue
                if isinstance(item, Done):
                    return
                if isinstance(item, Failed):
                    raise item.exception()
                yield item
            if not chunk:
                raise _Reconnect("the server closed the stream")
    finally:
        with contextlib.suppress(Exception):
            response.close()
        response.release()
