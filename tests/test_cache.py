"""The response cache: stores (memory, SQLite), entries, keys, and the ``cache`` operator."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import reactivex
from hypothesis import given
from hypothesis import strategies as st
from reactivex.testing import ReactiveTest, TestScheduler

from rxtokens.cache import (
    CacheEntry,
    CacheStore,
    MemoryCache,
    RedisCache,
    SqliteCache,
    decode_entry,
    encode_entry,
    open_store,
)
from rxtokens.errors import ConfigError, TruncatedStreamError
from rxtokens.operators import aggregate, cache
from rxtokens.providers import cache_key
from rxtokens.tokens import Finish, TextDelta, ToolCall, Usage

on_next, on_completed, on_error = (
    ReactiveTest.on_next,
    ReactiveTest.on_completed,
    ReactiveTest.on_error,
)
subscribe = ReactiveTest.subscribe

ANSWER = [TextDelta("Hel"), TextDelta("lo"), Usage(3, 2), Finish("stop")]


class Clock:
    """An injected clock: the TTL tests move time without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _counting(tokens: list[Any], calls: list[int]) -> reactivex.Observable[Any]:
    def make(_: Any) -> reactivex.Observable[Any]:
        calls.append(1)
        return reactivex.from_iterable(tokens)

    return reactivex.defer(make)


def _run(source: reactivex.Observable[Any]) -> list[Any]:
    out: list[Any] = []
    source.subscribe(out.append)
    return out


def _uncached(tokens: list[Any]) -> list[Any]:
    return [t._replace(cached=False) if type(t) is Usage else t for t in tokens]


# --------------------------------------------------------------------------- entries


def test_an_entry_round_trips_through_bytes_with_every_token_kind() -> None:
    tokens = (
        (0.0, TextDelta("é ✨")),
        (0.25, ToolCall(0, "c1", "f", {"a": [1, 2]})),
        (0.5, Usage(1, 2, cache_read_input_tokens=1)),
        (0.5, Finish("stop")),
    )
    entry = CacheEntry(tokens, 0.75)
    assert decode_entry(encode_entry(entry)) == entry


def test_an_entry_of_another_version_reads_as_a_miss_and_garbage_is_a_config_error() -> None:
    assert decode_entry(b'{"v": 99, "tokens": [], "end": 0}') is None
    with pytest.raises(ConfigError, match="not JSON"):
        decode_entry(b"\xff garbage")


def test_usage_cached_round_trips_and_is_left_out_of_the_json_when_false() -> None:
    from rxtokens.tokens import token_from_json, token_to_json

    assert "cached" not in token_to_json(Usage(1, 2))
    assert token_from_json(token_to_json(Usage(1, 2, cached=True))) == Usage(1, 2, cached=True)
    assert token_from_json('{"type":"usage","input_tokens":1}').cached is False


# --------------------------------------------------------------------------- the operator


def test_the_same_request_twice_is_a_hit_with_the_same_tokens_and_one_source_call() -> None:
    store, calls = MemoryCache(), []
    source = _counting(ANSWER, calls).pipe(cache(store, "k"))
    first, second = _run(source), _run(source)
    assert first == ANSWER
    assert _uncached(second) == ANSWER
    assert [t for t in second if type(t) is Usage] == [Usage(3, 2, cached=True)]
    assert len(calls) == 1


def test_a_hit_without_recorded_usage_ends_with_a_cached_usage() -> None:
    store = MemoryCache()
    tokens = [TextDelta("Hi"), Finish("stop")]
    source = reactivex.from_iterable(tokens).pipe(cache(store, "k"))
    _run(source)
    assert _run(source) == [*tokens, Usage(cached=True)]
    assert source.pipe(aggregate()).run().usage == Usage(cached=True)


@pytest.mark.parametrize(
    "failing",
    [
        reactivex.concat(reactivex.of(TextDelta("Hi")), reactivex.throw(TruncatedStreamError("x"))),
        reactivex.throw(RuntimeError("boom")),
        reactivex.of(TextDelta("Hi"), Finish("error")),
        reactivex.empty(),
    ],
    ids=["truncated", "error", "finish-error", "empty"],
)
def test_a_failed_or_empty_answer_is_not_stored(failing: reactivex.Observable[Any]) -> None:
    store = MemoryCache()
    failing.pipe(cache(store, "k")).subscribe(on_error=lambda _: None)
    assert store.get("k") is None


def test_a_subscription_disposed_before_the_end_stores_nothing() -> None:
    scheduler = TestScheduler()
    store = MemoryCache()
    source = scheduler.create_cold_observable(
        on_next(10, TextDelta("a")), on_next(20, TextDelta("b")), on_completed(30)
    )
    scheduler.start(lambda: source.pipe(cache(store, "k")), disposed=215)
    assert source.subscriptions == [subscribe(200, 215)]
    assert len(store) == 0


def test_take_on_a_hit_stops_the_replay_and_a_take_on_a_miss_stores_nothing() -> None:
    store, calls = MemoryCache(), []
    source = _counting(ANSWER, calls).pipe(cache(store, "k"))
    assert _run(source.pipe(reactivex.operators.take(1))) == [TextDelta("Hel")]
    assert len(store) == 0  # the take disposed the miss before its end
    _run(source)
    assert _run(source.pipe(reactivex.operators.take(2))) == ANSWER[:2]
    assert len(calls) == 2


def test_pace_recorded_replays_at_the_recorded_offsets_marble() -> None:
    store = MemoryCache()
    first = TestScheduler()
    source = first.create_cold_observable(
        on_next(10, TextDelta("a")), on_next(30, TextDelta("b")), on_completed(45)
    )
    live = first.start(lambda: source.pipe(cache(store, "k", pace="recorded", scheduler=first)))
    assert live.messages == [
        on_next(210, TextDelta("a")),
        on_next(230, TextDelta("b")),
        on_completed(245),
    ]
    replay = TestScheduler()
    again = replay.create_cold_observable(on_next(1, TextDelta("never")), on_completed(2))
    hit = replay.start(
        lambda: again.pipe(cache(store, "k", pace="recorded", scheduler=replay)), created=100
    )
    assert hit.messages == [
        on_next(210, TextDelta("a")),
        on_next(230, TextDelta("b")),
        on_next(245, Usage(cached=True)),
        on_completed(245),
    ]
    assert again.subscriptions == []  # a hit never subscribes the source


def test_pace_recorded_disposal_cancels_the_pending_replay() -> None:
    store = MemoryCache()
    store.put("k", encode_entry(CacheEntry(((10.0, TextDelta("a")), (50.0, TextDelta("b"))), 60)))
    scheduler = TestScheduler()
    never = reactivex.never()
    hit = scheduler.start(
        lambda: never.pipe(cache(store, "k", pace="recorded", scheduler=scheduler)), disposed=230
    )
    assert hit.messages == [on_next(210, TextDelta("a"))]


def test_pace_instant_replays_everything_at_subscription() -> None:
    store = MemoryCache()
    store.put("k", encode_entry(CacheEntry(((10.0, TextDelta("a")), (50.0, Finish("stop"))), 60)))
    scheduler = TestScheduler()
    hit = scheduler.start(lambda: reactivex.never().pipe(cache(store, "k", scheduler=scheduler)))
    assert hit.messages == [
        on_next(200, TextDelta("a")),
        on_next(200, Finish("stop")),
        on_next(200, Usage(cached=True)),
        on_completed(200),
    ]


class _BrokenStore:
    def get(self, key: str) -> bytes | None:
        raise OSError("store down")

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        raise OSError("store down")

    def delete(self, key: str) -> bool:
        return False

    def clear(self) -> None:
        pass


def test_a_failing_store_is_a_miss_and_never_fails_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert _run(reactivex.from_iterable(ANSWER).pipe(cache(_BrokenStore(), "k"))) == ANSWER
    assert "cache lookup failed" in caplog.text
    assert "cache store failed" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"key": ""}, "key must be"),
        ({"key": "k", "pace": "fast"}, "pace must be"),
        ({"key": "k", "ttl": -1}, "ttl must be"),
    ],
)
def test_bad_arguments_fail_at_once(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        cache(MemoryCache(), **kwargs)
    with pytest.raises(ConfigError, match="store must be"):
        cache(object(), "k")  # type: ignore[arg-type]


def test_a_per_call_ttl_is_passed_to_the_store() -> None:
    clock = Clock()
    store = MemoryCache(clock=clock)
    _run(reactivex.from_iterable(ANSWER).pipe(cache(store, "k", ttl=5)))
    clock.now += 4.9
    assert store.get("k") is not None
    clock.now += 0.2
    assert store.get("k") is None


# --------------------------------------------------------------------------- stores


def _stores(tmp_path: Path, clock: Clock, **bounds: Any) -> list[CacheStore]:
    return [
        MemoryCache(clock=clock, **bounds),
        SqliteCache(tmp_path / "c.db", clock=clock, **bounds),
    ]


@pytest.mark.parametrize("kind", [0, 1], ids=["memory", "sqlite"])
def test_ttl_expires_entries_on_the_injected_clock(tmp_path: Path, kind: int) -> None:
    clock = Clock()
    store = _stores(tmp_path, clock, max_entries=None)[kind]
    store.put("a", b"1", ttl=10)
    store.put("b", b"2")  # no default ttl: lives until evicted
    clock.now += 9.99
    assert store.get("a") == b"1"
    clock.now += 0.01
    assert store.get("a") is None
    assert store.get("b") == b"2"


@pytest.mark.parametrize("kind", [0, 1], ids=["memory", "sqlite"])
def test_the_store_default_ttl_applies(tmp_path: Path, kind: int) -> None:
    clock = Clock()
    store = [MemoryCache(ttl=3, clock=clock), SqliteCache(tmp_path / "t.db", ttl=3, clock=clock)][
        kind
    ]
    store.put("a", b"1")
    clock.now += 3
    assert store.get("a") is None


@pytest.mark.parametrize("kind", [0, 1], ids=["memory", "sqlite"])
def test_lru_bound_by_entries_evicts_the_least_recently_used(tmp_path: Path, kind: int) -> None:
    clock = Clock()
    store = _stores(tmp_path, clock, max_entries=3)[kind]
    for key in "abc":
        clock.now += 1
        store.put(key, key.encode())
    clock.now += 1
    assert store.get("a") == b"a"  # a is now the most recently used
    clock.now += 1
    store.put("d", b"d")
    assert [store.get(k) for k in "abcd"] == [b"a", None, b"c", b"d"]


@pytest.mark.parametrize("kind", [0, 1], ids=["memory", "sqlite"])
def test_lru_bound_by_bytes(tmp_path: Path, kind: int) -> None:
    clock = Clock()
    store = _stores(tmp_path, clock, max_entries=None, max_bytes=10)[kind]
    for key in "abc":
        clock.now += 1
        store.put(key, key.encode() * 4)  # 4 bytes each: only two fit
    assert [store.get(k) for k in "abc"] == [None, b"bbbb", b"cccc"]
    clock.now += 1
    store.put("big", b"x" * 11)  # larger than the bound alone: not kept
    assert store.get("big") is None


@pytest.mark.parametrize("kind", [0, 1], ids=["memory", "sqlite"])
def test_invalidation_by_key_and_clear(tmp_path: Path, kind: int) -> None:
    store = _stores(tmp_path, Clock())[kind]
    store.put("a", b"1")
    store.put("b", b"2")
    assert store.delete("a") is True
    assert store.delete("a") is False
    assert store.get("a") is None
    store.clear()
    assert store.get("b") is None


def test_memory_cache_counts_bytes_and_replaces_entries() -> None:
    store = MemoryCache()
    store.put("a", b"123")
    store.put("a", b"12")
    assert (len(store), store.size_bytes) == (1, 2)


def test_sqlite_store_survives_a_process_restart(tmp_path: Path) -> None:
    """One process records an answer through the operator; a new one replays it."""
    path = tmp_path / "cache.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = textwrap.dedent(
        f"""
        import reactivex
        from rxtokens.cache import SqliteCache
        from rxtokens.operators import cache
        from rxtokens.tokens import Finish, TextDelta
        store = SqliteCache({str(path)!r})
        tokens = reactivex.of(TextDelta("kept "), TextDelta("across"), Finish("stop"))
        tokens.pipe(cache(store, "answer")).subscribe()
        print(len(store))
        """
    )
    reader = textwrap.dedent(
        f"""
        import reactivex
        from rxtokens.cache import SqliteCache
        from rxtokens.operators import aggregate, cache
        store = SqliteCache({str(path)!r})
        source = reactivex.throw(RuntimeError("the upstream must not be called"))
        answer = source.pipe(cache(store, "answer"), aggregate()).run()
        print(answer.text, answer.usage.cached)
        """
    )
    for script, expected in ((writer, "1"), (reader, "kept across True")):
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == expected


def test_sqlite_store_is_shared_by_threads(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = SqliteCache(tmp_path / "threads.db", max_entries=None)

    def work(i: int) -> bytes | None:
        store.put(f"k{i}", str(i).encode())
        return store.get(f"k{i}")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(200)))
    assert results == [str(i).encode() for i in range(200)]
    assert len(store) == 200


def test_open_store_reads_the_cli_forms(tmp_path: Path) -> None:
    assert isinstance(open_store("memory"), MemoryCache)
    sqlite = open_store(f"sqlite:{tmp_path / 'x.db'}", ttl=5)
    assert isinstance(sqlite, SqliteCache)
    assert sqlite.ttl == 5
    assert isinstance(open_store("redis://127.0.0.1:1/0"), RedisCache)  # connects lazily
    store = MemoryCache()
    assert open_store(store) is store
    for bad in ("disk", "sqlite:", "http://x"):
        with pytest.raises(ConfigError, match="unknown cache"):
            open_store(bad)


# --------------------------------------------------------------------------- keys

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
_PARAMS = st.dictionaries(
    st.sampled_from(["temperature", "top_p", "max_tokens", "seed", "stop", "n"]), _JSON, max_size=4
)
_MESSAGES = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system"]), "content": st.text(max_size=8)}
    ),
    min_size=1,
    max_size=3,
)
_TOOLS = st.lists(
    st.fixed_dictionaries(
        {"name": st.text(min_size=1, max_size=5), "description": st.text(max_size=5)}
    ),
    max_size=2,
)


def _shuffled(value: Any, data: st.DataObject) -> Any:
    if isinstance(value, dict):
        keys = data.draw(st.permutations(list(value)))
        return {k: _shuffled(value[k], data) for k in keys}
    if isinstance(value, list):
        return [_shuffled(v, data) for v in value]
    return value


@given(messages=_MESSAGES, tools=_TOOLS, params=_PARAMS, data=st.data())
def test_the_key_is_stable_across_dict_ordering(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    params: dict[str, Any],
    data: st.DataObject,
) -> None:
    key = cache_key("openai", "m", messages, tools=tools, **params)
    again = cache_key(
        "openai",
        "m",
        _shuffled(messages, data),
        tools=_shuffled(tools, data),
        **_shuffled(params, data),
    )
    assert key == again


@given(
    messages=_MESSAGES,
    tools=_TOOLS,
    params=_PARAMS,
    change=st.sampled_from(["provider", "model", "message", "tools", "param", "new-param"]),
    data=st.data(),
)
def test_the_key_changes_when_any_keyed_part_changes(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    params: dict[str, Any],
    change: str,
    data: st.DataObject,
) -> None:
    parts: dict[str, Any] = {
        "provider": "openai",
        "model": "m",
        "messages": messages,
        "tools": tools,
    }
    key = cache_key(parts["provider"], parts["model"], messages, tools=tools, **params)
    params = dict(params)
    if change in ("provider", "model"):
        parts[change] += "x"
    elif change == "message":
        i = data.draw(st.integers(0, len(messages) - 1))
        parts["messages"] = [dict(m) for m in messages]
        parts["messages"][i]["content"] += "!"
    elif change == "tools":
        parts["tools"] = [*tools, {"name": "another"}]
    elif change == "param" and params:
        name = data.draw(st.sampled_from(sorted(params)))
        params[name] = [params[name]]  # a different JSON value
    else:
        params["frequency_penalty"] = data.draw(st.integers() | st.text(max_size=3))
    other = cache_key(
        parts["provider"], parts["model"], parts["messages"], tools=parts["tools"], **params
    )
    assert (other == key) == (change == "param" and not params)


def test_the_key_treats_equal_requests_alike() -> None:
    neutral = {"name": "f", "description": "d", "parameters": {"type": "object"}}
    openai = {"type": "function", "function": neutral}
    assert cache_key("p", "m", "Hi", tools=[neutral], temperature=1.0) == cache_key(
        "p", "m", [{"role": "user", "content": "Hi"}], tools=[openai], temperature=1
    )


def test_the_key_refuses_what_is_not_json() -> None:
    with pytest.raises(ConfigError, match=r"params\.stop"):
        cache_key("p", "m", "Hi", stop={1, 2})
    with pytest.raises(ConfigError, match="finite"):
        cache_key("p", "m", "Hi", temperature=float("nan"))


def test_a_corrupt_entry_row_fails_the_replay_with_a_config_error() -> None:
    store = MemoryCache()
    store.put("k", b'{"v":1,"end_us":1,"tokens":[[0,"text","a",0],[0,"nonsense"]]}')
    seen: list[Any] = []
    reactivex.never().pipe(cache(store, "k")).subscribe(seen.append, seen.append)
    assert seen[0] == TextDelta("a")
    assert isinstance(seen[1], ConfigError)


def test_sqlite_store_takes_writers_from_several_processes_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    SqliteCache(path)  # the table exists before the writers race
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    script = textwrap.dedent(
        f"""
        import sys
        from rxtokens.cache import SqliteCache
        store = SqliteCache({str(path)!r}, max_entries=250)
        for i in range(100):
            store.put(f"{{sys.argv[1]}}-{{i}}", b"x" * 100)
            assert store.get(f"{{sys.argv[1]}}-{{i}}") == b"x" * 100
        """
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", script, name], env=env, stderr=subprocess.PIPE)
        for name in "abc"
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err.decode()
    assert len(SqliteCache(path)) == 250  # 300 written, the bound held across processes
