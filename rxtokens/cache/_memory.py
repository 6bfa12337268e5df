"""`MemoryCache`: the default store, an LRU dict in this process."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ._store import check_bound, check_ttl

__all__ = ["MemoryCache"]


class MemoryCache:
    """An in-memory LRU store, bounded by entries and (optionally) bytes, with a TTL.

    Lost when the process ends (use `SqliteCache` or `RedisCache` to keep answers).
    Thread-safe.

    Args:
        max_entries: entries kept at most; the least recently used go first.
        max_bytes: total size of the stored answers kept at most (None: no byte bound);
            an answer larger than this alone is not stored.
        ttl: default seconds an entry lives (None: until evicted).
        clock: the time source of the TTL, in seconds (inject one in tests).

    Example:
        >>> store = MemoryCache(max_entries=2)
        >>> for key in "abc":
        ...     store.put(key, key.encode())
        >>> store.get("a"), store.get("c"), len(store)
        (None, b'c', 2)
    """

    def __init__(
        self,
        *,
        max_entries: int | None = 1000,
        max_bytes: int | None = None,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = check_bound(max_entries, "max_entries")
        self.max_bytes = check_bound(max_bytes, "max_bytes")
        self.ttl = check_ttl(ttl)
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryCache(entries={len(self)}, bytes={self._bytes}, ttl={self.ttl!r})"

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """The total size of the stored answers."""
        return self._bytes

    def get(self, key: str) -> bytes | None:
        """The bytes under `key` (now the most recently used), or None."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            value, expires = found
            if expires is not None and self._clock() >= expires:
                self._remove(key)
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value` under `key`, then evict the least recently used beyond the bounds."""
        ttl = check_ttl(ttl) if ttl is not None else self.ttl
        with self._lock:
            self._remove(key)
            if self.max_bytes is not None and len(value) > self.max_bytes:
                return
            self._entries[key] = (value, None if ttl is None else self._clock() + ttl)
            self._bytes += len(value)
            while (self.max_entries is not None and len(self._entries) > self.max_entries) or (
                self.max_bytes is not None and self._bytes > self.max_bytes
            ):
                self._remove(next(iter(self._entries)))

    def delete(self, key: str) -> bool:
        """Invalidate `key`; True if it was stored."""
        with self._lock:
            return self._remove(key)

    def clear(self) -> None:
        """Invalidate every entry."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _remove(self, key: str) -> bool:
        found = self._entries.pop(key, None)
        if found is None:
            return False
        self._bytes -= len(found[0])
        return True
