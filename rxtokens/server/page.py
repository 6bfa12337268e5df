"""The web page: ``GET /`` and ``/static/{name}`` from ``rxtokens/static``, under a strict CSP.

The page holds no secret and is served without the bearer token; it reads
``?token=`` itself (and removes it from the address bar).
"""

from __future__ import annotations

import re
from importlib import resources

from aiohttp import web

from .errors import _Abort


def _static_file(name: str) -> bytes | None:
    if not re.fullmatch(r"[A-Za-z0-9_-]+\.(html|js|css|svg)", name):
        return None
    try:
        return (resources.files("rxtokens") / "static" / name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


_TYPES = {
    "html": "text/html",
    "js": "text/javascript",
    "css": "text/css",
    "svg": "image/svg+xml",
}


def _page_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        ),
        "Cache-Control": "no-store",
    }


async def _index(request: web.Request) -> web.StreamResponse:
    # The page reads ?token= itself (and removes it from the address bar); the HTML
    # holds no secret, so it is served without the token.
    return await _static_named("index.html")


async def _static(request: web.Request) -> web.StreamResponse:
    return await _static_named(request.match_info["name"])


async def _static_named(name: str) -> web.StreamResponse:
    body = _static_file(name)
    if body is None:
        raise _Abort(404, "not_found", f"no static file {name!r}")
    kind = _TYPES[name.rsplit(".", 1)[1]]
    return web.Response(body=body, content_type=kind, charset="utf-8", headers=_page_headers())
