"""`SqliteCache`: answers kept in one SQLite file (stdlib ``sqlite3``, no server)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError
from ._store import check_bound, check_ttl

__all__ = ["SqliteCache"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rxtokens_cache (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires REAL,
    used REAL NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rxtokens_cache_used ON rxtokens_cache (used);
"""

# the rows beyond the bounds, least recently used first out (ties: the older row)
_EVICT_ENTRIES = """
DELETE FROM rxtokens_cache WHERE key IN (
    SELECT key FROM rxtokens_cache ORDER BY used DESC, rowid DESC LIMIT -1 OFFSET ?)
"""
_EVICT_BYTES = """
DELETE FROM rxtokens_cache WHERE key IN (
    SELECT key FROM (
        SELECT key, SUM(size) OVER (ORDER BY used DESC, rowid DESC) AS running
        FROM rxtokens_cache)
    WHERE running > ?)
"""


class SqliteCache:
    """A store in one SQLite file: survives restarts, shared by threads and processes.

    WAL mode, one connection per thread (and per process after a fork), a busy
    timeout so concurrent writers wait instead of failing. Bounds and the TTL are
    applied when an answer is stored; reads refresh an entry's recency (LRU).

    Args:
        path: the database file (created with its table if missing).
        max_entries: entries kept at most (None: unbounded).
        max_bytes: total size of the stored answers kept at most (None: unbounded).
        ttl: default seconds an entry lives (None: until evicted).
        clock: the time source of the TTL and recency, in seconds (wall clock by
            default: expiry times are stored in the file and read by other processes).
        timeout: seconds a writer waits for another one's lock.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "cache.db")
        >>> SqliteCache(path).put("k", b"answer")
        >>> SqliteCache(path).get("k")  # another connection, as after a restart
        b'answer'
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_entries: int | None = 10_000,
        max_bytes: int | None = None,
        ttl: float | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ) -> None:
        if not isinstance(path, str | os.PathLike) or not str(path):
            raise ConfigError(f"path must be a file path, got {path!r}")
        self.path = Path(path)
        self.max_entries = check_bound(max_entries, "max_entries")
        self.max_bytes = check_bound(max_bytes, "max_bytes")
        self.ttl = check_ttl(ttl)
        self._clock = clock
        self._timeout = float(timeout)
        self._local = threading.local()
        try:
            with self._connection() as db:
                db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the cache database {str(path)!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"SqliteCache({str(self.path)!r}, ttl={self.ttl!r})"

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        db: sqlite3.Connection | None = getattr(local, "db", None)
        if db is None or local.pid != os.getpid():
            db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            local.db, local.pid = db, os.getpid()
        return db

    def __len__(self) -> int:
        row = self._connection().execute("SELECT COUNT(*) FROM rxtokens_cache").fetchone()
        return int(row[0])

    def get(self, key: str) -> bytes | None:
        """The bytes under `key` (now the most recently used), or None."""
        db = self._connection()
        now = self._clock()
        row = db.execute(
            "SELECT value, expires FROM rxtokens_cache WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        value, expires = row
        if expires is not None and now >= expires:
            db.execute("DELETE FROM rxtokens_cache WHERE key = ? AND expires = ?", (key, expires))
            return None
        db.execute("UPDATE rxtokens_cache SET used = ? WHERE key = ?", (now, key))
        return bytes(value)

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value` under `key`; drop expired entries and the least recently used
        beyond the bounds (one transaction)."""
        ttl = check_ttl(ttl) if ttl is not None else self.ttl
        now = self._clock()
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT OR REPLACE INTO rxtokens_cache (key, value, expires, used, size) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, value, None if ttl is None else now + ttl, now, len(value)),
            )
            db.execute("DELETE FROM rxtokens_cache WHERE expires <= ?", (now,))
            if self.max_entries is not None:
                db.execute(_EVICT_ENTRIES, (self.max_entries,))
            if self.max_bytes is not None:
                db.execute(_EVICT_BYTES, (self.max_bytes,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def delete(self, key: str) -> bool:
        """Invalidate `key`; True if it was stored."""
        cursor = self._connection().execute("DELETE FROM rxtokens_cache WHERE key = ?", (key,))
        return cursor.rowcount > 0

    def clear(self) -> None:
        """Invalidate every entry."""
        self._connection().execute("DELETE FROM rxtokens_cache")

    def close(self) -> None:
        """Close this thread's connection (others close when their thread's objects go)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
