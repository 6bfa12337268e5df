"""PipelineSpec: validation, JSON and launch-string round trips, registry, presets, schema."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import reactivex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reactivex import Observable
from reactivex import operators as ops

from rxtokens import presets, registry
from rxtokens.errors import ConfigError
from rxtokens.launch import LaunchSyntaxError
from rxtokens.providers import _table
from rxtokens.registry import _entries, _presets
from rxtokens.spec import OperatorSpec, PipelineSpec, SinkSpec, SpecError, parse_launch
from rxtokens.tokens import Finish, TextDelta, Usage, token_from_json

# --------------------------------------------------------------------------- strategies

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
nonempty = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20)
finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
patterns = st.sampled_from(
    [r"\d{16}", r"sk-[a-z]{4}", "a b", "it's", '"quoted"', r"\bfoo\b", "[!=,]", r"x\\y", "é{1,3}"]
)


def maybe(strategy: st.SearchStrategy[Any], key: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), strategy.map(lambda v: {key: v}))


def params(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    parts = [maybe(strategy, key) for key, strategy in fields.items()]
    return st.tuples(*parts).map(lambda ds: {k: v for d in ds for k, v in d.items()})


OPERATOR_PARAMS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "redact": st.tuples(
        patterns,
        params(
            replacement=st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\\")),
            max_match=st.integers(1, 500),
        ),
    ).map(lambda t: {"pattern": t[0], **t[1]}),
    "stop_when": st.tuples(patterns, params(inclusive=st.booleans())).map(
        lambda t: {"condition": t[0], **t[1]}
    ),
    "chunk_by": params(
        boundary=st.sampled_from(["word", "sentence", "line", r"[.;]\s"]) | st.integers(1, 99)
    ),
    "count_tokens": params(encoding=st.just("cl100k_base")),
    "smooth": params(
        delay=st.floats(0, 10, allow_nan=False), chunking=st.sampled_from(["word", "line", "char"])
    ),
    "rate_limit": st.tuples(st.floats(0.01, 1e6), params(burst=st.integers(1, 100))).map(
        lambda t: {"tokens_per_second": t[0], **t[1]}
    ),
    "frames": params(fps=st.floats(0.01, 240)),
    "on_backpressure_buffer": st.tuples(
        st.integers(1, 10_000),
        params(overflow=st.sampled_from(["error", "drop_oldest", "drop_newest"])),
    ).map(lambda t: {"capacity": t[0], **t[1]}),
    "on_backpressure_latest": st.just({}),
    "on_backpressure_coalesce": params(max_pending=st.integers(1, 10_000)),
    "metrics": params(interval=st.floats(0.01, 60)),
    "take_budget": st.tuples(st.integers(1, 10_000), params(max_seconds=st.floats(0.1, 600))).map(
        lambda t: {"max_output_tokens": t[0], **t[1]}
    ),
    "retry_with_backoff": params(
        max_attempts=st.integers(1, 10), jitter=st.floats(0, 1), base_delay=st.floats(0, 5)
    ),
    "filter": params(types=st.lists(st.sampled_from(["text", "finish", "usage"]), max_size=3)),
    "preset": st.sampled_from(presets.names()).map(lambda n: {"name": n}),
}

operator_specs = st.sampled_from(sorted(OPERATOR_PARAMS)).flatmap(
    lambda name: OPERATOR_PARAMS[name].map(lambda p: {"name": name, "params": p})
)
RESERVED = {"provider", "model", "prompt", "messages", "api_key"}
extra_keys = nonempty.filter(
    lambda k: (
        k not in RESERVED
        and k not in {"tools", "base_url", "timeout", "headers", "include_usage", "max_tokens"}
        and k not in {"chat", "temperature", "seed", "stop", "n_ctx"}
    )
)
messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": text}),
    min_size=1,
    max_size=3,
)
sources = st.fixed_dictionaries(
    {
        "provider": st.sampled_from(
            ["testing", "openai_chat", "openai", "anthropic", "gemini", "openai_responses", "llama"]
        ),
        "model": nonempty,
        "params": st.dictionaries(extra_keys, json_values, max_size=3).flatmap(
            lambda extra: params(
                timeout=st.floats(0.1, 100), headers=st.dictionaries(nonempty, text, max_size=2)
            ).map(lambda known: {**extra, **known})
        ),
    }
).flatmap(
    lambda source: st.one_of(
        text.map(lambda p: {**source, "prompt": p}),
        messages.map(lambda m: {**source, "messages": m}),
    )
)
sinks = st.one_of(
    st.just({"name": "stdout"}),
    st.sampled_from(["jsonl", "textfile"]).flatmap(
        lambda name: nonempty.map(lambda path: {"name": name, "params": {"path": path}})
    ),
)
specs = st.builds(
    lambda source, operators, sinks: PipelineSpec.from_dict(
        {
            "source": {
                **source,
                "params": {
                    k: v
                    for k, v in source["params"].items()
                    if source["provider"] != "llama" or k != "headers"
                },
            },
            "operators": operators,
            "sinks": sinks,
        }
    ),
    sources,
    st.lists(operator_specs, max_size=4),
    st.lists(sinks, max_size=2),
)


# --------------------------------------------------------------------------- round trips


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_spec_to_launch_to_spec_is_the_identity(spec: PipelineSpec) -> None:
    again = parse_launch(spec.to_launch())
    assert again == spec
    assert again.to_json() == spec.to_json()  # types too: 1 vs 1.0 vs true


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_spec_to_json_to_spec_is_the_identity(spec: PipelineSpec) -> None:
    again = PipelineSpec.from_json(spec.to_json())
    assert again == spec
    assert again.to_json() == spec.to_json()
    assert PipelineSpec.model_validate_json(spec.model_dump_json()) == spec


def test_the_issue_example() -> None:
    spec = parse_launch(
        "openai_chat model=gpt-4o-mini prompt='Tell me a joke' ! redact pattern='\\d{16}' "
        "! smooth delay=0.02"
    )
    assert spec.source.provider == "openai_chat"
    assert spec.source.model == "gpt-4o-mini"
    assert spec.source.prompt == "Tell me a joke"
    assert [(op.name, op.params) for op in spec.operators] == [
        ("redact", {"pattern": "\\d{16}"}),
        ("smooth", {"delay": 0.02}),
    ]
    assert spec.to_launch() == (
        "openai_chat model=gpt-4o-mini prompt='Tell me a joke' ! redact pattern='\\\\d{16}' "
        "! smooth delay=0.02"
    )


def test_provider_colon_model_shorthand_and_messages() -> None:
    spec = parse_launch(
        "openai:gpt-4o messages=[{role=system, content='Be brief'}, {role=user, content=Hi}] "
        "temperature=0.2"
    )
    assert spec.source.model == "gpt-4o"
    assert spec.source.messages == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Hi"},
    ]
    assert spec.source.params == {"temperature": 0.2}
    with pytest.raises(LaunchSyntaxError, match="model is given twice"):
        parse_launch("openai:gpt-4o model=x prompt=Hi")
    with pytest.raises(LaunchSyntaxError, match="only the source"):
        parse_launch("openai prompt=Hi ! redact:x")


def test_params_are_normalised_and_defaults_left_out() -> None:
    op = OperatorSpec(name="smooth", params={"delay": 1})
    assert op.params == {"delay": 1.0}
    assert type(op.params["delay"]) is float
    assert OperatorSpec(name="smooth").params == {}


def test_preset_shorthand() -> None:
    spec = PipelineSpec.from_dict(
        {"source": {"provider": "testing", "prompt": "x"}, "operators": [{"preset": "safe"}]}
    )
    assert spec.operators == [OperatorSpec(name="preset", params={"name": "safe"})]
    assert spec.to_launch() == "testing prompt=x ! preset name=safe"


# --------------------------------------------------------------------------- errors


def error_of(call: Callable[[], object]) -> SpecError:
    with pytest.raises(SpecError) as info:
        call()
    assert isinstance(info.value, ConfigError)
    return info.value


def test_error_names_position_operator_and_field() -> None:
    error = error_of(
        lambda: PipelineSpec(
            source={"provider": "testing", "prompt": "x"},
            operators=[
                {"name": "smooth"},
                {"name": "chunk_by"},
                {"name": "redact", "params": {"pattern": "("}},
            ],
        )
    )
    assert str(error).startswith(
        "operators[2] redact: pattern: not a valid regular expression: missing )"
    )
    assert error.errors[0]["loc"] == ("operators", 2)
    assert error.errors[0]["entry"] == "redact"
    assert error.errors[0]["field"] == "pattern"


@pytest.mark.parametrize(
    ("launch", "message", "at"),
    [
        (
            "testing prompt=x ! redact pattern=a bogus=1",
            "operators[0] redact: bogus: unknown parameter",
            "bogus",
        ),
        (
            "testing prompt=x ! redact",
            "operators[0] redact: pattern: required parameter missing",
            "redact",
        ),
        ("testing prompt=x ! smooth delay=-1", "operators[0] smooth: delay: must be >= 0", "delay"),
        (
            "testing prompt=x ! smooth delay=fast",
            "operators[0] smooth: delay: Input should be a valid number",
            "delay",
        ),
        (
            "testing prompt=x ! smooth ! redact pattern='\\d+'",
            "operators[1] redact: the pattern",
            "redact",
        ),
        ("testing prompt=x ! take_budget", "operators[0] take_budget needs", "take_budget"),
        (
            "testing prompt=x ! nope",
            "operators[0]: unknown operator 'nope'; known: chunk_by",
            "nope",
        ),
        (
            "testing prompt=x ! preset name=fast",
            "operators[0] preset: name: unknown preset 'fast'",
            "name",
        ),
        (
            "testing prompt=x ! filter types=[word]",
            "operators[0] filter: unknown token type(s) ['word']",
            "filter",
        ),
        ("testing prompt=x ! jsonl", "sinks[0] jsonl: path: required parameter missing", "jsonl"),
        (
            "testing prompt=x api_key=sk-123",
            "source testing: api_key: API keys do not belong",
            "api_key",
        ),
        (
            "testing prompt=x timeout=[1]",
            "source testing: timeout: Input should be a valid number",
            "timeout",
        ),
        (
            "testing prompt=x messages=[]",
            "source testing: prompt: give either prompt or messages",
            "prompt",
        ),
        (
            "testing messages=[{content=x}]",
            "source testing: messages[0]: each message needs a 'role'",
            "messages",
        ),
        ("llama prompt=x", "source llama: model: required", "llama"),
        ("nope prompt=x", "source: unknown provider 'nope'; known: anthropic", "nope"),
    ],
)
def test_launch_errors_name_the_place_and_show_a_caret(launch: str, message: str, at: str) -> None:
    error = error_of(lambda: parse_launch(launch))
    first, line, caret = str(error).split("\n")
    assert first.startswith(message), first
    assert line == f"  {launch}"
    assert launch[caret.index("^") - 2 :].startswith(at)


def test_json_errors() -> None:
    assert "not JSON" in str(error_of(lambda: PipelineSpec.from_json("{")))
    assert "a spec is a JSON object" in str(error_of(lambda: PipelineSpec.from_json("[]")))
    error = error_of(
        lambda: PipelineSpec.from_json(
            '{"source": {"provider": "testing", "prompt": "x"}, "extra": 1}'
        )
    )
    assert str(error) == "extra: unknown field"
    error = error_of(lambda: PipelineSpec.from_json('{"operators": []}'))
    assert str(error) == "source: required"


def test_load_and_save(tmp_path: Path) -> None:
    spec = parse_launch("testing prompt='Hi' ! preset name=ui_smooth ! jsonl path=out.jsonl")
    spec.save(tmp_path / "p.json")
    assert PipelineSpec.load(tmp_path / "p.json") == spec
    (tmp_path / "p.launch").write_text(spec.to_launch() + "\n")
    assert PipelineSpec.load(tmp_path / "p.launch") == spec
    with pytest.raises(ConfigError, match="cannot read"):
        PipelineSpec.load(tmp_path / "missing.json")


# --------------------------------------------------------------------------- registry


def test_every_registered_operator_builds_from_its_spec_with_defaults() -> None:
    entries = registry.operator_entries()
    assert {"redact", "smooth", "chunk_by", "preset", "filter"} <= set(entries)
    source = reactivex.of(TextDelta("Hello "), TextDelta("world"), Finish("stop"))
    for name, entry in entries.items():
        # defaults for everything but the required fields (take_budget needs one of two)
        required = {k for k, f in entry.params.model_fields.items() if f.is_required()}
        assert required <= set(entry.example), name
        assert set(entry.example) == required or name == "take_budget", name
        op = OperatorSpec(name=name, params=dict(entry.example))
        built = op.build()
        assert isinstance(source.pipe(built), Observable), name


def test_every_registered_provider_builds_from_its_spec_with_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rxtokens.testing.tiny_model import write_tiny_llama_gguf

    pytest.importorskip("llama_cpp")
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.setenv(var, "test-key")
    model_path = str(write_tiny_llama_gguf(tmp_path / "tiny.gguf"))
    for name, entry in registry.provider_entries().items():
        model = None if entry.default_model else (model_path if name == "llama" else "m")
        params = dict(entry.example) if name == "openai_compatible" else {}
        spec = PipelineSpec(
            source={"provider": name, "model": model, "prompt": "Hi", "params": params}
        )
        assert isinstance(spec.build(), Observable), name


def test_every_registered_sink_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name, entry in registry.sink_entries().items():
        sink = SinkSpec(name=name, params=dict(entry.example)).build()
        sink.on_next(TextDelta("x"))
        sink.close()


def test_the_safe_preset_redacts_across_token_boundaries() -> None:
    pieces = [
        "card 4111 1111 11",
        "11 1111, key sk-proj-abcdefgh",
        "ijklmnop1234 and AKIA",
        "ABCDEFGHIJKLMNOP, mail ann.lee@exa",
        "mple.co.uk. Bye",
    ]
    out = reactivex.from_iterable([TextDelta(p) for p in pieces]).pipe(
        presets.operator("safe"), ops.to_list()
    )
    text = "".join(t.text for t in out.run())
    assert text == "card [CARD], key [API_KEY] and [API_KEY], mail [EMAIL]. Bye"


def test_presets_from_python_specs_and_launch_strings() -> None:
    assert presets.names() == ["high_throughput", "low_latency", "safe", "ui_smooth"]
    for name in presets.names():
        chain = presets.get(name)
        assert chain
        assert all(isinstance(op, OperatorSpec) for op in chain)
        assert presets.get(name) is not chain  # a new list each time
        spec = parse_launch(f"testing prompt=x ! preset name={name}")
        assert spec.operators[0].build() is not None
    with pytest.raises(ConfigError, match="unknown preset 'x'"):
        presets.get("x")


def test_register_preset() -> None:
    presets.register_preset("_test_words", [{"name": "chunk_by", "params": {"boundary": "word"}}])
    try:
        assert parse_launch("testing prompt=x ! preset name=_test_words").operators[0].params
        with pytest.raises(ConfigError, match="already exists"):
            presets.register_preset("_test_words", [])
        with pytest.raises(ConfigError, match="another preset"):
            presets.register_preset("_test_nested", [{"preset": "safe"}])
        for bad in ("chunk_by", 5):
            with pytest.raises(ConfigError, match=f"got {bad!r}"):
                presets.register_preset("_test_bad", bad)  # type: ignore[arg-type]
    finally:
        _presets._PRESETS.pop("_test_words", None)


@pytest.fixture
def clean_registry() -> Iterator[None]:
    operators = dict(_entries._operators)
    providers = dict(_table._records)
    loaded = set(_entries._entry_points_loaded)
    yield
    _entries._operators.clear()
    _entries._operators.update(operators)
    _table._records.clear()
    _table._records.update(providers)
    _entries._entry_points_loaded.clear()
    _entries._entry_points_loaded.update(loaded)


def echo_provider(model: str, messages: Any, *, times: int = 1) -> Observable[Any]:
    """Echo the prompt `times` times."""
    return reactivex.of(*[TextDelta(str(messages))] * times, Usage(1, times), Finish("stop"))


def shout(suffix: str = "!", *, on_done: Callable[[], None] | None = None) -> Any:
    """Upper-case the text and add a suffix to each delta.

    Args:
        suffix: added to each text delta.
        on_done: not serialisable: left out of the spec.
    """
    return ops.map(lambda t: t._replace(text=t.text.upper() + suffix) if t.type == "text" else t)


@pytest.mark.usefixtures("clean_registry")
def test_user_operators_and_providers_via_decorator_and_register() -> None:
    registry.register_operator("shout")(shout)
    registry.register_provider("echo", echo_provider, default_model="echo")
    entry = registry.operator_entry("shout")
    assert list(entry.params.model_fields) == ["suffix"]
    assert entry.params.model_fields["suffix"].description == "added to each text delta."
    spec = parse_launch("echo prompt=hi times=2 ! shout suffix='?'")
    assert spec.source.params == {"times": 2}
    texts = [t.text for t in spec.build().pipe(ops.to_list()).run() if t.type == "text"]
    assert texts == ["HI?", "HI?"]
    error = error_of(lambda: parse_launch("echo prompt=hi ! shout on_done=1"))
    assert "operators[0] shout: on_done: unknown parameter (known: suffix)" in str(error)
    with pytest.raises(ConfigError, match="already registered"):
        registry.register_operator("shout")(shout)
    with pytest.raises(ConfigError, match="operators and sinks share"):
        registry.register_operator("jsonl", replace=True)(shout)
    with pytest.raises(ConfigError, match="name must start"):
        registry.register_operator("1x")


@pytest.mark.usefixtures("clean_registry")
def test_operators_from_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    group = registry.OPERATOR_ENTRY_POINTS
    fake = [metadata.EntryPoint(name="ep_shout", value="tests.test_spec:shout", group=group)]

    def entry_points(*, group: str) -> list[metadata.EntryPoint]:
        return fake if group == registry.OPERATOR_ENTRY_POINTS else []

    monkeypatch.setattr(_entries.metadata, "entry_points", entry_points)
    _entries._entry_points_loaded.discard(group)
    spec = parse_launch("testing prompt=x ! ep_shout suffix='1'")
    assert spec.operators[0].params == {"suffix": "1"}
    assert "ep_shout" in registry.operator_entries()


def test_params_model_from_signature_refuses_required_unserialisable_params() -> None:
    def needs_callback(callback: Callable[[int], int]) -> Any:
        return callback

    with pytest.raises(ConfigError, match="cannot be written in JSON"):
        registry.params_model_from_signature(needs_callback)


# --------------------------------------------------------------------------- schema, running


def test_json_schema_covers_every_operator_provider_and_sink() -> None:
    schema = PipelineSpec.json_schema()
    text = json.dumps(schema)
    for name in [
        *registry.operator_entries(),
        *registry.provider_entries(),
        *registry.sink_entries(),
    ]:
        assert f'"const": "{name}"' in text, name
    redact = schema["$defs"]["Operator_redact"]
    assert redact["properties"]["name"]["const"] == "redact"
    params_ref = redact["properties"]["params"]["$ref"].split("/")[-1]
    assert schema["$defs"][params_ref]["required"] == ["pattern"]
    assert schema["$defs"][params_ref]["additionalProperties"] is False


def test_run_streams_to_sinks_and_returns_the_completion(tmp_path: Path) -> None:
    out = tmp_path / "tokens.jsonl"
    spec = parse_launch(
        f"testing prompt='my mail is ann@example.com' ! preset name=safe "
        f"! jsonl path={json.dumps(str(out))}"
    )
    seen: list[Any] = []
    completion = spec.run(seen.append, timeout=30)
    assert completion.text.startswith('You asked: "my mail is [EMAIL]". ')
    assert completion.finish_reason == "stop"
    tokens = [token_from_json(line) for line in out.read_text().splitlines()]
    assert tokens == seen
    assert "".join(t.text for t in tokens if t.type == "text") == completion.text
