"""Running the server: `serve` (blocks; Ctrl-C stops), `start_server` (in a loop), `main` (CLI).

The access log (`RedactingAccessLogger`) masks ``token`` and key-like query values.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from ..aio import run_sync
from ..cache import open_store
from ..errors import ConfigError
from .app import create_app
from .state import app_token

__all__ = ["RedactingAccessLogger", "main", "serve", "start_server"]

_DESCRIPTION = (
    "Serve pipelines to browsers: an aiohttp app with SSE streams, a web page and an OpenAI proxy."
)

_QUERY_SECRET = re.compile(r"((?:^|[?&])(?:token|read_token|key|api_key)=)[^&#\s]*", re.I)


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


IDLE_TIMEOUT = 10.0
"""Default seconds a connection may wait without a complete request (see `start_server`)."""


async def start_server(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    idle_timeout: float = IDLE_TIMEOUT,
) -> web.AppRunner:
    """Start `app` on ``host:port`` (0: any free port) and return its runner (``cleanup()`` stops).

    Client disconnects cancel their handler at once (``handler_cancellation``), and the
    access log masks tokens. A connection that has not sent a complete request's
    headers `idle_timeout` seconds after it opened or after its previous response
    (a slowloris client, an idle keep-alive socket) is closed (aiohttp's
    ``keepalive_timeout``, which also covers a new connection and half-sent headers).

    Example:
        >>> runner = await start_server(create_app(), port=0)  # doctest: +SKIP
        >>> await runner.cleanup()  # doctest: +SKIP
    """
    if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, int | float):
        raise ConfigError(f"idle_timeout must be a number of seconds, got {idle_timeout!r}")
    if not idle_timeout > 0:
        raise ConfigError(f"idle_timeout must be > 0, got {idle_timeout!r}")
    runner = web.AppRunner(
        app,
        handle_signals=False,
        handler_cancellation=True,
        access_log_class=RedactingAccessLogger,
        shutdown_timeout=1.0,
        keepalive_timeout=float(idle_timeout),
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
    idle_timeout: float = IDLE_TIMEOUT,
    **options: Any,
) -> None:
    """Run the server until interrupted (Ctrl-C). `options` go to `create_app`.

    When no ``token`` is given one is generated and printed (with the page URL)
    through `print_token` (stdout by default; never to the log). Runs on
    `rxtokens.aio.run_sync` (so it refuses to start inside a running event loop:
    use `start_server` there); `idle_timeout` goes to `start_server`.

    Raises:
        ConfigError: invalid options, or called while an event loop is running.

    Example:
        >>> serve(port=8765, upstream="openai:gpt-4o-mini")  # doctest: +SKIP
    """
    app = create_app(**options)
    token = app_token(app)

    async def main() -> None:
        runner = await start_server(app, host, port, idle_timeout=idle_timeout)
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
        run_sync(main, "rxtokens.server.serve()", "await rxtokens.server.start_server(app)")


def main(argv: Sequence[str] | None = None) -> int:
    """``rxtokens serve`` (also ``python -m rxtokens.server``): parse arguments and `serve`."""
    parser = argparse.ArgumentParser(prog="rxtokens serve", description=_DESCRIPTION)
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
    parser.add_argument(
        "--allow-base-url",
        action="append",
        default=[],
        help="an upstream base URL that specs / launch strings may name (repeatable; "
        "others get 403: the server's API keys never go to a host a client chose)",
    )
    parser.add_argument("--max-streams", type=int, default=64)
    parser.add_argument("--max-clients", type=int, default=1024)
    parser.add_argument(
        "--max-clients-per-stream",
        type=int,
        help="open event-stream connections of one stream (default: max-clients / 2)",
    )
    parser.add_argument(
        "--max-clients-per-credential",
        type=int,
        help="open event-stream connections per bearer or read token (default: max-clients / 4)",
    )
    parser.add_argument(
        "--write-timeout",
        type=float,
        default=30.0,
        help="seconds one write to a client may take before it is dropped (default 30)",
    )
    parser.add_argument(
        "--max-pending",
        type=int,
        default=10_000,
        help="tokens a client may fall behind before it is dropped (default 10000)",
    )
    parser.add_argument(
        "--max-body", type=int, default=64 * 1024, help="request body bytes (default 65536)"
    )
    parser.add_argument("--retention", type=float, default=600.0)
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=IDLE_TIMEOUT,
        help="close connections without a complete request after this many seconds",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="redis://HOST:PORT: share streams with every server using this Redis "
        "(read, resume, inspect and cancel any stream on any process; needs rxtokens[redis])",
    )
    parser.add_argument(
        "--redis-heartbeat", type=float, default=1.0, help="seconds between shared heartbeats"
    )
    parser.add_argument(
        "--cache",
        metavar="STORE",
        help="a response cache for the upstream: memory, sqlite:PATH or redis://HOST:PORT/DB "
        "(an identical request is replayed without calling the upstream)",
    )
    parser.add_argument(
        "--cache-ttl", type=float, metavar="SECONDS", help="how long cached answers live"
    )
    args = parser.parse_args(argv)
    options: dict[str, Any] = {
        "upstream": args.upstream,
        "pipeline": args.pipeline,
        "auth": not args.no_auth,
        "cors_origins": tuple(args.cors_origin),
        "allow_specs": args.allow_specs,
        "allow_base_urls": tuple(args.allow_base_url),
        "idle_timeout": args.idle_timeout,
        "max_streams": args.max_streams,
        "max_clients": args.max_clients,
        "max_clients_per_stream": args.max_clients_per_stream,
        "max_clients_per_credential": args.max_clients_per_credential,
        "write_timeout": args.write_timeout,
        "max_pending": args.max_pending,
        "max_body": args.max_body,
        "retention": args.retention,
        "grace": args.grace,
    }
    if args.base_url:
        options["upstream_options"] = {"base_url": args.base_url}
    if args.redis:
        options.update(redis_url=args.redis, redis_heartbeat=args.redis_heartbeat)
    token = os.environ.get(args.token_env) if args.token_env else None
    if args.cache_ttl is not None and not args.cache:
        parser.error("--cache-ttl needs --cache")
    try:
        if args.cache:
            options["cache"] = open_store(args.cache, ttl=args.cache_ttl)
    except ConfigError as exc:
        parser.error(str(exc))
    if token:
        options["token"] = token
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        serve(args.host, args.port, **options)
    except ConfigError as exc:
        parser.error(str(exc))
    return 0
