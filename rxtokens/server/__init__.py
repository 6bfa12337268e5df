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
``POST /v1/ui/chat``            the AI SDK's chat protocol (``useChat``'s default transport):
                                the ``UIMessage`` history in, a UI message stream out
                                (`rxtokens.formats.ui_message_stream`), through the upstream,
                                pipeline and ``tools``; a stream of the app like the others.
``GET /v1/ui/chat/{id}/stream`` resume the chat's running answer (replayed from its start),
                                or 204 when none is running.
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
      streams, `max_clients` open event connections, `max_clients_per_stream`
      readers of one stream or `max_clients_per_credential` connections with
      one read token get 429; every error is JSON ``{"error": {"type",
      "message"}}``, and malformed input (deeply nested JSON, odd header bytes)
      is a 4xx, never a 500.
    * A client more than `max_pending` tokens behind, or whose write takes more
      than `write_timeout`, is dropped (it resumes with ``Last-Event-ID``); a
      connection without a complete request after `start_server`'s
      `idle_timeout` is closed (slowloris, idle keep-alive sockets).
    * CORS is closed by default (no ``Access-Control-Allow-Origin``; preflights
      are refused); `cors_origins` lists the allowed origins (``"*"``: any).
    * Tokens and API keys never appear in responses or logs: `serve` and
      `start_server` log the access log with ``token`` query values masked
      (`RedactingAccessLogger`; pass it as ``access_log_class`` when running the
      app another way), error messages from providers are redacted, and the
      page removes ``?token=`` from its address bar.
    * Launch strings and specs can name any provider, base URL and operator, so a
      client could send the server's own API keys (read from the environment) to
      a host it chooses: they are refused unless ``allow_specs=True``, and even
      then a ``base_url`` outside `allow_base_urls` gets 403.
    * Secrets (the token, the upstream key, provider keys in the environment)
      are masked by value in everything sent or logged, and in reprs.
    * `serve` binds to ``127.0.0.1`` by default.

Where things are (``rxtokens/server/``):
    `app` (`create_app`, middlewares: errors, headers, CORS, auth), `streams`
    (the ``/v1/streams`` lifecycle), `proxy` (the OpenAI-compatible routes),
    `ui_chat` (the AI SDK chat routes), `page` (the web page), `run` (`serve`,
    `start_server`, `main`, the access log), `state` (`ServerState`), `errors`
    (JSON error answers), `upstream` (the configured provider, pipeline and
    tools). The bytes they send are defined in `rxtokens.formats`
    (`formats.events`, `formats.openai_chat`, `formats.ui_message_stream`).

Example:
    >>> app = create_app(upstream="testing:demo", token="s3cret")  # doctest: +SKIP
    >>> serve(port=8765)  # doctest: +SKIP
    rxtokens server on http://127.0.0.1:8765/ ...
"""

from __future__ import annotations

from ..formats.openai_chat import ChatChunkEncoder, chat_completion_body
from .app import create_app
from .run import RedactingAccessLogger, main, serve, start_server
from .state import STATE_KEY, Operator, ServerState, UpstreamFactory, app_token

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
