"""A real ``redis-server`` for the tests, on a free 127.0.0.1 port (`rxtokens.testing.cluster`).

`redis_process` gives the `RedisServer` (stop and start it again to test an outage);
`redis_server` gives its URL (``redis://127.0.0.1:PORT/0``). Skipped with a one-line reason
when ``redis-server`` is not installed (a failure in CI, where ``.ci/run`` installs it).
Nothing is persisted (``--save ''``, no AOF).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rxtokens.testing.cluster import RedisServer

from .requirements import require_executable


def _started() -> RedisServer:
    server = RedisServer(require_executable("redis-server", "apt-get install redis-server"))
    server.start()
    return server


@pytest.fixture
def redis_process() -> Iterator[RedisServer]:
    """A running ``redis-server`` for one test, stopped afterwards."""
    server = _started()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_server() -> Iterator[str]:
    """The URL (``redis://127.0.0.1:PORT/0``) of a fresh redis-server, stopped afterwards."""
    server = _started()
    try:
        yield f"{server.url}/0"
    finally:
        server.close()
