"""A real ``redis-server`` per test (fixture); the processes live in rxtokens.testing.cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rxtokens.testing.cluster import (
    HEARTBEAT,
    TOKEN,
    RedisServer,
    ServerProcess,
    cluster,
    free_port,
)
from tests.requirements import require_executable

__all__ = [
    "HEARTBEAT",
    "TOKEN",
    "RedisServer",
    "ServerProcess",
    "cluster",
    "free_port",
    "redis_server",
]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A running ``redis-server`` for one test (skipped locally, failed in CI, when missing)."""
    server = RedisServer(require_executable("redis-server", "apt-get install redis-server"))
    server.start()
    try:
        yield server
    finally:
        server.close()
