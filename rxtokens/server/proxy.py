"""The OpenAI-compatible proxy: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Requests are forwarded to the configured upstream through the configured
pipeline; answers are written in the format of `rxtokens.formats.openai_chat`
(streamed chunks, or one ``chat.completion`` body). Errors before the first byte
are OpenAI-style JSON errors with a fitting status: an upstream 4xx caused by
the request (400, 404, 422 ...) is answered with the same status and the
upstream's message (redacted), so clients do not retry it; 502 is kept for the
server's own upstream failures (its key refused, an upstream 5xx, the upstream
unreachable). An error mid-stream is sent as a last ``data: {"error": ...}`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web
from reactivex import Observable

from ..aio import collect, to_async_iterator
from ..errors import (
    AuthenticationError,
    ConfigError,
    ProviderHTTPError,
    ProviderNotInstalledError,
    RateLimitError,
    StreamError,
    StreamTimeoutError,
)
from ..formats.openai_chat import DONE_EVENT, ChatChunkEncoder, chat_completion_body, sse_data
from ..tokens import StreamToken
from .errors import _Abort, _check_capacity, _describe, _error, _json_body, _redacted_traceback
from .state import STATE_KEY, ServerState

log = logging.getLogger("rxtokens.server")

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


async def _models(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    model = state.upstream_model or "rxtokens"
    return web.json_response(
        {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "rxtokens"}]}
    )


def _upstream_error(state: ServerState, exc: BaseException) -> web.Response:
    """The JSON error answer for a failure before any byte was sent."""
    message = _describe(exc, state.secrets)[1]
    if isinstance(exc, ConfigError):
        return _error(400, "invalid_request_error", message)
    if isinstance(exc, ProviderNotInstalledError):
        return _error(400, "provider_not_installed", message)
    if isinstance(exc, RateLimitError):
        headers = {}
        if exc.retry_after is not None:
            headers["Retry-After"] = f"{max(0, round(exc.retry_after))}"
        return _error(429, "rate_limit_exceeded", f"upstream rate limit: {message}", **headers)
    if isinstance(exc, StreamTimeoutError):
        return _error(504, "upstream_timeout", message)
    client_mistake = 400 <= getattr(exc, "status", 0) < 500 and not isinstance(
        exc, AuthenticationError
    )
    if isinstance(exc, ProviderHTTPError) and client_mistake:  # the request's fault: its status
        return _error(exc.status, "invalid_request_error", message)
    if isinstance(exc, ProviderHTTPError):  # the server's key refused, the upstream failing
        return _error(502, "upstream_error", f"upstream answered HTTP {exc.status}: {message}")
    if isinstance(exc, StreamError):
        return _error(502, "upstream_error", message)
    log.error("chat completion failed\n%s", _redacted_traceback(exc, state.secrets))
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
    except (ConfigError, ProviderNotInstalledError) as exc:
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
            await response.write(sse_data(chunks).encode())

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
    await response.write(DONE_EVENT)
    await response.write_eof()
    return response
