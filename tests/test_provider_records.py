"""The provider records and the one table built from them (`rxtokens.providers._record`,
`rxtokens.providers._table`): a registered provider works everywhere a built-in one does,
and every built-in record is complete, shown by using each of its fields."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import reactivex
from aiohttp.test_utils import TestServer
from reactivex import Observable

import rxtokens
from rxtokens import ConfigError, PipelineSpec, ToolRegistry, parse_launch, run_agent
from rxtokens.aio import collect
from rxtokens.operators import aggregate
from rxtokens.providers import (
    BUILTIN_RECORDS,
    PROVIDERS,
    Provider,
    ProviderRecord,
    _table,
    close_sessions,
    find_provider,
    provider_record,
)
from rxtokens.server import create_app
from rxtokens.testing import ProviderServer, Script, ScriptedToolCall, replay
from rxtokens.testing.loopback import RECORD as TESTING_RECORD
from rxtokens.testing.wire import FORMATS, encode, expected_completion
from rxtokens.tokens import Finish, StreamToken, TextDelta, ToolCall, Usage

ROOT = Path(__file__).resolve().parents[1]
RECORDS = {record.name: record for record in (*BUILTIN_RECORDS, TESTING_RECORD)}
HOSTED = [name for name, record in RECORDS.items() if record.wire_format]


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    for record in RECORDS.values():
        for name in record.env_vars:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clean_table() -> Iterator[None]:
    saved = dict(_table._records)
    yield
    _table._records.clear()
    _table._records.update(saved)


@pytest.fixture
async def srv() -> AsyncIterator[ProviderServer]:
    async with ProviderServer() as server:
        yield server
        await close_sessions()


# --------------------------------------------------------------------------- a registered one


def calculator(
    model: str, messages: Any, *, tools: Any = None, prefix: str = ""
) -> Observable[StreamToken]:
    """A scripted model: asks for ``add`` first, then answers with the tool's result.

    Args:
        model: reported back in the answer.
        messages: a prompt or OpenAI-shaped messages.
        tools: ignored (the model knows its one tool).
        prefix: put before the answer.
    """
    history = [{"role": "user", "content": messages}] if isinstance(messages, str) else messages
    last = history[-1]
    if last["role"] == "tool":
        text = f"{prefix}{model} says {last['content']}"
        return reactivex.of(TextDelta(text), Usage(3, 4), Finish("stop"))
    if "add" in str(last.get("content", "")):
        call = ToolCall(0, "call_1", "add", {"a": 1, "b": 2})
        return reactivex.of(call, Finish("tool_calls"))
    return reactivex.of(TextDelta(f"{prefix}{model}: {last['content']}"), Finish("stop"))


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pytest.mark.usefixtures("clean_table")
async def test_a_registered_provider_works_everywhere_a_builtin_one_does() -> None:
    rxtokens.register_provider("calc", calculator, default_model="calc-1")
    assert "calc" in PROVIDERS
    assert isinstance(PROVIDERS["calc"](), Provider)

    # rxtokens.stream, provider configuration and request parameters split as for built-ins
    completion = await collect(rxtokens.stream("calc:m1", "hi", prefix="> "))
    assert completion.text == "> m1: hi"

    # a spec (default model) and a launch string
    spec = PipelineSpec(source={"provider": "calc", "prompt": "hi"}, operators=[{"preset": "safe"}])
    assert (await spec.arun()).text == "calc-1: hi"
    launched = parse_launch("calc:m2 prompt='mail a@b.co' prefix=x ! preset name=safe")
    assert launched.source.params == {"prefix": "x"}
    assert (await launched.arun()).text == "xm2: mail [EMAIL]"

    # run_agent: the record's message format (OpenAI's by default) carries the result back
    agent = run_agent(
        lambda messages: rxtokens.stream("calc:m3", messages),
        ToolRegistry([add]),
        "please add",
        provider="calc",
    )
    assert (await agent.completion()).text == "m3 says 3"
    assert agent.messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "3"}

    # the server, with the registered provider as its upstream
    server = TestServer(create_app(upstream="calc:m4", auth=False, grace=0))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            body = {"model": "ignored", "messages": [{"role": "user", "content": "hi"}]}
            async with session.post(server.make_url("/v1/chat/completions"), json=body) as r:
                assert r.status == 200, await r.text()
                answer = await r.json()
    finally:
        await server.close()
    assert answer["choices"][0]["message"]["content"] == "m4: hi"


@pytest.mark.usefixtures("clean_table")
def test_registered_names_are_checked() -> None:
    rxtokens.register_provider("calc", calculator)
    with pytest.raises(ConfigError, match="already registered"):
        rxtokens.register_provider("calc", calculator)
    with pytest.raises(ConfigError, match="name must start"):
        rxtokens.register_provider("1calc", calculator)
    with pytest.raises(ConfigError, match="ProviderRecord"):
        _table.add_provider(calculator)  # type: ignore[arg-type]


def test_a_provider_from_an_entry_point_works_in_the_cli(tmp_path: Path) -> None:
    """A package that declares ``calc`` in the group ``rxtokens.providers``: listed by
    ``rxtokens ops`` and streamed by ``rxtokens run``, in fresh interpreters."""
    source = "\n".join(
        [
            "from typing import Any",
            "import reactivex",
            "from reactivex import Observable",
            "from rxtokens.tokens import Finish, StreamToken, TextDelta, ToolCall, Usage",
            inspect.getsource(calculator),
        ]
    )
    (tmp_path / "calc_provider.py").write_text(source, encoding="utf-8")
    dist = tmp_path / "calc_provider-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: calc-provider\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        "[rxtokens.providers]\ncalc = calc_provider:calculator\n", encoding="utf-8"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rxtokens", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )

    ops = cli("ops", "--json")
    assert ops.returncode == 0, ops.stderr
    listed = json.loads(ops.stdout)["providers"]["calc"]
    assert listed["summary"].startswith("A scripted model")
    assert [p["name"] for p in listed["params"]] == ["tools", "prefix"]
    run = cli("run", "calc:m5 prompt=hello prefix=': '", "--quiet")
    assert run.returncode == 0, run.stderr
    assert run.stdout == ": m5: hello\n"


# --------------------------------------------------------------------------- the built-ins


def test_every_name_and_alias_leads_to_its_record() -> None:
    for record in RECORDS.values():
        for name in record.names:
            assert find_provider(name) is record
            assert provider_record(name) is record
            assert PROVIDERS[name] is record.factory
    assert find_provider("nope") is None
    with pytest.raises(ConfigError, match=r"unknown provider 'nope'; known providers: .*gemini"):
        provider_record("nope")


@pytest.mark.parametrize("name", HOSTED)
async def test_a_builtin_record_streams_through_its_own_fields(
    srv: ProviderServer, name: str
) -> None:
    record = RECORDS[name]
    assert record.wire_format in FORMATS
    assert record.decoder is not None
    script = Script(text="one two three", usage=(2, 3))

    # env_vars: a remote base URL without a key names them
    if record.env_vars:
        with pytest.raises(ConfigError, match=record.env_vars[0]):
            record.factory(base_url="https://example.com/v1")

    # factory + capabilities, stream + default model, against the server's wire format
    base_url = srv.base_url_for(record.wire_format)
    provider = record.factory(base_url=base_url, api_key="k")
    assert provider.capabilities.tools == record.capabilities.tools
    assert provider.capabilities.reasoning == record.capabilities.reasoning
    srv.queue(script)
    model = record.default_model or "some-model"
    tokens = record.stream(model, "hi", base_url=base_url, api_key="k")
    assert await collect(tokens) == expected_completion(script, record.wire_format)
    assert model in srv.requests[-1].path + json.dumps(srv.requests[-1].json)

    # decoder: the same bytes, replayed without a network
    body = b"".join(encode(record.wire_format, script))
    replayed = replay(body, record.wire_format).pipe(aggregate()).run()
    assert replayed == expected_completion(script, record.wire_format)


@pytest.mark.parametrize("name", [n for n in HOSTED if RECORDS[n].messages is not None])
async def test_a_builtin_record_sends_tool_results_in_its_message_format(
    srv: ProviderServer, name: str
) -> None:
    record = RECORDS[name]
    assert record.wire_format is not None
    base_url = srv.base_url_for(record.wire_format)
    call = ScriptedToolCall("add", {"a": 1, "b": 2}, id="call_7")
    srv.queue(Script(text="", tool_calls=[call]), Script(text="It is 3."))
    tools = ToolRegistry([add])
    agent = run_agent(
        lambda messages: record.stream(
            record.default_model or "m", messages, tools=tools.schemas(), base_url=base_url
        ),
        tools,
        "What is 1 + 2?",
        provider=name,
    )
    assert (await agent.completion()).text == "It is 3."
    sent = srv.requests[-1].json
    assert record.messages is not None
    assert record.messages.name in ("openai", "anthropic", "gemini")
    assert '"3"' in json.dumps(sent) or ": 3" in json.dumps(sent)
    assert agent.messages[-1] == record.messages.final_turn(agent.completions[-1])


def test_the_local_record_needs_no_server() -> None:
    record = RECORDS["llama"]
    assert (record.wire_format, record.decoder, record.messages) == (None, None, None)
    assert record.default_model is None
    provider = record.factory()
    assert provider.capabilities.local
    assert record.capabilities.local
    with pytest.raises(ConfigError, match="tools"):
        provider.stream("model.gguf", "hi", tools=[{"name": "f"}])


def test_records_compare_by_identity() -> None:
    record = RECORDS["gemini"]
    assert isinstance(record, ProviderRecord)
    assert {record: 1}[record] == 1
    assert record.names == ("gemini",)
    assert RECORDS["openai"].names == ("openai", "openai_chat")


def test_the_production_path_does_not_import_the_testing_package() -> None:
    """``testing`` is found through its entry point only when someone asks for it."""
    code = """
import sys
import rxtokens
from rxtokens.server import create_app
from rxtokens.spec import parse_launch
rxtokens.stream("openai:gpt-4o-mini", "hi", api_key="k")
parse_launch("anthropic prompt=hi base_url=http://127.0.0.1:9 ! preset name=safe").build()
create_app(upstream="gemini:g", upstream_options={"api_key": "k"}, pipeline="smooth delay=0.01")
assert "rxtokens.testing" not in sys.modules, "imported too early"
rxtokens.stream("testing:demo", "hi")
assert "rxtokens.testing.loopback" in sys.modules
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
