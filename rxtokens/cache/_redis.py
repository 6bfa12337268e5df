"""`RedisCache`: answers kept in Redis, shared by every process and machine that reaches it.

The ``redis`` package's *synchronous* client: the cache operator looks up once when a
stream is subscribed and stores once at its end, from whatever scheduler the stream runs
on (asyncio, threads, ``TestScheduler``); a blocking round trip of well under a
millisecond on a LAN fits all of them, where the asyncio client would tie the cache to a
running event loop. Timeouts are short, and the operator treats a store error as a miss.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, ProviderNotInstalledError
from ._store import check_ttl

__all__ = ["RedisCache"]


class RedisCache:
    """A store in Redis: one string per answer under ``prefix + key``, TTL by ``PX``.

    The size bound is the Redis server's own (``maxmemory`` with
    ``maxmemory-policy allkeys-lru`` or ``volatile-lru``): it evicts across every
    process, which a client-side count could not do. Expiry uses the server's clock.

    Args:
        url: ``redis://HOST:PORT/DB`` (``rediss://`` for TLS, ``unix://`` for a socket).
        prefix: the key prefix of this cache (`clear` deletes only these keys).
        ttl: default seconds an entry lives (None: until Redis evicts it).
        timeout: seconds to connect and per command.
        client: a ready ``redis.Redis`` client instead of `url` (its options are yours).

    Raises:
        ProviderNotInstalledError: the ``redis`` package is missing (``rxtokens[redis]``).

    Example:
        >>> store = RedisCache("redis://127.0.0.1:6379/0", ttl=3600)  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "rxtokens:cache:",
        ttl: float | None = None,
        timeout: float = 2.0,
        client: Any = None,
    ) -> None:
        if client is None:
            try:  # optional extra: only a Redis store needs it
                import redis
            except ImportError:
                raise ProviderNotInstalledError("redis", "redis") from None
            try:
                client = redis.Redis.from_url(
                    url, socket_timeout=timeout, socket_connect_timeout=timeout
                )
            except (TypeError, ValueError, AttributeError) as exc:  # names the schemes
                raise ConfigError(f"not a Redis URL: {url!r} ({exc})") from None
        if not isinstance(prefix, str):
            raise ConfigError(f"prefix must be a string, got {prefix!r}")
        self.url = url
        self.prefix = prefix
        self.ttl = check_ttl(ttl)
        self.client = client

    def __repr__(self) -> str:
        return f"RedisCache(prefix={self.prefix!r}, ttl={self.ttl!r})"

    def get(self, key: str) -> bytes | None:
        """The bytes under `key`, or None."""
        value = self.client.get(self.prefix + key)
        return None if value is None else bytes(value)

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value` under `key` (``SET ... PX`` with the TTL in ms)."""
        ttl = check_ttl(ttl) if ttl is not None else self.ttl
        px = None if ttl is None else max(1, round(ttl * 1000))
        self.client.set(self.prefix + key, value, px=px)

    def delete(self, key: str) -> bool:
        """Invalidate `key`; True if it was stored."""
        return bool(self.client.delete(self.prefix + key))

    def clear(self) -> None:
        """Invalidate every entry under this store's prefix (``SCAN`` + ``UNLINK``)."""
        pattern = _glob_escape(self.prefix) + "*"
        batch: list[Any] = []
        for name in self.client.scan_iter(match=pattern, count=500):
            batch.append(name)
            if len(batch) >= 500:
                self.client.unlink(*batch)
                batch.clear()
        if batch:
            self.client.unlink(*batch)

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
