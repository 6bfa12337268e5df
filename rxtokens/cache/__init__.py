"""The response cache's stores: where recorded answers are kept.

=================  ===========================================================
`MemoryCache`      an LRU dict in this process (the default)
`SqliteCache`      one SQLite file: survives restarts, shared by local processes
`RedisCache`       Redis: shared by every process and machine (``rxtokens[redis]``)
=================  ===========================================================

Every store follows `CacheStore` (``get``, ``put`` with a TTL, ``delete``,
``clear``) and keeps bytes (`encode_entry` of a `CacheEntry`). The cache itself is
`rxtokens.providers.CachedProvider` (a provider that answers from the cache) and,
for any other source, the operator `rxtokens.operators.cache`; `open_store` reads
the ``--cache`` option of ``rxtokens serve``.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigError
from ._memory import MemoryCache
from ._redis import RedisCache
from ._sqlite import SqliteCache
from ._store import ENTRY_VERSION, CacheEntry, CacheStore, decode_entry, encode_entry

__all__ = [
    "ENTRY_VERSION",
    "CacheEntry",
    "CacheStore",
    "MemoryCache",
    "RedisCache",
    "SqliteCache",
    "decode_entry",
    "encode_entry",
    "open_store",
]


def open_store(spec: str | CacheStore, *, ttl: float | None = None) -> CacheStore:
    """The store a ``--cache`` value names: ``memory``, ``sqlite:PATH`` or a Redis URL.

    Args:
        spec: ``"memory"``, ``"sqlite:/var/cache/rx.db"``, ``"redis://host:6379/0"``
            (also ``rediss://`` and ``unix://``), or a ready store (returned as is).
        ttl: the default time to live of new entries, in seconds.

    Raises:
        ConfigError: anything else (the message lists the forms).

    Example:
        >>> open_store("memory", ttl=60)
        MemoryCache(entries=0, bytes=0, ttl=60.0)
    """
    if not isinstance(spec, str):
        if isinstance(spec, CacheStore):
            return spec
        raise ConfigError(f"cache must be a store or a string, got {spec!r}")
    kind, sep, rest = spec.partition(":")
    options: dict[str, Any] = {"ttl": ttl}
    if spec == "memory":
        return MemoryCache(**options)
    if kind == "sqlite" and sep and rest:
        return SqliteCache(os.path.expanduser(rest), **options)
    if kind in ("redis", "rediss", "unix") and rest.startswith("//"):
        return RedisCache(spec, **options)
    raise ConfigError(
        f"unknown cache {spec!r}: use 'memory', 'sqlite:PATH' or 'redis://HOST:PORT/DB'"
    )
