"""The loopback ProviderServer, the replay provider and the demo stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxtokens import ConfigError, StreamError, StreamToken, TextDelta
from rxtokens.aio import collect, run
from rxtokens.operators import aggregate
from rxtokens.providers import anthropic, close_sessions, gemini, openai_chat, openai_responses
from rxtokens.testing.loopback import demo_stream, replay
from rxtokens.testing.server import DEMO_ANSWER, ProviderServer, Reply, default_script
from rxtokens.testing.transcripts import TRANSCRIPTS, load_expected, load_transcript
from rxtokens.testing.wire import Script, expected_completion

FACTORIES = {
    "openai_chat": (openai_chat, "openai"),
    "openai_responses": (openai_responses, "openai_responses"),
    "anthropic": (anthropic, "anthropic"),
    "gemini": (gemini, "gemini"),
}


@pytest.fixture
async def srv() -> AsyncIterator[ProviderServer]:
    async with ProviderServer() as server:
        yield server
        await close_sessions()


@pytest.mark.parametrize("chunk_size", [1, 7, 100_000])
@pytest.mark.parametrize("name", TRANSCRIPTS)
async def test_bundled_transcripts_over_http(
    srv: ProviderServer, name: str, chunk_size: int
) -> None:
    """Byte-exact recorded bodies, re-chunked by the server (1 byte: inside UTF-8 and CRLF)."""
    expected = load_expected(name)
    factory, route = FACTORIES[expected.format]
    srv.queue(Reply(events=[load_transcript(name)], chunk_size=chunk_size))
    tokens = factory("m", "hi", base_url=srv.base_url_for(route), api_key="k")
    if expected.completion is not None:
        assert await collect(tokens) == expected.completion
    else:
        with pytest.raises(StreamError) as info:
            await collect(tokens)
        assert type(info.value).__name__ == expected.error
        assert info.value.partial == expected.partial


async def test_unknown_route_and_model_list(srv: ProviderServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(srv.base_url + "/v2/nothing", json={}) as response:
            assert response.status == 404
        async with session.get(srv.base_url + "/v1/models") as response:
            assert response.status == 200
            assert (await response.json())["data"]
    assert [r.status for r in srv.requests] == [404, 200]


async def test_server_requires_its_key_in_every_shape() -> None:
    async with ProviderServer(api_key="secret-key") as server:
        async with aiohttp.ClientSession() as session:
            for headers in (
                {"Authorization": "Bearer secret-key"},
                {"x-api-key": "secret-key"},
                {"x-goog-api-key": "secret-key"},
                {"Authorization": "Bearer other"},
            ):
                async with session.post(
                    server.base_url + "/v1/messages", json={"messages": []}, headers=headers
                ) as response:
                    await response.read()
        assert [r.authorized for r in server.requests] == [True, True, True, False]
        assert all("secret-key" not in str(r.headers) for r in server.requests)


async def test_registered_reply_per_format_and_queue_priority(srv: ProviderServer) -> None:
    srv.register("anthropic", Script(text="registered"))
    srv.queue(Script(text="queued"))
    url = srv.base_url_for("anthropic")
    texts = [(await collect(anthropic("m", "hi", base_url=url))).text for _ in range(3)]
    assert texts == ["queued", "registered", "registered"]
    other = await collect(openai_chat("m", "hi", base_url=srv.base_url_for("openai")))
    assert other.text.startswith('You asked: "hi".')  # other formats keep the default
    first, last = srv.requests[0], srv.requests[-1]
    assert first.ended_at is not None
    assert first.started_at <= first.ended_at <= last.started_at
    with pytest.raises(ConfigError, match="unknown wire format 'cohere'"):
        srv.register("cohere", Script(text="x"))


def test_default_script() -> None:
    script = default_script("  Tell   me\nabout it ", n=2, model="x")
    assert isinstance(script.text, str)
    assert script.text == 'You asked: "Tell me about it". ' + DEMO_ANSWER
    assert script.n == 2
    assert script.model == "x"
    assert default_script("").text == DEMO_ANSWER


def test_running_in_thread_serves_sync_callers() -> None:
    with ProviderServer.running_in_thread() as server:
        server.queue(Script(text="from a thread"))
        tokens = openai_chat("m", "hi", base_url=server.base_url_for("openai"))
        assert run(tokens).text == "from a thread"
        assert server.requests[-1].completed
    with pytest.raises(RuntimeError, match="not running"):
        _ = ProviderServer().base_url


async def test_running_in_thread_works_inside_a_running_event_loop() -> None:
    """As in a notebook cell or any ``async def``: entering and leaving must not touch our loop."""
    with ProviderServer.running_in_thread() as server:
        server.queue(Script(text="inside a loop"))
        tokens = openai_chat("m", "hi", base_url=server.base_url_for("openai"))
        assert (await collect(tokens)).text == "inside a loop"
    await close_sessions()


@pytest.mark.parametrize("provider", ["openai", "openai_responses", "anthropic", "gemini"])
def test_demo_stream_over_real_http(provider: str) -> None:
    with demo_stream("What is rxtokens?", provider, delay=0) as tokens:
        completion = run(tokens)
    assert completion.text == 'You asked: "What is rxtokens?". ' + DEMO_ANSWER
    assert completion.usage is not None


def test_demo_stream_unknown_provider() -> None:
    with pytest.raises(ConfigError, match="unknown demo provider"), demo_stream("x", "cohere"):
        pass


# --------------------------------------------------------------------------- replay


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_replay_bundled_transcripts(name: str) -> None:
    expected = load_expected(name)
    completions = replay(name).pipe(aggregate())
    if expected.completion is not None:
        assert completions.run() == expected.completion
    else:
        with pytest.raises(StreamError) as info:
            completions.run()
        assert type(info.value).__name__ == expected.error


@given(chunk_size=st.integers(min_value=1, max_value=300))
def test_replay_any_chunk_size_gives_the_same_completion(chunk_size: int) -> None:
    expected = load_expected("anthropic_thinking_tools").completion
    body = load_transcript("anthropic_thinking_tools")
    tokens = replay(body, "anthropic", chunk_size=chunk_size)
    assert tokens.pipe(aggregate()).run() == expected


def test_replay_from_a_file(tmp_path: Path) -> None:
    script = Script(text="from disk")
    from rxtokens.testing.wire import gemini_events

    path = tmp_path / "recording.sse"
    path.write_bytes(b"".join(gemini_events(script)))
    seen: list[StreamToken] = []
    replay(path, "gemini").subscribe(seen.append)
    assert TextDelta("from") in seen
    assert replay(str(path), "gemini").pipe(aggregate()).run() == expected_completion(
        script, "gemini"
    )


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("no-such-file.sse",), {}),
        ((b"data: x\n\n", "cohere"), {}),
        ((b"data: x\n\n",), {"chunk_size": 0}),
    ],
)
def test_replay_errors(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        replay(*args, **kwargs)  # type: ignore[arg-type]
