"""The AI SDK chat routes: ``POST /v1/ui/chat`` and ``GET /v1/ui/chat/{chat_id}/stream``.

``useChat`` (the npm package ``ai``) with its default transport POSTs
``{"id": chat id, "messages": [UIMessage ...], "trigger", "messageId"}`` and reads
the answer as a UI message stream (`rxtokens.formats.ui_message_stream`). The
history is written in the upstream's message format
(`rxtokens.ui_messages`), streamed through the configured upstream and
pipeline, with the configured tools (`run_agent`, or `dispatch_tools` when
``max_steps`` is 1), as a stream of the app: one `Broadcast`, so the usual rules
hold (capacity, ``grace`` before an abandoned stream is cancelled, retention).

Resumption follows the AI SDK's convention: ``GET /v1/ui/chat/{chat_id}/stream``
replays the chat's running stream from its start (the client resets its message
on the first ``start`` chunk) and follows it live, or answers 204 when the chat
has no running stream.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..broadcast import Sequenced
from ..errors import ConfigError
from ..formats.ui_message_stream import (
    DONE_EVENT,
    HEADERS,
    UIMessageStreamEncoder,
    sse_event,
)
from ..ui_messages import to_provider_messages
from .errors import _Abort, _check_capacity, _describe, _json_body
from .state import STATE_KEY, ServerState, _Stream
from .streams import serve_client, start_stream

__all__ = ["ui_chat", "ui_chat_resume"]


def _headers() -> dict[str, str]:
    return {**HEADERS, "cache-control": "no-cache, no-store, no-transform"}


def _writers(
    state: ServerState, message_id: str
) -> tuple[Callable[[Sequenced], str], Callable[[BaseException | None], str]]:
    """One client's encoder: tokens -> ``data:`` events, then the end (``[DONE]``)."""
    encoder = UIMessageStreamEncoder(message_id)

    def write(item: Sequenced) -> str:
        return "".join([sse_event(c) for c in encoder.encode(item.token)])

    def end(error: BaseException | None) -> str:
        if error is None:
            chunks = encoder.close()
        else:
            chunks = [encoder.error(_describe(error, state.secrets)[1])]
        return "".join([sse_event(c) for c in chunks]) + DONE_EVENT

    return write, end


async def _serve(
    request: web.Request, state: ServerState, stream: _Stream, message_id: str
) -> web.StreamResponse:
    write, end = _writers(state, message_id)
    return await serve_client(
        request, stream, headers=_headers(), after=0, preamble="", write=write, end=end
    )


def _chat_id(data: dict[str, Any]) -> str:
    chat_id = data.get("id")
    if chat_id is None:
        return secrets.token_urlsafe(12)
    if not isinstance(chat_id, str) or not chat_id or len(chat_id) > 200:
        raise _Abort(400, "invalid_request_error", "'id' (the chat id) must be a short string")
    return chat_id


async def ui_chat(request: web.Request) -> web.StreamResponse:
    """``POST /v1/ui/chat``: answer a ``useChat`` request with a UI message stream."""
    state = request.app[STATE_KEY]
    _check_capacity(state)
    data = await _json_body(request)
    chat_id = _chat_id(data)
    history = data.get("messages")
    if not isinstance(history, list) or not history:
        raise _Abort(400, "invalid_request_error", "'messages' must be a non-empty list")
    try:
        messages = to_provider_messages(history, state.message_format)
        if not messages:
            raise ConfigError("the messages hold no text to send")
        source = state.make_ui_source(messages)
    except ConfigError as exc:
        raise _Abort(400, "invalid_request_error", _describe(exc, state.secrets)[1]) from None
    stream = start_stream(state, source)
    message_id = _message_id(history)
    state.ui_chats[chat_id] = (stream.id, message_id)
    assert stream.final is not None
    stream.final.add_done_callback(lambda _: _forget(state, chat_id, stream.id))
    return await _serve(request, state, stream, message_id)


def _message_id(history: list[Any]) -> str:
    """The answer's message id: the last message's when it is the assistant's (it continues)."""
    last = history[-1]
    given = last.get("id") if isinstance(last, dict) and last.get("role") == "assistant" else None
    if isinstance(given, str) and given:
        return given
    return f"msg-{secrets.token_urlsafe(12)}"


def _forget(state: ServerState, chat_id: str, stream_id: str) -> None:
    """The chat's stream ended: nothing to resume any more."""
    if state.ui_chats.get(chat_id, (None,))[0] == stream_id:
        del state.ui_chats[chat_id]


async def ui_chat_resume(request: web.Request) -> web.StreamResponse:
    """``GET /v1/ui/chat/{chat_id}/stream``: the chat's running stream again, or 204."""
    state = request.app[STATE_KEY]
    stream_id, message_id = state.ui_chats.get(request.match_info["chat_id"], ("", ""))
    stream = state.streams.get(stream_id)
    if stream is None or stream.finished_at is not None:
        return web.Response(status=204)
    return await _serve(request, state, stream, message_id)
