"""Streams shared between processes and machines: the Redis Streams token log.

`RedisTokenLog` is a `rxtokens.token_log.TokenLog` a `Broadcast` writes into;
`from_log` reads it from any process (replay, then live, then the end);
`read_log` is the same as an async iterator of `Sequenced` then `LogEnd`.
Needs the ``redis`` extra: ``pip install 'rxtokens[redis]'``.

Example:
    >>> from rxtokens.distributed import from_log
    >>> tokens = from_log("redis://127.0.0.1:6379", "answers:42", after=3)  # cold: not connected
"""

from __future__ import annotations

from ._client import LOST_AFTER, alive_key, connect
from .reader import from_log, read_log
from .redis_log import RedisTokenLog

__all__ = ["LOST_AFTER", "RedisTokenLog", "alive_key", "connect", "from_log", "read_log"]
