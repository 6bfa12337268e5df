"""Providers end to end over real HTTP against the loopback ProviderServer."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from reactivex import Observable

from rxtokens import (
    AuthenticationError,
    ConnectionLostError,
    ProviderError,
    ProviderHTTPError,
    RateLimitError,
    StreamDecodeError,
    StreamTimeoutError,
    StreamToken,
    TextDelta,
    TruncatedStreamError,
)
from rxtokens.aio import collect
from rxtokens.operators import retry_with_backoff
from rxtokens.providers import (
    Anthropic,
    Gemini,
    OpenAIChat,
    Timeouts,
    anthropic,
    close_sessions,
    gemini,
    openai_chat,
    openai_compatible,
    openai_responses,
)
from rxtokens.providers._http import parse_retry_after
from rxtokens.testing.server import ProviderServer, Reply
from rxtokens.testing.wire import Script, ScriptedToolCall, encode, expected_completion

KEY = "sk-test-SECRET-0123456789abcdef"

# provider name (for base_url_for) -> (factory, wire format)
PROVIDERS: dict[str, tuple[Callable[..., Observable[StreamToken]], str]] = {
    "openai": (openai_chat, "openai_chat"),
    "openai_responses": (openai_responses, "openai_responses"),
    "anthropic": (anthropic, "anthropic"),
    "gemini": (gemini, "gemini"),
}

WEATHER = ScriptedToolCall("get_weather", {"city": "Zürich", "unit": "C"}, fragments=4)
TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
async def srv() -> AsyncIterator[ProviderServer]:
    async with ProviderServer(api_key=KEY) as server:
        yield server
        await close_sessions()


def _open(
    srv: ProviderServer, name: str, prompt: Any = "Hello?", **kw: Any
) -> Observable[StreamToken]:
    factory, _ = PROVIDERS[name]
    kw.setdefault("api_key", KEY)
    return factory("test-model", prompt, base_url=srv.base_url_for(name), **kw)


# --------------------------------------------------------------------------- happy paths


@pytest.mark.parametrize("name", list(PROVIDERS))
@pytest.mark.parametrize(
    "script",
    [
        Script(text="Hello, wörld! ✨ streaming works.", usage=(7, 9)),
        Script(text="Let me check.", reasoning="The user wants weather.", tool_calls=[WEATHER]),
        Script(text=[], tool_calls=[WEATHER, ScriptedToolCall("get_time", {"tz": "UTC"})]),
    ],
    ids=["text", "reasoning+tool", "two-tools"],
)
async def test_every_provider_end_to_end_exact_completion(
    srv: ProviderServer, name: str, script: Script
) -> None:
    srv.queue(script)
    completion = await collect(_open(srv, name, tools=[TOOL]))
    assert completion == expected_completion(script, PROVIDERS[name][1])
    record = srv.requests[-1]
    assert record.authorized
    assert record.completed
    assert not record.disconnected


async def test_openai_compatible_local_server_needs_no_key(
    srv: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_KEY", raising=False)
    srv.api_key = None
    script = Script(text="local answer")
    srv.queue(script)
    tokens = openai_compatible("llama3:8b", "Hi", base_url=srv.base_url_for("openai"))
    assert await collect(tokens) == expected_completion(script, "openai_chat")
    assert "authorization" not in {k.lower() for k in srv.requests[-1].headers}


async def test_default_reply_echoes_the_prompt(srv: ProviderServer) -> None:
    completion = await collect(_open(srv, "anthropic", "What is rxtokens?"))
    assert completion.text.startswith('You asked: "What is rxtokens?". rxtokens turns')
    assert completion.finish_reason == "stop"


async def test_n_greater_than_one(srv: ProviderServer) -> None:
    script = Script(text=["one", " two", " three"], n=3)
    srv.queue(script)
    completion = await collect(_open(srv, "openai", n=3))
    assert completion == expected_completion(script, "openai_chat")
    assert [c.text for c in completion.choices] == [
        "one two three",
        " three twoone",
        " three twoone",
    ]
    assert srv.requests[-1].json["n"] == 3


async def test_tokens_arrive_incrementally_in_order(srv: ProviderServer) -> None:
    srv.queue(Script(text=["a", "b", "c"]))
    seen: list[StreamToken] = []
    done = asyncio.get_running_loop().create_future()
    _open(srv, "openai").subscribe(seen.append, done.set_exception, lambda: done.set_result(None))
    await done
    assert [t for t in seen if isinstance(t, TextDelta)] == [
        TextDelta("a"),
        TextDelta("b"),
        TextDelta("c"),
    ]


async def test_gzip_and_arbitrary_chunking(srv: ProviderServer) -> None:
    script = Script(text="Grüße aus Zürich — 日本語のテキスト", usage=(3, 4))
    srv.queue(Reply(script=script, gzip=True, chunk_size=5))
    assert await collect(_open(srv, "gemini")) == expected_completion(script, "gemini")
    assert srv.requests[-1].units_total > 10


# --------------------------------------------------------------------------- request shapes


async def test_openai_chat_request_body_and_headers(srv: ProviderServer) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    await collect(_open(srv, "openai", messages, tools=[TOOL], temperature=0.2))
    record = srv.requests[-1]
    assert record.path == "/v1/chat/completions"
    assert record.json == {
        "model": "test-model",
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [{"type": "function", "function": TOOL}],
        "temperature": 0.2,
    }
    assert record.headers["Accept"] == "text/event-stream"
    assert "Authorization" not in record.headers  # recorded without credentials
    assert record.authorized


async def test_openai_chat_without_usage(srv: ProviderServer) -> None:
    script = Script(text="x", usage=(1, 1))
    srv.queue(script)
    completion = await collect(_open(srv, "openai", include_usage=False))
    assert completion.usage is None
    assert "stream_options" not in srv.requests[-1].json


async def test_responses_request_body(srv: ProviderServer) -> None:
    await collect(_open(srv, "openai_responses", "Hi", tools=[TOOL]))
    body = srv.requests[-1].json
    assert srv.requests[-1].path == "/v1/responses"
    assert body["input"] == "Hi"
    assert body["stream"] is True
    assert body["tools"] == [{"type": "function", **TOOL}]


async def test_anthropic_request_body_and_headers(srv: ProviderServer) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    await collect(_open(srv, "anthropic", messages, tools=[TOOL]))
    record = srv.requests[-1]
    assert record.path == "/v1/messages"
    assert record.headers["anthropic-version"] == "2023-06-01"
    assert "x-api-key" not in {k.lower() for k in record.headers}
    assert record.authorized
    assert record.json == {
        "model": "test-model",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 4096,
        "stream": True,
        "system": "Be brief.",
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather for a city",
                "input_schema": TOOL["parameters"],
            }
        ],
    }


async def test_gemini_request_url_and_body(srv: ProviderServer) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Weather?"},
    ]
    await collect(_open(srv, "gemini", messages, tools=[TOOL], temperature=0.5, max_tokens=64))
    record = srv.requests[-1]
    assert record.path == "/v1beta/models/test-model:streamGenerateContent"
    assert record.query == {"alt": "sse"}
    assert record.authorized  # the key travelled in x-goog-api-key
    assert record.json == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello"}]},
            {"role": "user", "parts": [{"text": "Weather?"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "tools": [{"functionDeclarations": [TOOL]}],
        "generationConfig": {"temperature": 0.5, "maxOutputTokens": 64},
    }


def test_nothing_is_sent_before_subscription() -> None:
    # building needs no loop and no server: the observable is cold
    tokens = openai_chat("m", "Hi", api_key=KEY, base_url="http://127.0.0.1:9/v1")
    assert isinstance(tokens, Observable)


# --------------------------------------------------------------------------- HTTP errors


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_wrong_key_is_an_authentication_error_without_the_key(
    srv: ProviderServer, name: str
) -> None:
    wrong = "sk-wrong-KEY-abcdef123456"
    with pytest.raises(AuthenticationError) as info:
        await collect(_open(srv, name, api_key=wrong))
    error = info.value
    assert error.status == (400 if name == "gemini" else 401)  # Google says 400
    assert error.provider == PROVIDERS[name][0].__name__.replace("openai_chat", "openai")
    text = f"{error} {error!r} {error.body} {error.headers}"
    assert wrong not in text
    assert "wrong-KEY" not in text
    assert "sk-wr***ong" not in text  # the provider's masked echo is redacted too
    assert "missing or wrong" in str(error)
    assert "API_KEY" in str(error)  # says which variable to set


async def test_429_rate_limit_with_retry_after(srv: ProviderServer) -> None:
    srv.queue(Reply(status=429, retry_after=7, error_message="Rate limit reached for gpt-x"))
    with pytest.raises(RateLimitError) as info:
        await collect(_open(srv, "openai"))
    assert info.value.retry_after == 7.0
    assert info.value.status == 429
    assert "Rate limit reached for gpt-x" in str(info.value)


async def test_retry_after_ms_header_wins(srv: ProviderServer) -> None:
    srv.queue(Reply(status=429, headers={"retry-after-ms": "1500", "retry-after": "9"}))
    with pytest.raises(RateLimitError) as info:
        await collect(_open(srv, "openai"))
    assert info.value.retry_after == 1.5


async def test_anthropic_529_overloaded(srv: ProviderServer) -> None:
    srv.queue(Reply(status=529, retry_after=2))
    with pytest.raises(RateLimitError) as info:
        await collect(_open(srv, "anthropic"))
    assert info.value.status == 529
    assert info.value.retry_after == 2.0
    assert "overloaded" in str(info.value)
    assert "overloaded_error" in str(info.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("openai", "The model `x` does not exist"),
        ("anthropic", "The model `x` does not exist"),
        ("gemini", "The model `x` does not exist"),
    ],
)
async def test_error_json_message_of_each_provider(
    srv: ProviderServer, name: str, expected: str
) -> None:
    srv.queue(Reply(status=404, error_message="The model `x` does not exist"))
    with pytest.raises(ProviderHTTPError) as info:
        await collect(_open(srv, name))
    assert type(info.value) is ProviderHTTPError
    assert info.value.status == 404
    assert expected in str(info.value)


async def test_500_with_html_page_gives_short_excerpt(srv: ProviderServer) -> None:
    page = (
        "<html><head><title>502 Bad Gateway</title><style>body{color:red}</style></head>"
        "<body><h1>Bad Gateway</h1><p>" + "upstream went away " * 100 + "</p></body></html>"
    )
    srv.queue(Reply(status=500, body=page))
    with pytest.raises(ProviderHTTPError) as info:
        await collect(_open(srv, "openai"))
    message = str(info.value)
    assert info.value.status == 500
    assert "502 Bad Gateway" in message
    assert "<" not in message
    assert "color:red" not in message
    assert len(message) < 450


async def test_wrong_content_type_on_200(srv: ProviderServer) -> None:
    srv.queue(Reply(content_type="application/json", body='{"id": "not a stream"}'))
    with pytest.raises(StreamDecodeError) as info:
        await collect(_open(srv, "openai"))
    assert "text/event-stream" in str(info.value)
    assert "application/json" in str(info.value)


async def test_mid_stream_error_event_keeps_partial(srv: ProviderServer) -> None:
    srv.queue(
        Script(text=["Par", "tial"], error={"type": "overloaded_error", "message": "Overloaded"})
    )
    with pytest.raises(ProviderError) as info:
        await collect(_open(srv, "anthropic"))
    assert info.value.error_type == "overloaded_error"
    assert info.value.partial is not None
    assert info.value.partial.text == "Partial"


async def test_body_ending_without_terminal_event_is_truncated(srv: ProviderServer) -> None:
    events = encode("openai_chat", Script(text=["a", "b"]))
    srv.queue(Reply(events=events[:-1]))  # no [DONE]
    with pytest.raises(TruncatedStreamError) as info:
        await collect(_open(srv, "openai"))
    assert info.value.partial is not None
    assert info.value.partial.text == "ab"


async def test_dropped_connection_is_truncated_with_partial(srv: ProviderServer) -> None:
    events = encode("anthropic", Script(text=["one", " two", " three"]))
    cut = sum(len(e) for e in events[:5]) + 10  # inside the 6th event
    srv.queue(Reply(events=events, drop_after=cut))
    with pytest.raises(TruncatedStreamError) as info:
        await collect(_open(srv, "anthropic"))
    assert info.value.partial is not None
    assert info.value.partial.text.startswith("one")


async def test_refused_connection_is_connection_lost() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tokens = openai_chat("m", "Hi", base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY)
    try:
        with pytest.raises(ConnectionLostError) as info:
            await collect(tokens)
        assert KEY not in str(info.value)
    finally:
        await close_sessions()


# --------------------------------------------------------------------------- timeouts


async def test_stall_mid_stream_is_idle_timeout(srv: ProviderServer) -> None:
    srv.queue(Reply(script=Script(text=["a", "b"]), pause_after=2))
    with pytest.raises(StreamTimeoutError) as info:
        await collect(_open(srv, "openai", timeout=Timeouts(connect=5, first_token=5, idle=0.2)))
    assert info.value.phase == "idle"
    assert info.value.timeout == 0.2
    assert isinstance(info.value, asyncio.TimeoutError)
    assert info.value.partial is not None
    assert info.value.partial.text == "a"
    record = await srv.wait_ended()
    assert record.disconnected
    assert not record.completed


async def test_unanswered_connect_is_connect_timeout() -> None:
    # A listening socket whose accept queue is full: the kernel drops further SYNs,
    # so connecting hangs (no route to an unreachable host needed).
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    tokens = openai_chat(
        "m",
        "hi",
        api_key=KEY,
        base_url=f"http://127.0.0.1:{port}/v1",
        timeout=Timeouts(connect=0.3, first_token=10),
    )
    try:
        with pytest.raises(StreamTimeoutError) as info:
            await collect(tokens)
    finally:
        await close_sessions()
        for filler in fillers:
            filler.close()
        listener.close()
    assert info.value.phase == "connect"


async def test_no_first_byte_is_first_token_timeout(srv: ProviderServer) -> None:
    srv.queue(Reply(pause_after=0))
    with pytest.raises(StreamTimeoutError) as info:
        await collect(_open(srv, "anthropic", timeout=Timeouts(first_token=0.2, idle=30)))
    assert info.value.phase == "first_token"


async def test_pings_keep_an_idle_stream_alive(srv: ProviderServer) -> None:
    script = Script(text=["slow", " answer"])
    srv.queue(Reply(script=script, pause_after=3, pause=0.8, ping_interval=0.05))
    completion = await collect(_open(srv, "anthropic", timeout=Timeouts(idle=0.4)))
    assert completion == expected_completion(script, "anthropic")
    assert srv.requests[-1].completed


# --------------------------------------------------------------------------- disposal


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_dispose_closes_the_connection_before_the_stream_finished(
    srv: ProviderServer, name: str
) -> None:
    # The server stalls after a few events until the client goes away: it can only
    # end by seeing the disconnect.
    events = encode(PROVIDERS[name][1], Script(text="one two three four five"))
    first_text = next(i for i, e in enumerate(events) if b'"one' in e)
    srv.queue(Reply(events=events, pause_after=first_text + 1))
    first = asyncio.get_running_loop().create_future()

    def on_next(token: StreamToken) -> None:
        if isinstance(token, TextDelta) and not first.done():
            first.set_result(token)

    subscription = _open(srv, name).subscribe(on_next, first.set_exception)
    await first
    subscription.dispose()
    record = await srv.wait_ended()
    assert record.disconnected
    assert not record.completed
    assert record.units_sent < record.units_total


# --------------------------------------------------------------------------- retry


async def test_retry_before_first_token_resends(srv: ProviderServer) -> None:
    script = Script(text="after retry")
    srv.queue(Reply(status=503), Reply(status=429, retry_after=0), script)
    tokens = _open(srv, "openai").pipe(retry_with_backoff(max_attempts=3, base_delay=0.01))
    assert await collect(tokens) == expected_completion(script, "openai_chat")
    assert [r.status for r in srv.requests] == [503, 429, 200]


async def test_no_retry_after_tokens_were_delivered(srv: ProviderServer) -> None:
    events = encode("openai_chat", Script(text=["one", " two", " three"]))
    srv.queue(Reply(events=events, drop_after=sum(len(e) for e in events[:3]) + 5))
    tokens = _open(srv, "openai").pipe(retry_with_backoff(max_attempts=3, base_delay=0.01))
    with pytest.raises(TruncatedStreamError) as info:
        await collect(tokens)
    assert info.value.partial is not None
    assert info.value.partial.text == "one two"
    assert len(srv.requests) == 1


# --------------------------------------------------------------------------- health


@pytest.mark.parametrize(
    ("cls", "name"), [(OpenAIChat, "openai"), (Anthropic, "anthropic"), (Gemini, "gemini")]
)
async def test_health(srv: ProviderServer, cls: type[Any], name: str) -> None:
    good = cls(api_key=KEY, base_url=srv.base_url_for(name))
    result = await good.health()
    assert result.ok
    assert result.status == 200
    bad = cls(api_key="sk-nope-0000000000", base_url=srv.base_url_for(name))
    result = await bad.health()
    assert not result.ok
    assert result.status == (400 if name == "gemini" else 401)
    assert "sk-nope" not in result.message
    assert "missing or wrong" in result.message
    assert srv.requests[-1].method == "GET"


async def test_health_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        result = await OpenAIChat(base_url=f"http://127.0.0.1:{port}/v1", timeout=2).health()
    finally:
        await close_sessions()
    assert not result.ok
    assert result.status is None
    assert "cannot reach" in result.message


# --------------------------------------------------------------------------- pure helpers


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "20"}) == 0.02
    assert parse_retry_after({"retry-after": "garbage"}) is None
    assert parse_retry_after({}) is None
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_retry_after({"retry-after": date}, now=1445412480.0 - 10) == 10.0


# --------------------------------------------------------------------------- sessions


def test_one_session_per_loop_closed_at_loop_shutdown() -> None:
    from rxtokens.providers import _http

    seen: list[Any] = []

    async def main() -> None:
        first = await _http.acquire_session()
        assert await _http.acquire_session() is first  # shared within the loop
        seen.append(first)

    asyncio.run(main())  # no close_sessions(): loop shutdown closes it, no warning
    asyncio.run(main())
    assert seen[0] is not seen[1]
    assert all(session.closed for session in seen)
    assert not _http._slots  # finished loops are not kept alive


async def test_close_sessions_then_reuse(srv: ProviderServer) -> None:
    from rxtokens.providers import _http

    session = await _http.acquire_session()
    await close_sessions()
    assert session.closed
    assert await collect(_open(srv, "openai", "again")) is not None
    assert (await _http.acquire_session()) is not session


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_an_event_that_never_ends_fails_at_the_size_limit(
    srv: ProviderServer, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rxtokens.providers._base as base

    monkeypatch.setattr(base, "MAX_EVENT_BYTES", 4096)
    srv.queue(Reply(body=b"data: " + b"x" * 20_000, content_type="text/event-stream"))
    with pytest.raises(StreamDecodeError, match="max_event_bytes=4096"):
        await collect(_open(srv, name))
