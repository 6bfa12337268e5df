"""How the server says no: JSON error answers, what clients see of an exception, request checks.

Every error answer is JSON ``{"error": {"type", "message", "param", "code"}}``
(OpenAI's shape); handlers raise `_Abort` and the app's error middleware answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web

from ..errors import BroadcastCancelledError, RemoteStreamError, StoreUnavailableError
from ..providers._http import redact
from .state import ServerState, _Stream

BODY_TIMEOUT = 30.0
"""Seconds a request body may take to arrive (a slow sender gets 408)."""


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


def _mask(text: str, secrets_: Sequence[str]) -> str:
    """`text` with every configured secret (by value) and key-like strings replaced by ``***``."""
    for secret in secrets_:
        if secret:
            text = text.replace(secret, "***")
    return redact(text, None)  # also key-shaped strings the server was never told about


def _describe(exc: BaseException, secrets_: Sequence[str]) -> tuple[str, str]:
    """``(type, message)`` of an exception for clients, with secrets and key-like strings masked."""
    if isinstance(exc, BroadcastCancelledError):
        kind = "cancelled"
    elif isinstance(exc, RemoteStreamError | StoreUnavailableError):
        kind = exc.error_type  # producer_lost, store_unavailable, or the remote error's type
    else:
        kind = type(exc).__name__
    return kind, _mask(str(exc) or kind, secrets_)


def _redacted_traceback(exc: BaseException, secrets_: Sequence[str]) -> str:
    """The traceback of `exc` for the server log, secrets masked."""
    return _mask("".join(traceback.format_exception(exc)), secrets_)


AIOHTTP_LOGGERS = (
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
)
"""aiohttp's own loggers: their lines (access log, "Error handling request" tracebacks,
bad HTTP messages) are written by aiohttp, not by the server's code."""


class _SecretFilter(logging.Filter):
    """Masks the server's secrets (by value) and key-like strings in a log record."""

    def __init__(self, secrets_: Sequence[str]) -> None:
        super().__init__()
        self.secrets = secrets_

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler to report
            return True
        masked = _mask(message, self.secrets)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(record.exc_info[1])).rstrip("\n")
            record.exc_text, record.exc_info = _mask(text, self.secrets), None
        elif record.exc_text:
            record.exc_text = _mask(record.exc_text, self.secrets)
        return True


def redacted_aiohttp_logs(state: ServerState) -> Any:
    """A cleanup context (``app.cleanup_ctx``): while the app runs, aiohttp's own log
    lines have the server's secrets masked, as the server's own lines have."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        secret_filter = _SecretFilter(state.secrets)
        loggers = [logging.getLogger(name) for name in AIOHTTP_LOGGERS]
        for logger in loggers:
            logger.addFilter(secret_filter)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeFilter(secret_filter)

    return context


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise _Abort(
            415, "invalid_request_error", "send a JSON body with Content-Type: application/json"
        )
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            raw = await request.read()
    except TimeoutError:
        raise _Abort(
            408, "request_timeout", f"the body did not arrive within {BODY_TIMEOUT:g} s"
        ) from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise _Abort(400, "invalid_request_error", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise _Abort(
            400, "invalid_request_error", "the body is nested too deeply to be parsed"
        ) from None
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


def _last_event_id(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID")
    if raw is None:
        raw = request.query.get("last_event_id", "")
    raw = raw.strip()
    if not raw:
        return 0
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise _Abort(
            400, "invalid_request_error", f"Last-Event-ID must be a sequence number, got {raw!r}"
        )
    return int(raw)


def _check_client_limits(state: ServerState, stream: _Stream, credential: str | None) -> None:
    """429 beyond `max_clients`, the per-stream or the per-credential limit."""
    if len(state.queues) >= state.max_clients:
        limit = f"{state.max_clients} event streams are open already (max_clients)"
    elif len(stream.readers) >= state.max_clients_per_stream:
        limit = (
            f"{state.max_clients_per_stream} clients read this stream already "
            "(max_clients_per_stream)"
        )
    elif (
        credential is not None
        and state.credential_clients.get(credential, 0) >= state.max_clients_per_credential
    ):
        limit = (
            f"{state.max_clients_per_credential} event streams are open with this read token "
            "already (max_clients_per_credential)"
        )
    else:
        return
    raise _Abort(429, "too_many_clients", limit, **{"Retry-After": "1"})
