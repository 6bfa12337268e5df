"""The Redis connection and what writer and readers of a token log agree on."""

from __future__ import annotations

from ..errors import ConfigError, ProviderNotInstalledError

try:
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:  # pragma: no cover - the `redis` extra is not installed
    raise ProviderNotInstalledError("redis", "redis") from None

__all__ = [
    "LOST_AFTER",
    "UNREACHABLE",
    "Redis",
    "ResponseError",
    "alive_key",
    "check_seconds",
    "connect",
]

LOST_AFTER = 3
"""Heartbeats a producer may miss before its readers call it lost."""

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def alive_key(key: str) -> str:
    """The producer's heartbeat key of the log at `key`."""
    return f"{key}:alive"


def connect(url: str, *, heartbeat: float = 1.0, max_connections: int = 64) -> Redis:
    """An asyncio Redis client for `url` whose reads outlast an ``XREAD BLOCK`` of `heartbeat`.

    Its pool holds at most `max_connections`; a command waits for a free one (a burst of
    requests queues instead of failing) up to 5 s or ``LOST_AFTER`` heartbeats.

    Raises:
        ConfigError: `url` is not a ``redis://``, ``rediss://`` or ``unix://`` URL.
    """
    try:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=max(5.0, LOST_AFTER * heartbeat),
            socket_connect_timeout=2.0,
            socket_timeout=max(5.0, 4 * heartbeat),
        )
    except (TypeError, ValueError) as exc:  # redis-py's own message names the schemes
        raise ConfigError(f"not a Redis URL: {url!r} ({exc})") from None
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes both


def check_seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)
