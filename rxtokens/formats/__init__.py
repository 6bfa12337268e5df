"""The server's output formats: one module per wire format, pure (no aiohttp, no I/O).

Each module says how a token stream is written in one format and, where rxtokens
reads the format back, how it is decoded. The server (`rxtokens.server`), the
`sse()` client (`rxtokens.providers.sse`), the web page (``rxtokens/static``)
and the tests share them, so the bytes are defined once. (The AI SDK's
``UIMessage`` history becomes provider messages in `rxtokens.ui_messages`: it
writes through each provider's own message format, so it lives above them.)

============================  =================================================================
`formats.events`              the server's own SSE events (``/v1/streams/{id}/events``): one
                              event per token with its sequence number as ``id:``, then
                              ``done`` or ``error``; the decoder the ``sse()`` client uses.
`formats.openai_chat`         OpenAI ``chat.completion.chunk`` objects and the non-streaming
                              ``chat.completion`` body (``/v1/chat/completions``).
`formats.ui_message_stream`   the AI SDK UI message stream (``/v1/ui/chat``, ``useChat``):
                              tokens to chunks and back (``ops.to_ui_message_stream`` /
                              ``ops.from_ui_message_stream``).
============================  =================================================================

Example:
    >>> from rxtokens.formats import events
    >>> from rxtokens.tokens import TextDelta
    >>> events.token_event(1, TextDelta("Hi"))
    'event: text\\nid: 1\\ndata: {"type":"text","text":"Hi","index":0}\\n\\n'
"""

from __future__ import annotations
