"""What every response-cache store offers, and what it stores: a recorded answer as bytes.

A store maps a key (the hex digest `rxtokens.providers.cache_key` makes) to bytes
(`encode_entry` of a `CacheEntry`), with an optional time to live. Stores never see
tokens: they stay small (`MemoryCache`, `SqliteCache`, `RedisCache`), their size
bound counts those bytes, and a new store is four methods.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ..errors import ConfigError
from ..tokens import TOKEN_TYPES

__all__ = [
    "ENTRY_VERSION",
    "CacheEntry",
    "CacheStore",
    "check_bound",
    "check_ttl",
    "decode_entry",
    "encode_entry",
    "parse_entry",
    "row_token",
]

ENTRY_VERSION = 1
"""The format of `encode_entry`'s bytes; an entry of another version reads as a miss."""


@runtime_checkable
class CacheStore(Protocol):
    """A response cache's storage: bytes by key, each with an optional time to live.

    Implementations are safe to call from several threads; `get` and `put` are
    synchronous (the cache operator calls them once per request: at subscription
    and at the end of a complete answer).
    """

    def get(self, key: str) -> bytes | None:
        """The bytes stored under `key`, or None (never stored, expired or evicted)."""
        ...

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value` under `key` for `ttl` seconds (None: the store's default)."""
        ...

    def delete(self, key: str) -> bool:
        """Invalidate `key`; True if an entry was there."""
        ...

    def clear(self) -> None:
        """Invalidate every entry of this store."""
        ...


class CacheEntry(NamedTuple):
    """A recorded answer: each token with its offset in seconds from the request, and the
    offset of the end (what ``pace="recorded"`` replays).

    Example:
        >>> from rxtokens.tokens import TextDelta
        >>> entry = CacheEntry(((0.5, TextDelta("Hi")),), 0.75)
        >>> decode_entry(encode_entry(entry)) == entry
        True
    """

    tokens: tuple[tuple[float, Any], ...]
    end: float


def encode_entry(entry: CacheEntry) -> bytes:
    """The bytes a store keeps for `entry`: UTF-8 JSON, each token a row
    ``[offset in µs, type, *fields]`` (fields in order: compact, and rebuilt positionally;
    integer offsets write faster than floats)."""
    body = {
        "v": ENTRY_VERSION,
        "end_us": round(entry.end * 1e6),
        "tokens": [[round(offset * 1e6), token.type, *token] for offset, token in entry.tokens],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def parse_entry(data: bytes) -> tuple[list[Any], float] | None:
    """The rows and end offset (seconds) of `encode_entry`'s bytes, tokens not yet built (a hit's
    first token then waits for the JSON parse only); None for another version.

    Raises:
        ConfigError: bytes that are not an entry (a corrupt store).
    """
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"a cache entry is not JSON: {exc}") from None
    if not isinstance(body, dict) or body.get("v") != ENTRY_VERSION:
        return None
    rows, end = body.get("tokens"), body.get("end_us")
    if not isinstance(rows, list) or isinstance(end, bool) or not isinstance(end, int | float):
        raise ConfigError("a cache entry is malformed: no 'tokens' list or 'end_us' offset")
    return rows, end / 1e6


def row_token(row: Any) -> tuple[float, Any]:
    """One row of `parse_entry` as ``(offset, token)``.

    Raises:
        ConfigError: a malformed row (unknown type, wrong fields).
    """
    try:
        return row[0] / 1e6, TOKEN_TYPES[row[1]](*row[2:])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"a cache entry is malformed: {exc!r} in {row!r:.80}") from None


def decode_entry(data: bytes) -> CacheEntry | None:
    """Inverse of `encode_entry`; None for bytes of another version.

    Raises:
        ConfigError: bytes that are not an entry (a corrupt store).
    """
    parsed = parse_entry(data)
    if parsed is None:
        return None
    rows, end = parsed
    return CacheEntry(tuple(row_token(row) for row in rows), end)


def check_ttl(ttl: float | None, name: str = "ttl") -> float | None:
    """`ttl` validated: None (no expiry) or a number of seconds > 0."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
        raise ConfigError(f"{name} must be a number of seconds > 0 or None, got {ttl!r}")
    if ttl == float("inf"):
        return None
    return float(ttl)


def check_bound(value: int | None, name: str) -> int | None:
    """A size bound validated: None (unbounded) or an int >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an int >= 1 or None, got {value!r}")
    return value
