"""`RedisCache` against a real redis-server (see tests/_redis.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import reactivex

from rxtokens.cache import RedisCache, open_store
from rxtokens.errors import ConfigError
from rxtokens.operators import aggregate, cache
from rxtokens.tokens import Finish, TextDelta, Usage

from ._redis import redis_server

__all__ = ["redis_server"]  # the fixture, imported for pytest


def test_get_put_delete_clear_and_ttl(redis_server: str) -> None:
    store = RedisCache(redis_server, prefix="t:", ttl=60)
    other = RedisCache(redis_server, prefix="other:")
    try:
        store.put("a", b"1")
        store.put("b", b"2", ttl=0.5)
        other.put("a", b"x")
        assert store.get("a") == b"1"
        assert 59_000 < store.client.pttl("t:a") <= 60_000  # the TTL is Redis's PX
        assert 0 < store.client.pttl("t:b") <= 500
        assert store.delete("a") is True
        assert store.delete("a") is False
        store.clear()
        assert store.get("b") is None
        assert other.get("a") == b"x"  # clear() is limited to its prefix
    finally:
        store.close()
        other.close()


def test_an_answer_recorded_in_one_process_is_replayed_in_another(redis_server: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = textwrap.dedent(
        f"""
        import reactivex
        from rxtokens.cache import open_store
        from rxtokens.operators import cache
        from rxtokens.tokens import Finish, TextDelta, Usage
        store = open_store({redis_server!r})
        tokens = reactivex.of(TextDelta("shared"), Usage(2, 1), Finish("stop"))
        tokens.pipe(cache(store, "answer")).subscribe()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", writer], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    store = open_store(redis_server)
    assert isinstance(store, RedisCache)
    try:
        source = reactivex.throw(RuntimeError("the upstream must not be called"))
        answer = source.pipe(cache(store, "answer"), aggregate()).run()
        assert answer.text == "shared"
        assert answer.usage == Usage(2, 1, cached=True)
    finally:
        store.close()


def test_an_unreachable_redis_is_a_miss_not_a_failure() -> None:
    store = RedisCache("redis://127.0.0.1:1/0", timeout=0.5)  # nothing listens on port 1
    tokens = [TextDelta("live"), Finish("stop")]
    out: list[object] = []
    reactivex.from_iterable(tokens).pipe(cache(store, "k")).subscribe(out.append)
    assert out == tokens
    store.close()


def test_a_url_that_is_not_redis_is_a_config_error_naming_it() -> None:
    for url in ("localhost:6379", "http://127.0.0.1:6379"):
        with pytest.raises(ConfigError, match="not a Redis URL"):
            RedisCache(url)
