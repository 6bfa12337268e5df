"""SDK adapters with the real openai / anthropic clients pointed at the loopback server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from rxtokens import ConfigError, ProviderError, ProviderNotInstalledError, TruncatedStreamError
from rxtokens.aio import collect
from rxtokens.operators import aggregate
from rxtokens.providers import from_anthropic_stream, from_openai_stream
from rxtokens.testing.server import ProviderServer, Reply
from rxtokens.testing.wire import Script, ScriptedToolCall, encode, expected_completion

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")

KEY = "sk-sdk-test-key-0123456789"
SCRIPT = Script(
    text="Hello from the SDK path.",
    reasoning="Thinking first.",
    tool_calls=[ScriptedToolCall("lookup", {"q": "rx", "n": 2}, fragments=3)],
    usage=(12, 34),
)
MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def thread_srv() -> Iterator[ProviderServer]:
    with ProviderServer.running_in_thread(api_key=KEY) as server:
        yield server


@pytest.fixture
async def srv() -> AsyncIterator[ProviderServer]:
    async with ProviderServer(api_key=KEY) as server:
        yield server


def test_sync_openai_chat_stream(thread_srv: ProviderServer) -> None:
    thread_srv.queue(SCRIPT)
    with openai.OpenAI(
        api_key=KEY, base_url=thread_srv.base_url_for("openai"), max_retries=0
    ) as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        completion = from_openai_stream(stream).pipe(aggregate()).run()
    assert completion == expected_completion(SCRIPT, "openai_chat")


def test_sync_openai_responses_stream(thread_srv: ProviderServer) -> None:
    thread_srv.queue(SCRIPT)
    with openai.OpenAI(
        api_key=KEY, base_url=thread_srv.base_url_for("openai"), max_retries=0
    ) as client:
        stream = client.responses.create(model="gpt-4o-mini", input="Hi", stream=True)
        completion = from_openai_stream(stream).pipe(aggregate()).run()
    assert completion == expected_completion(SCRIPT, "openai_responses")


def test_sync_anthropic_create_stream(thread_srv: ProviderServer) -> None:
    thread_srv.queue(SCRIPT)
    with anthropic.Anthropic(
        api_key=KEY, base_url=thread_srv.base_url_for("anthropic"), max_retries=0
    ) as client:
        stream = client.messages.create(
            model="claude-test", max_tokens=100, messages=MESSAGES, stream=True
        )
        completion = from_anthropic_stream(stream).pipe(aggregate()).run()
    assert completion == expected_completion(SCRIPT, "anthropic")


def test_sync_anthropic_message_stream_helper(thread_srv: ProviderServer) -> None:
    thread_srv.queue(SCRIPT)
    with (
        anthropic.Anthropic(
            api_key=KEY, base_url=thread_srv.base_url_for("anthropic"), max_retries=0
        ) as client,
        client.messages.stream(
            model="claude-test", max_tokens=100, messages=MESSAGES
        ) as message_stream,
    ):
        completion = from_anthropic_stream(message_stream).pipe(aggregate()).run()
    assert completion == expected_completion(SCRIPT, "anthropic")


def test_sdk_stream_can_be_subscribed_once(thread_srv: ProviderServer) -> None:
    thread_srv.queue(Script(text="once"))
    with openai.OpenAI(
        api_key=KEY, base_url=thread_srv.base_url_for("openai"), max_retries=0
    ) as client:
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        tokens = from_openai_stream(stream)
        assert tokens.pipe(aggregate()).run().text == "once"
        with pytest.raises(ConfigError, match="only once"):
            tokens.pipe(aggregate()).run()


def test_openai_sdk_truncated_stream(thread_srv: ProviderServer) -> None:
    events = encode("openai_chat", Script(text=["a", "b", "c"]))
    thread_srv.queue(Reply(events=events[:3]))  # role chunk + two deltas, no finish
    with openai.OpenAI(
        api_key=KEY, base_url=thread_srv.base_url_for("openai"), max_retries=0
    ) as client:
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        with pytest.raises(TruncatedStreamError) as info:
            from_openai_stream(stream).pipe(aggregate()).run()
    assert info.value.partial is not None
    assert info.value.partial.text == "ab"


def test_openai_sdk_mid_stream_error(thread_srv: ProviderServer) -> None:
    thread_srv.queue(Script(text=["x"], error={"type": "server_error", "message": "boom"}))
    with openai.OpenAI(
        api_key=KEY, base_url=thread_srv.base_url_for("openai"), max_retries=0
    ) as client:
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        with pytest.raises(ProviderError) as info:
            from_openai_stream(stream).pipe(aggregate()).run()
    assert info.value.error_type == "server_error"
    assert "boom" in str(info.value)
    assert info.value.partial is not None
    assert info.value.partial.text == "x"


def test_anthropic_sdk_error_event(thread_srv: ProviderServer) -> None:
    thread_srv.queue(Script(text=["x"], error={"type": "overloaded_error", "message": "Busy"}))
    with anthropic.Anthropic(
        api_key=KEY, base_url=thread_srv.base_url_for("anthropic"), max_retries=0
    ) as client:
        stream = client.messages.create(model="c", max_tokens=10, messages=MESSAGES, stream=True)
        with pytest.raises(ProviderError) as info:
            from_anthropic_stream(stream).pipe(aggregate()).run()
    assert info.value.error_type == "overloaded_error"


async def test_async_openai_stream(srv: ProviderServer) -> None:
    script = Script(text="async hello", n=2)
    srv.queue(script)
    async with openai.AsyncOpenAI(
        api_key=KEY, base_url=srv.base_url_for("openai"), max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model="m",
            messages=MESSAGES,
            stream=True,
            n=2,
            stream_options={"include_usage": True},
        )
        completion = await collect(from_openai_stream(stream))
    assert completion == expected_completion(script, "openai_chat")


async def test_async_anthropic_streams(srv: ProviderServer) -> None:
    srv.queue(SCRIPT, SCRIPT)
    async with anthropic.AsyncAnthropic(
        api_key=KEY, base_url=srv.base_url_for("anthropic"), max_retries=0
    ) as client:
        stream = await client.messages.create(
            model="c", max_tokens=10, messages=MESSAGES, stream=True
        )
        assert await collect(from_anthropic_stream(stream)) == expected_completion(
            SCRIPT, "anthropic"
        )
        async with client.messages.stream(
            model="c", max_tokens=10, messages=MESSAGES
        ) as message_stream:
            completion = await collect(from_anthropic_stream(message_stream))
    assert completion == expected_completion(SCRIPT, "anthropic")


@pytest.mark.parametrize("stream", [42, "data: {}", b"data: {}", {"choices": []}])
def test_not_a_stream(stream: object) -> None:
    with pytest.raises(ConfigError, match="SDK stream"):
        from_openai_stream(stream)


def test_missing_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(ProviderNotInstalledError) as info:
        from_anthropic_stream([])
    assert isinstance(info.value, ImportError)
    assert "rxtokens[anthropic]" in str(info.value)


def test_dispose_closes_a_sync_sdk_stream(thread_srv: ProviderServer) -> None:
    import threading

    from reactivex.scheduler import NewThreadScheduler

    # A sync SDK stream is closed when its next chunk arrives: keep chunks coming.
    events = encode("openai_chat", Script(text=" ".join(["word"] * 200)))
    thread_srv.queue(Reply(events=events, delay=0.01))
    first = threading.Event()
    with openai.OpenAI(
        api_key=KEY, base_url=thread_srv.base_url_for("openai"), max_retries=0
    ) as client:
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        subscription = from_openai_stream(stream, scheduler=NewThreadScheduler()).subscribe(
            lambda token: first.set()
        )
        assert first.wait(10)
        subscription.dispose()
        record = thread_srv.requests[-1]
        assert record.ended.wait(10)
    assert record.disconnected
    assert not record.completed


def test_sdk_status_error_is_converted() -> None:
    import httpx2

    from rxtokens.providers.sdk import _convert_error

    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(429, headers={"retry-after": "4"}, request=request)
    exc = openai.RateLimitError(
        "rate limited", response=response, body={"error": {"message": "slow down"}}
    )
    converted = _convert_error(exc, "openai")
    assert type(converted).__name__ == "RateLimitError"
    assert converted.retry_after == 4.0  # type: ignore[attr-defined]
    assert "slow down" in str(converted)
