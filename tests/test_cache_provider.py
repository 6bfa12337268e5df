"""The response cache end to end: `CachedProvider` and ``serve --cache`` over real loopback HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from reactivex import Observable

from rxtokens.aio import to_async_iterator
from rxtokens.cache import MemoryCache
from rxtokens.errors import ProviderHTTPError, TruncatedStreamError
from rxtokens.providers import CachedProvider, close_sessions, get_provider
from rxtokens.testing import ProviderServer, Reply
from rxtokens.testing.server import default_script
from rxtokens.tokens import TextDelta, Usage

from .server_helpers import read_events, running, token_text

KEY = "sk-test-cache-0123456789"


@pytest.fixture
async def srv() -> AsyncIterator[ProviderServer]:
    async with ProviderServer(api_key=KEY) as server:
        yield server
        await close_sessions()


def _cached(srv: ProviderServer, store: MemoryCache | None = None) -> CachedProvider:
    provider = get_provider("openai", api_key=KEY, base_url=srv.base_url_for("openai"))
    return CachedProvider(provider, MemoryCache() if store is None else store)


async def _tokens(source: Observable[Any]) -> list[Any]:
    return [token async for token in to_async_iterator(source)]


def _uncached(tokens: list[Any]) -> list[Any]:
    return [t._replace(cached=False) if type(t) is Usage else t for t in tokens]


async def test_the_same_request_twice_is_one_upstream_request_and_identical_tokens(
    srv: ProviderServer,
) -> None:
    cached = _cached(srv)
    first = await _tokens(cached.stream("m", "Hello?", temperature=0, include_usage=True))
    second = await _tokens(cached.stream("m", "Hello?", temperature=0, include_usage=True))
    assert len(srv.requests) == 1
    assert _uncached(second) == first
    usages = [t for t in second if type(t) is Usage]
    assert usages
    assert all(u.cached for u in usages)
    assert not any(t.cached for t in first if type(t) is Usage)
    # a different parameter is another request
    await _tokens(cached.stream("m", "Hello?", temperature=0.5, include_usage=True))
    assert len(srv.requests) == 2


@pytest.mark.parametrize(
    ("reply", "error"),
    [(Reply(drop_after=60), TruncatedStreamError), (Reply(status=500), ProviderHTTPError)],
    ids=["truncated", "http-500"],
)
async def test_a_failed_stream_is_not_stored(
    srv: ProviderServer, reply: Reply, error: type[Exception]
) -> None:
    store = MemoryCache()
    cached = _cached(srv, store)
    srv.queue(reply)
    with pytest.raises(error):
        await _tokens(cached.stream("m", "Hello?"))
    assert len(store) == 0
    await _tokens(cached.stream("m", "Hello?"))  # the next one goes upstream, and is kept
    assert len(srv.requests) == 2
    assert len(store) == 1


async def test_a_cancelled_stream_is_not_stored(srv: ProviderServer) -> None:
    store = MemoryCache()
    cached = _cached(srv, store)
    srv.queue(Reply(delay=0.05))
    iterator = to_async_iterator(cached.stream("m", "Hello?"))
    async for token in iterator:
        assert isinstance(token, TextDelta)
        break
    await iterator.aclose()
    record = await srv.wait_ended(0)
    assert record.disconnected
    assert len(store) == 0


async def test_invalidating_the_key_sends_the_request_again(srv: ProviderServer) -> None:
    store = MemoryCache()
    cached = _cached(srv, store)
    await _tokens(cached.stream("m", "Hello?"))
    assert store.delete(cached.key("m", "Hello?")) is True
    await _tokens(cached.stream("m", "Hello?"))
    assert len(srv.requests) == 2


async def test_the_proxy_answers_a_repeated_request_from_the_cache() -> None:
    async with running(cache="memory") as srv:
        body = {
            "model": "x",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        answers = []
        for _ in range(2):
            async with srv.session.post(
                srv.url("/v1/chat/completions"), json=body, headers=srv.auth
            ) as response:
                assert response.status == 200
                events = await read_events(response)
            chunks = [json.loads(e.data) for e in events if e.data != "[DONE]"]
            text = "".join(
                c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
            )
            usage = next(c["usage"] for c in chunks if c.get("usage"))
            answers.append((text, usage))
        assert len(srv.provider.requests) == 1
        (text1, usage1), (text2, usage2) = answers
        assert text1 == text2 == default_script("hi").text
        assert "rxtokens_cached" not in usage1
        assert usage2 == {**usage1, "rxtokens_cached": True}


async def test_the_official_openai_sdk_reads_a_cached_proxy_answer() -> None:
    """The cached answer's extra usage field must not break the SDK's parsing."""
    openai = pytest.importorskip("openai")  # the [openai] extra
    async with running(cache="memory") as srv:
        client = openai.AsyncOpenAI(base_url=srv.url("/v1"), api_key=srv.token, max_retries=0)
        messages: Any = [{"role": "user", "content": "hi"}]
        try:
            answers = []
            for _ in range(2):
                reply = await client.chat.completions.create(
                    model="x",
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                text, usage = "", None
                async for chunk in reply:
                    text += "".join(c.delta.content or "" for c in chunk.choices)
                    usage = chunk.usage or usage
                answers.append((text, usage))
            whole = await client.chat.completions.create(model="x", messages=messages)
        finally:
            await client.close()
    assert len(srv.provider.requests) == 1
    (text1, usage1), (text2, usage2) = answers
    assert text1 == text2 == whole.choices[0].message.content == default_script("hi").text
    assert usage1 is not None
    assert usage2 is not None
    assert usage2.completion_tokens == usage1.completion_tokens
    assert (usage2.model_extra or {}).get("rxtokens_cached") is True
    assert (whole.usage.model_extra or {}).get("rxtokens_cached") is True


async def test_server_streams_replay_from_the_cache_with_usage_marked_cached() -> None:
    async with running(cache="memory") as srv:
        texts, usages = [], []
        for _ in range(2):
            stream_id = await srv.start("hi")
            async with srv.session.get(
                srv.url(f"/v1/streams/{stream_id}/events"), headers=srv.auth
            ) as response:
                events = await read_events(response)
            texts.append(token_text(events))
            done = json.loads(events[-1].data)
            usages.append([json.loads(e.data) for e in events if e.event == "usage"])
            assert done["usage"].get("cached", False) is (len(texts) == 2)
        assert len(srv.provider.requests) == 1
        assert texts[0] == texts[1] == default_script("hi").text
        assert all(u.get("cached") for u in usages[1])


async def test_a_spec_stream_is_never_cached() -> None:
    async with running(cache="memory", allow_specs=True, allow_provider=True) as srv:
        launch = f"testing prompt=hi base_url={srv.provider.base_url_for('openai')}"
        for _ in range(2):
            async with srv.session.post(
                srv.url("/v1/streams"), json={"launch": launch}, headers=srv.auth
            ) as response:
                assert response.status == 201, await response.text()
                stream_id = (await response.json())["id"]
            async with srv.session.get(
                srv.url(f"/v1/streams/{stream_id}/events"), headers=srv.auth
            ) as response:
                await read_events(response)
        assert len(srv.provider.requests) == 2


def test_serve_rejects_a_bad_cache_option(capsys: pytest.CaptureFixture[str]) -> None:
    from rxtokens.server import main

    with pytest.raises(SystemExit):
        main(["--cache", "disk"])
    assert "unknown cache 'disk'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--cache-ttl", "5"])
    assert "--cache-ttl needs --cache" in capsys.readouterr().err


def test_the_base_url_is_keyed_unless_a_namespace_replaces_it() -> None:
    def wrapped(url: str, namespace: str | None = None) -> CachedProvider:
        provider = get_provider("openai", api_key=KEY, base_url=url)
        return CachedProvider(provider, namespace=namespace)

    a, b = "http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"
    assert wrapped(a).key("m", "Hi") != wrapped(b).key("m", "Hi")
    assert wrapped(a, "loopback").key("m", "Hi") == wrapped(b, "loopback").key("m", "Hi")


def test_cache_is_not_an_operator_of_specs_or_launch_strings() -> None:
    from rxtokens.errors import SpecError
    from rxtokens.spec import parse_launch

    with pytest.raises(SpecError, match="cache"):
        parse_launch("testing prompt=hi ! cache store='sqlite:/etc/x.db'").build()


def test_serve_cache_sqlite_answers_after_a_server_restart(tmp_path: Path) -> None:
    """``rxtokens serve --cache sqlite:PATH`` in two server processes, one after the other."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    usages = []
    with ProviderServer.running_in_thread() as provider:
        command = [
            *(sys.executable, "-m", "rxtokens.server", "--port", "0", "--no-auth"),
            *("--base-url", provider.base_url_for("openai")),
            *("--cache", f"sqlite:{tmp_path / 'answers.db'}", "--cache-ttl", "3600"),
        ]
        for _ in range(2):
            server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
            try:
                assert server.stdout is not None
                url = server.stdout.readline().split()[-1]  # "rxtokens server on http://..."
                request = urllib.request.Request(
                    url + "v1/chat/completions", body, {"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    answer = json.load(response)
                assert answer["choices"][0]["message"]["content"] == default_script("hi").text
                usages.append(answer["usage"])
            finally:
                server.terminate()
                server.wait(30)
                server.stdout.close()  # type: ignore[union-attr]
        assert len(provider.requests) == 1
    assert "rxtokens_cached" not in usages[0]
    assert usages[1] == {**usages[0], "rxtokens_cached": True}
