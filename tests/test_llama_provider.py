"""The llama provider against real llama.cpp, on tiny GGUF models written by the fixture.

The random model's text is gibberish; the tests assert the contract: our deltas
concatenate to what llama-cpp-python itself returns for the same seed and
parameters, UTF-8 characters arrive whole, usage and finish agree, disposal
stops generation, models are shared and their use serialised.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxtokens.errors import ConfigError, ProviderError, ProviderNotInstalledError
from rxtokens.testing.tiny_model import tiny_llama_vocab, write_tiny_llama_gguf
from rxtokens.tokens import Finish, StreamToken, TextDelta, Usage

llama_cpp = pytest.importorskip("llama_cpp")

from rxtokens.providers.llama import (  # noqa: E402  (after the importorskip)
    CAPABILITIES,
    LlamaProvider,
    Utf8Stream,
    clear_model_cache,
    llama,
    load_model,
)

pytestmark = pytest.mark.local

N_CTX = 256
# " the日é😀!" with 日 and 😀 spelled as byte tokens (split over 3 and 4 tokens), then EOS.
SCRIPT = [
    "▁the",
    "<0xE6>", "<0x97>", "<0xA5>",
    "é",
    "<0xF0>", "<0x9F>", "<0x98>", "<0x80>",
    "!",
    "</s>",
]  # fmt: skip
SCRIPT_TEXT = " the日é😀!"


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gguf")
    return {
        "random": write_tiny_llama_gguf(root / "random.gguf", seed=0),
        "script": write_tiny_llama_gguf(root / "script.gguf", seed=1, script=SCRIPT),
    }


@pytest.fixture(scope="session")
def reference(models: dict[str, Path]) -> Iterator[dict[str, Any]]:
    """Separate llama-cpp-python instances (not the provider's cached ones) as the reference."""
    refs = {
        name: llama_cpp.Llama(model_path=str(path), n_ctx=N_CTX, verbose=False)
        for name, path in models.items()
    }
    yield refs
    for ref in refs.values():
        ref.close()


def collect(observable: Any, timeout: float = 60) -> tuple[list[StreamToken], Exception | None]:
    tokens: list[StreamToken] = []
    errors: list[Exception] = []
    done = threading.Event()

    def on_error(exc: Exception) -> None:
        errors.append(exc)
        done.set()

    observable.subscribe(tokens.append, on_error, done.set)
    assert done.wait(timeout), "the stream did not end"
    return tokens, errors[0] if errors else None


def join_workers() -> None:
    for thread in threading.enumerate():
        if thread.name == "rxtokens-llama":
            thread.join(60)


def text_of(tokens: list[StreamToken]) -> str:
    return "".join(t.text for t in tokens if isinstance(t, TextDelta))


def assert_contract(tokens: list[StreamToken], reference: dict[str, Any], *, chat: bool) -> None:
    choice = reference["choices"][0]
    ref_text = choice["message"]["content"] if chat else choice["text"]
    deltas = [t for t in tokens if isinstance(t, TextDelta)]
    assert tokens[len(deltas) :] == [
        Finish(choice["finish_reason"], 0, choice["finish_reason"]),
        Usage(reference["usage"]["prompt_tokens"], reference["usage"]["completion_tokens"]),
    ]
    assert all(t.text for t in deltas), "an empty TextDelta"
    assert "".join(t.text for t in deltas) == ref_text
    if "\ufffd" not in ref_text:
        assert not any("\ufffd" in t.text for t in deltas)


# --------------------------------------------------------------------------- the tiny model


def test_tiny_model_is_small_and_loads(models: dict[str, Path], reference: dict[str, Any]) -> None:
    assert 100_000 < models["random"].stat().st_size < 1_000_000
    ref = reference["random"]
    assert ref.n_vocab() == len(tiny_llama_vocab())
    assert ref.metadata["tokenizer.chat_template"].startswith("{% for message")
    # multi-byte pieces and byte fallback: "▁日本" is one piece, 猫 falls back to bytes
    ids = ref.tokenize("日本猫".encode(), add_bos=False, special=False)
    pieces = [tiny_llama_vocab()[i][0] for i in ids]
    assert pieces == ["▁日本", "<0xE7>", "<0x8C>", "<0xAB>"]


def test_tiny_model_is_deterministic(tmp_path: Path) -> None:
    a = write_tiny_llama_gguf(tmp_path / "a.gguf", seed=3).read_bytes()
    b = write_tiny_llama_gguf(tmp_path / "b.gguf", seed=3).read_bytes()
    c = write_tiny_llama_gguf(tmp_path / "c.gguf", seed=4).read_bytes()
    assert a == b != c


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (["▁the", "▁the"], "once"),
        (["</s>", "▁the"], "only end"),
        (["nope-not-a-piece"], "not in the vocabulary"),
    ],
)
def test_tiny_model_rejects_bad_scripts(tmp_path: Path, script: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_tiny_llama_gguf(tmp_path / "x.gguf", script=script)


# --------------------------------------------------------------------------- the contract


@pytest.mark.parametrize(
    ("prompt", "params"),
    [
        ("Hello the", {"max_tokens": 40, "temperature": 0, "seed": 1}),
        ("Hello the", {"max_tokens": 30, "temperature": 0, "seed": 1, "stop": ["B", "is"]}),
        ("Hello the", {"max_tokens": 30, "temperature": 0.9, "seed": 5}),
        ("日本", {"max_tokens": 40, "temperature": 0, "seed": 1}),
        ("日本", {"max_tokens": 30, "temperature": 0.9, "seed": 5, "top_k": 20}),
        ("", {"max_tokens": 30, "temperature": 0, "seed": 1}),
        ("The cat", {"max_tokens": 16, "temperature": 1.5, "seed": 3, "repeat_penalty": 1.2}),
    ],
)
def test_completion_matches_llama_cpp_python(
    models: dict[str, Path], reference: dict[str, Any], prompt: str, params: dict[str, Any]
) -> None:
    tokens, error = collect(llama(models["random"], prompt, n_ctx=N_CTX, **params))
    assert error is None
    assert_contract(tokens, reference["random"].create_completion(prompt, **params), chat=False)


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "hi there"}],
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "日本は?"}],
    ],
)
def test_chat_matches_llama_cpp_python(
    models: dict[str, Path], reference: dict[str, Any], messages: list[dict[str, str]]
) -> None:
    params = {"max_tokens": 24, "temperature": 0, "seed": 2}
    tokens, error = collect(llama(models["random"], messages, n_ctx=N_CTX, **params))
    assert error is None
    ref = reference["random"].create_chat_completion(messages, **params)
    assert_contract(tokens, ref, chat=True)


def test_chat_true_wraps_a_prompt_string_as_a_user_message(models: dict[str, Path]) -> None:
    as_string, _ = collect(llama(models["random"], "hi", chat=True, n_ctx=N_CTX, temperature=0))
    as_messages, _ = collect(
        llama(models["random"], [{"role": "user", "content": "hi"}], n_ctx=N_CTX, temperature=0)
    )
    completion, _ = collect(llama(models["random"], "hi", n_ctx=N_CTX, temperature=0))
    assert as_string == as_messages
    assert as_string[-1] != completion[-1]  # the chat prompt is longer than "hi"


def test_split_characters_arrive_whole(models: dict[str, Path], reference: dict[str, Any]) -> None:
    tokens, error = collect(llama(models["script"], "Hi", n_ctx=N_CTX, max_tokens=50, seed=0))
    assert error is None
    # one delta per character group: 日 (3 byte tokens) and 😀 (4) arrive whole, nothing empty
    assert tokens == [
        TextDelta(" the"),
        TextDelta("日"),
        TextDelta("é"),
        TextDelta("😀"),
        TextDelta("!"),
        Finish("stop", 0, "stop"),
        Usage(4, 10),
    ]
    ref = reference["script"].create_completion("Hi", max_tokens=50, seed=0)
    assert_contract(tokens, ref, chat=False)


def test_max_tokens_finishes_with_length_and_completes_a_character(
    models: dict[str, Path], reference: dict[str, Any]
) -> None:
    # max_tokens=3 ends inside 日 ("▁the", E6, 97): like llama-cpp-python, one more
    # token completes the character, and the usage says so.
    params = {"max_tokens": 3, "temperature": 0, "seed": 0}
    tokens, error = collect(llama(models["script"], "Hi", n_ctx=N_CTX, **params))
    assert error is None
    assert tokens == [
        TextDelta(" the"),
        TextDelta("日"),
        Finish("length", 0, "length"),
        Usage(4, 4),
    ]
    assert_contract(tokens, reference["script"].create_completion("Hi", **params), chat=False)

    tokens, _ = collect(llama(models["random"], "Hello", n_ctx=N_CTX, max_tokens=5, seed=1))
    assert tokens[-2:] == [Finish("length", 0, "length"), Usage(tokens[-1].input_tokens, 5)]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ("é", " the日"),
        (["!", "he日"], " t"),  # a stop string spanning three tokens is never emitted
        ("zzz", SCRIPT_TEXT),
    ],
)
def test_stop_strings(
    models: dict[str, Path], reference: dict[str, Any], stop: Any, expected: str
) -> None:
    params = {"max_tokens": 50, "temperature": 0, "seed": 0, "stop": stop}
    tokens, error = collect(llama(models["script"], "Hi", n_ctx=N_CTX, **params))
    assert error is None
    assert text_of(tokens) == expected
    assert_contract(tokens, reference["script"].create_completion("Hi", **params), chat=False)


def test_registry_shape(models: dict[str, Path], reference: dict[str, Any]) -> None:
    provider = LlamaProvider()
    assert provider.capabilities is CAPABILITIES
    assert asyncio.run(provider.health()).ok
    params = {"max_tokens": 12, "temperature": 0, "seed": 2}
    tokens, error = collect(provider.stream(str(models["random"]), "hi", n_ctx=N_CTX, **params))
    assert error is None
    # a prompt string is one user message, as with the HTTP providers
    ref = reference["random"].create_chat_completion([{"role": "user", "content": "hi"}], **params)
    assert_contract(tokens, ref, chat=True)
    with pytest.raises(ConfigError, match="tools"):
        provider.stream(str(models["random"]), "hi", tools=[{"name": "f"}])


def test_capabilities() -> None:
    assert CAPABILITIES.local
    assert not CAPABILITIES.tools
    assert CAPABILITIES.usage_in_stream


# --------------------------------------------------------------------------- threads, disposal


def test_disposal_stops_generation_within_one_token(models: dict[str, Path]) -> None:
    llm = load_model(models["random"], n_ctx=N_CTX)
    sampled = 0
    reached, disposed = threading.Event(), threading.Event()
    original = llm.sample

    def counting_sample(*args: Any, **kwargs: Any) -> Any:
        nonlocal sampled
        sampled += 1
        if sampled == 5:
            reached.set()
            disposed.wait(30)
        return original(*args, **kwargs)

    llm.sample = counting_sample
    received: list[StreamToken] = []
    try:
        subscription = llama(
            models["random"], "Hello", n_ctx=N_CTX, max_tokens=200, temperature=0
        ).subscribe(received.append)
        assert reached.wait(30)
        subscription.dispose()
        at_dispose = sampled
        disposed.set()
        join_workers()
    finally:
        del llm.sample
    assert sampled - at_dispose <= 1
    assert not any(isinstance(t, (Finish, Usage)) for t in received)


def test_model_is_loaded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_tiny_llama_gguf(tmp_path / "once.gguf", seed=7)
    loads = 0

    class CountingLlama(llama_cpp.Llama):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            nonlocal loads
            loads += 1
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(llama_cpp, "Llama", CountingLlama)
    first, _ = collect(llama(path, "Hi", n_ctx=N_CTX, max_tokens=4, temperature=0))
    second, _ = collect(llama(str(path), "Hi", n_ctx=N_CTX, max_tokens=4, temperature=0))
    assert first == second
    assert loads == 1
    assert load_model(path, n_ctx=N_CTX) is load_model(path, n_ctx=N_CTX)
    assert loads == 1
    collect(llama(path, "Hi", n_ctx=128, max_tokens=4))  # other load parameters: another model
    assert loads == 2
    clear_model_cache()
    load_model(path, n_ctx=N_CTX)
    assert loads == 3
    write_tiny_llama_gguf(path, seed=8)  # a new file at the same path is loaded afresh
    changed, _ = collect(llama(path, "Hi", n_ctx=N_CTX, max_tokens=4, temperature=0))
    assert loads == 4
    assert changed != first


def test_concurrent_subscriptions_are_serialised(
    models: dict[str, Path], reference: dict[str, Any]
) -> None:
    llm = load_model(models["random"], n_ctx=N_CTX)
    active = peak = 0
    lock = threading.Lock()
    original = llm.generate

    def tracking_generate(*args: Any, **kwargs: Any) -> Iterator[int]:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            yield from original(*args, **kwargs)
        finally:
            with lock:
                active -= 1

    prompts = ["Hello the", "日本", "The cat", "a"]
    params = {"max_tokens": 20, "temperature": 0, "seed": 1}
    llm.generate = tracking_generate
    try:
        results: dict[str, list[StreamToken]] = {p: [] for p in prompts}
        done = {p: threading.Event() for p in prompts}
        for p in prompts:
            llama(models["random"], p, n_ctx=N_CTX, **params).subscribe(
                results[p].append, on_completed=done[p].set
            )
        assert all(event.wait(60) for event in done.values())
    finally:
        del llm.generate
    assert peak == 1
    for p in prompts:
        assert_contract(results[p], reference["random"].create_completion(p, **params), chat=False)


async def test_inside_an_event_loop_delivers_on_the_loop_without_blocking_it(
    models: dict[str, Path], reference: dict[str, Any]
) -> None:
    llm = load_model(models["random"], n_ctx=N_CTX)
    loop_ticked = threading.Event()
    original = llm.sample
    calls = 0

    def sample_waiting_for_the_loop(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:  # mid-generation: the loop must be able to run meanwhile
            assert loop_ticked.wait(30), "the event loop was blocked during generation"
        return original(*args, **kwargs)

    params = {"max_tokens": 20, "temperature": 0, "seed": 1}
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    received: list[tuple[StreamToken, int]] = []
    llm.sample = sample_waiting_for_the_loop
    try:
        llama(models["random"], "Hello the", n_ctx=N_CTX, **params).subscribe(
            lambda t: received.append((t, threading.get_ident())),
            done.set_exception,
            lambda: done.set_result(None),
        )
        ticks = 0
        while not done.done():
            ticks += 1
            if ticks == 10:
                loop_ticked.set()
            await asyncio.sleep(0)
        await done
    finally:
        del llm.sample
    assert ticks >= 10
    assert {ident for _, ident in received} == {threading.get_ident()}
    tokens = [t for t, _ in received]
    assert_contract(
        tokens, reference["random"].create_completion("Hello the", **params), chat=False
    )


def test_a_failing_subscriber_gets_the_error_and_generation_stops(
    models: dict[str, Path],
) -> None:
    errors: list[Exception] = []
    seen = 0

    def on_next(token: StreamToken) -> None:
        nonlocal seen
        seen += 1
        raise RuntimeError("subscriber bug")

    llama(models["script"], "Hi", n_ctx=N_CTX, max_tokens=50).subscribe(on_next, errors.append)
    join_workers()
    assert seen == 1
    assert [str(e) for e in errors] == ["subscriber bug"]


# --------------------------------------------------------------------------- errors


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ConfigError, match="does not exist") as info:
        llama(missing, "Hi")
    assert str(missing) in str(info.value)
    with pytest.raises(ConfigError, match="directory"):
        llama(tmp_path, "Hi")


def test_not_a_gguf_file_is_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ConfigError, match="not a GGUF file") as info:
        llama(bogus, "Hi")
    assert str(bogus) in str(info.value)


def test_a_corrupt_gguf_file_fails_the_stream_with_a_config_error(
    models: dict[str, Path], tmp_path: Path
) -> None:
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(models["random"].read_bytes()[:5000])
    tokens, error = collect(llama(truncated, "Hi", n_ctx=N_CTX))
    assert tokens == []
    assert isinstance(error, ConfigError)
    assert str(truncated) in str(error)


def test_a_prompt_longer_than_the_context_fails_the_stream(models: dict[str, Path]) -> None:
    tokens, error = collect(llama(models["random"], "a b " * 200, n_ctx=N_CTX))
    assert tokens == []
    assert isinstance(error, ConfigError)
    assert "n_ctx" in str(error)


def test_llama_cpp_errors_become_provider_errors(models: dict[str, Path]) -> None:
    llm = load_model(models["random"], n_ctx=N_CTX)

    def broken_generate(*args: Any, **kwargs: Any) -> Iterator[int]:
        raise RuntimeError("llama_decode returned 1")
        yield 0

    llm.generate = broken_generate
    try:
        _, error = collect(llama(models["random"], "Hi", n_ctx=N_CTX))
    finally:
        del llm.generate
    assert isinstance(error, ProviderError)
    assert "llama_decode returned 1" in str(error)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": ""}, "stop"),
        ({"seed": "1"}, "seed"),
        ({"not_a_parameter": 1}, "not_a_parameter"),
        ({"chat": False, "prompt_or_messages": [{"role": "user", "content": "x"}]}, "chat=False"),
        ({"response_format": {"type": "json_object"}}, "chat mode"),
    ],
)
def test_bad_arguments_fail_fast(
    models: dict[str, Path], kwargs: dict[str, Any], message: str
) -> None:
    kwargs.setdefault("prompt_or_messages", "Hi")
    with pytest.raises(ConfigError, match=message):
        llama(models["random"], **kwargs)


def test_a_llama_instance_is_accepted_and_load_parameters_are_refused(
    reference: dict[str, Any],
) -> None:
    ref = reference["script"]
    tokens, error = collect(llama(ref, "Hi", max_tokens=50))
    assert error is None
    assert text_of(tokens) == SCRIPT_TEXT
    with pytest.raises(ConfigError, match="load parameters"):
        llama(ref, "Hi", n_threads=1)


def test_missing_llama_cpp_python(monkeypatch: pytest.MonkeyPatch, models: dict[str, Path]) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(ProviderNotInstalledError, match=r"pip install 'rxtokens\[local\]'"):
        llama(models["random"], "Hi")


# --------------------------------------------------------------------------- UTF-8 decoding


@given(st.binary(max_size=64), st.lists(st.integers(0, 64), max_size=8))
def test_utf8_stream_is_split_invariant(data: bytes, cuts: list[int]) -> None:
    # However token bytes are split, the pieces are llama-cpp-python's one-shot decode.
    utf8 = Utf8Stream()
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    parts = [utf8.decode(data[a:b]) for a, b in itertools.pairwise(bounds)]
    parts.append(utf8.flush())
    assert "".join(parts) == data.decode("utf-8", errors="ignore")


@given(st.text(max_size=20), st.lists(st.integers(0, 80), max_size=10))
def test_utf8_stream_emits_each_character_once_whole(text: str, cuts: list[int]) -> None:
    # valid text split anywhere: nothing lost, nothing replaced, nothing left over
    data = text.encode("utf-8")
    utf8 = Utf8Stream()
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    parts = [utf8.decode(data[a:b]) for a, b in itertools.pairwise(bounds)]
    assert utf8.flush() == ""
    assert "".join(parts) == text
    assert "\ufffd" not in "".join(parts) or "\ufffd" in text
