"""The provider registry, configuration errors, capabilities and key hygiene."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rxtokens import ConfigError
from rxtokens.aio import collect
from rxtokens.providers import (
    PROVIDERS,
    Anthropic,
    Capabilities,
    Gemini,
    OpenAIChat,
    OpenAICompatible,
    OpenAIResponses,
    Timeouts,
    anthropic,
    close_sessions,
    gemini,
    get_provider,
    is_local_url,
    openai_chat,
    stream,
)
from rxtokens.testing.server import ProviderServer
from rxtokens.testing.wire import Script, expected_completion

ENV_VARS = [
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "OPENAI_COMPATIBLE_API_KEY",
]


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def srv() -> AsyncIterator[ProviderServer]:
    async with ProviderServer() as server:
        yield server
        await close_sessions()


def test_registry_names() -> None:
    assert set(PROVIDERS) == {
        "openai",
        "openai_chat",
        "openai_responses",
        "anthropic",
        "gemini",
        "openai_compatible",
        "testing",
        "llama",
    }
    assert isinstance(get_provider("openai", api_key="k"), OpenAIChat)
    assert isinstance(get_provider("openai_responses", api_key="k"), OpenAIResponses)
    assert isinstance(get_provider("anthropic", api_key="k"), Anthropic)
    assert isinstance(get_provider("gemini", api_key="k"), Gemini)
    compat = get_provider("openai_compatible", base_url="http://localhost:8000/v1")
    assert isinstance(compat, OpenAICompatible)


def test_unknown_provider_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        stream("mistral:large", "hi")
    for name in PROVIDERS:
        assert name in str(info.value)
    with pytest.raises(ConfigError, match="known providers"):
        get_provider("nope")


@pytest.mark.parametrize("bad", ["openai", "openai:", "", ":gpt"])
def test_malformed_ids(bad: str) -> None:
    with pytest.raises(ConfigError):
        stream(bad, "hi", api_key="k")


@pytest.mark.parametrize(
    ("call", "env"),
    [
        (lambda: openai_chat("m", "hi"), "OPENAI_API_KEY"),
        (lambda: anthropic("m", "hi"), "ANTHROPIC_API_KEY"),
        (lambda: gemini("m", "hi"), "GEMINI_API_KEY or GOOGLE_API_KEY"),
        (lambda: stream("openai_responses:m", "hi"), "OPENAI_API_KEY"),
        (
            lambda: stream("openai_compatible:m", "hi", base_url="https://example.com/v1"),
            "OPENAI_COMPATIBLE_API_KEY",
        ),
    ],
)
def test_missing_key_is_a_config_error_at_build_time(call, env: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        call()
    assert env in str(info.value)
    assert isinstance(info.value, ValueError)


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "AIzaSyEnvironmentKey1234567")
    provider = Gemini()
    assert provider.auth_headers() == {"x-goog-api-key": "AIzaSyEnvironmentKey1234567"}
    assert "AIza" not in repr(provider)
    request = provider.request("gemini-2.5-flash", "hi")
    assert "AIza" not in repr(request)


def test_openai_key_never_goes_to_a_compatible_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key-123456")
    provider = OpenAICompatible(base_url="http://127.0.0.1:8000/v1")
    assert provider.auth_headers() == {}


def test_openai_compatible_needs_base_url() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        stream("openai_compatible:llama3", "hi")


def test_local_base_url_needs_no_key() -> None:
    provider = get_provider("openai", base_url="http://localhost:11434/v1")
    assert provider.auth_headers() == {}
    assert provider.capabilities.local
    assert not get_provider("openai", api_key="k").capabilities.local


def test_capabilities() -> None:
    assert isinstance(OpenAIChat(api_key="k").capabilities, Capabilities)
    assert OpenAIChat(api_key="k").capabilities.multiple_choices
    assert not Anthropic(api_key="k").capabilities.multiple_choices
    assert Anthropic(api_key="k").capabilities.reasoning
    assert all(
        get_provider(n, api_key="k", base_url="http://127.0.0.1:1/v1").capabilities.tools
        for n in PROVIDERS
        if n != "llama"
    )
    assert get_provider("llama").capabilities.local
    with pytest.raises(AttributeError):
        OpenAIChat(api_key="k").capabilities.tools = False  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "ftp://x"},
        {"timeout": -1},
        {"timeout": "soon"},
    ],
)
def test_invalid_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        OpenAIChat(api_key="k", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", [OpenAIChat, OpenAIResponses, Anthropic, Gemini])
@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"base_url": 5}, "base_url"),
        ({"api_key": 5}, "api_key"),
        ({"headers": ["x"]}, "headers"),
    ],
)
def test_bad_config_types_raise_config_error(
    cls: type[OpenAIChat], kwargs: dict[str, object], names: str
) -> None:
    config = {"api_key": "k", **kwargs}
    with pytest.raises(ConfigError, match=names):
        cls(**config)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", [OpenAIChat, OpenAIResponses, Anthropic, Gemini])
@pytest.mark.parametrize(
    ("messages", "tools", "names"),
    [
        ([{"role": "system", "content": 5}], None, "content"),
        ("hi", 3, "tools"),
        ("hi", "not a list", "tools"),
        ("hi", {"name": "f"}, "tools"),
    ],
)
def test_bad_request_shapes_raise_config_error(
    cls: type[OpenAIChat], messages: object, tools: object, names: str
) -> None:
    with pytest.raises(ConfigError, match=names):
        cls(api_key="k").stream("m", messages, tools=tools)  # type: ignore[arg-type]


def test_gemini_bad_generation_config() -> None:
    with pytest.raises(ConfigError, match="generation_config"):
        Gemini(api_key="k").stream("m", "hi", generation_config=5)


def test_unknown_config_keyword_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bogus"):
        get_provider("anthropic", api_key="k", bogus=1)


@pytest.mark.parametrize(
    "messages",
    [[], [{"content": "no role"}], {"role": "user"}, 42],
)
def test_invalid_messages(messages: object) -> None:
    with pytest.raises(ConfigError):
        openai_chat("m", messages, api_key="k")  # type: ignore[arg-type]


def test_invalid_tools() -> None:
    with pytest.raises(ConfigError, match="name"):
        openai_chat("m", "hi", api_key="k", tools=[{"description": "no name"}])


def test_openai_shaped_tools_are_accepted() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    request = Anthropic(api_key="k").request("c", "hi", tools=[tool])
    assert request.json["tools"] == [{"name": "f", "input_schema": {"type": "object"}}]


def test_timeouts_coerce() -> None:
    assert Timeouts.coerce(3) == Timeouts(3.0, 3.0, 3.0)
    assert Timeouts.coerce(None) == Timeouts()
    t = Timeouts(idle=None)
    assert Timeouts.coerce(t) is t


@pytest.mark.parametrize("value", ["5", True, -1.0, 0, float("nan")])
def test_timeouts_fields_are_checked(value: object) -> None:
    with pytest.raises(ConfigError, match="timeout idle"):
        Timeouts(idle=value)  # type: ignore[arg-type]


def test_is_local_url() -> None:
    assert is_local_url("http://127.0.0.1:8080/v1")
    assert is_local_url("http://[::1]:8080")
    assert is_local_url("http://localhost/v1")
    assert not is_local_url("https://api.anthropic.com")


async def test_stream_by_id_over_http(srv: ProviderServer) -> None:
    script = Script(text="by id")
    srv.queue(script)
    tokens = stream(
        "anthropic:claude-sonnet-4-5",
        "hi",
        base_url=srv.base_url_for("anthropic"),
        api_key="k",
        temperature=0.1,
        timeout=10,
    )
    assert await collect(tokens) == expected_completion(script, "anthropic")
    body = srv.requests[-1].json
    assert body["model"] == "claude-sonnet-4-5"
    assert body["temperature"] == 0.1
    assert "timeout" not in body
    assert "api_key" not in body


async def test_model_may_contain_colons(srv: ProviderServer) -> None:
    await collect(stream("openai_compatible:llama3:8b", "hi", base_url=srv.base_url_for("openai")))
    assert srv.requests[-1].json["model"] == "llama3:8b"


async def test_testing_provider_needs_nothing() -> None:
    try:
        completion = await collect(stream("testing:demo", "Ping?"))
    finally:
        await close_sessions()
    assert completion.text.startswith('You asked: "Ping?".')
    assert get_provider("testing").capabilities.local


@pytest.mark.parametrize("kind", ["operator", "provider", "sink"])
def test_registry_lookup_of_unknown_name_lists_known_ones(kind: str) -> None:
    from rxtokens import registry

    lookup = getattr(registry, f"{kind}_entry")
    known = {"operator": "redact", "provider": "openai", "sink": "jsonl"}[kind]
    assert lookup(known).name == known
    with pytest.raises(ConfigError, match=rf"unknown {kind} 'nope'; known: .*{known}"):
        lookup("nope")
