"""Bundled transcripts and encoder round trips, re-chunked at arbitrary byte offsets.

bytes -> parse_sse() -> decode_x() -> aggregate() must give the same `Completion`
however the body is split (inside UTF-8 sequences, between CR and LF ...),
synchronously, with reactivex.from_iterable.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
import reactivex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reactivex import Observable

from rxtokens.errors import ConfigError, StreamError
from rxtokens.operators import (
    aggregate,
    decode_anthropic,
    decode_bedrock,
    decode_gemini,
    decode_openai_chat,
    decode_openai_responses,
    parse_aws_eventstream,
    parse_sse,
)
from rxtokens.testing import FORMATS, Script, ScriptedToolCall, encode, expected_completion
from rxtokens.testing.transcripts import (
    DIRECTORY,
    SCRIPTS,
    TRANSCRIPTS,
    load_expected,
    load_transcript,
)
from rxtokens.tokens import Completion

DECODERS: dict[str, Callable[[], Callable[[Observable[Any]], Observable[Any]]]] = {
    "openai_chat": decode_openai_chat,
    "openai_responses": decode_openai_responses,
    "anthropic": decode_anthropic,
    "gemini": decode_gemini,
    "bedrock": decode_bedrock,  # after parse_aws_eventstream(), not parse_sse()
}


def interesting_offsets(body: bytes) -> list[int]:
    """Offsets inside multi-byte UTF-8 sequences and between CR and LF."""
    inside_utf8 = [i for i, b in enumerate(body) if 0x80 <= b < 0xC0]
    inside_crlf = [i + 1 for i in range(len(body) - 1) if body[i : i + 2] == b"\r\n"]
    return inside_utf8 + inside_crlf


@st.composite
def chunkings(draw: st.DrawFn, body: bytes) -> list[bytes]:
    """`body` split at random offsets, biased towards the interesting ones."""
    special = interesting_offsets(body)
    anywhere = st.integers(0, len(body))
    offset = st.one_of(st.sampled_from(special), anywhere) if special else anywhere
    cuts = sorted(set(draw(st.lists(offset, max_size=40))))
    bounds = [0, *cuts, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds)]


def outcome(fmt: str, chunks: list[bytes]) -> tuple[list[Completion], Exception | None]:
    completions: list[Completion] = []
    errors: list[Exception] = []
    parse = parse_aws_eventstream() if fmt == "bedrock" else parse_sse()
    reactivex.from_iterable(chunks).pipe(parse, DECODERS[fmt](), aggregate()).subscribe(
        completions.append, errors.append
    )
    return completions, (errors[0] if errors else None)


def test_every_transcript_has_its_files_and_matches_its_script() -> None:
    assert set(TRANSCRIPTS) >= {
        "openai_chat_tools",
        "openai_chat_n2",
        "openai_chat_error_after_200",
        "openai_responses_text",
        "anthropic_thinking_tools",
        "gemini_text",
    }
    for name in TRANSCRIPTS:
        assert (DIRECTORY / f"{name}.sse").is_file()
        fmt, script, options = SCRIPTS[name]
        # The checked-in bytes are what the encoder renders (regenerate on purpose only).
        assert load_transcript(name) == b"".join(encode(fmt, script, **options)), name
        json.loads((DIRECTORY / f"{name}.expected.json").read_text("utf-8"))


def test_unknown_transcript_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="gemini_text"):
        load_transcript("nope")


def test_unknown_wire_format_is_a_config_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"'cohere'; known: \['openai_chat'"):
        encode("cohere", Script(text="x"))
    with pytest.raises(ConfigError, match="'cohere'"):
        expected_completion(Script(text="x"), "cohere")


def test_transcripts_have_the_promised_quirks() -> None:
    tools = load_transcript("openai_chat_tools")
    assert tools.count(b'"id":"call_') == 2
    assert b'"choices":[],"usage":{' in tools
    assert b'"index":1,"delta"' in load_transcript("openai_chat_n2")
    error = load_transcript("openai_chat_error_after_200")
    assert error.endswith(
        b'data: {"error":{"message":"The server had an error while processing",'
        b'"type":"server_error","param":null,"code":null}}\n\ndata: [DONE]\n\n'
    )
    thinking = load_transcript("anthropic_thinking_tools")
    for marker in (b"signature_delta", b"event: ping", b'"input":{}', b"thinking_delta"):
        assert marker in thinking
    gemini = load_transcript("gemini_text")
    assert b"\r\n\r\n" in gemini
    assert b"\n\n" not in gemini.replace(b"\r\n", b"")


@pytest.mark.parametrize("name", TRANSCRIPTS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_transcript_rechunked_decodes_to_expected(name: str, data: st.DataObject) -> None:
    body = load_transcript(name)
    expected = load_expected(name)
    chunks = data.draw(chunkings(body))
    assert b"".join(chunks) == body
    completions, error = outcome(expected.format, chunks)
    if expected.completion is not None:
        assert error is None, error
        assert completions == [expected.completion]
    else:
        assert completions == []
        assert type(error).__name__ == expected.error
        assert getattr(error, "error_type", None) == expected.error_type
        assert isinstance(error, StreamError)
        assert error.partial == expected.partial


@pytest.mark.parametrize("name", [n for n in TRANSCRIPTS if SCRIPTS[n][1].error is None])
def test_transcript_cut_short_is_truncated_with_partial(name: str) -> None:
    body = load_transcript(name)
    expected = load_expected(name)
    # Cut after the first half of the events: the terminal event never arrives.
    events = body.split(b"\r\n\r\n" if expected.format == "gemini" else b"\n\n")
    cut = b"".join(
        e + (b"\r\n\r\n" if expected.format == "gemini" else b"\n\n")
        for e in events[: len(events) // 2]
    )
    completions, error = outcome(expected.format, [cut])
    assert completions == []
    assert type(error).__name__ == "TruncatedStreamError"
    assert isinstance(error, StreamError)
    assert error.partial is not None


# --------------------------------------------------------------------------- round trip

deltas = st.lists(st.text(max_size=8), max_size=6)
json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=3),
)
tool_calls = st.lists(
    st.builds(
        ScriptedToolCall,
        name=st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
        arguments=st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=4),
        fragments=st.integers(1, 5),
    ),
    max_size=3,
)


@st.composite
def scripts(draw: st.DrawFn) -> tuple[str, Script]:
    fmt = draw(st.sampled_from(FORMATS))
    openai = fmt.startswith("openai")
    script = Script(
        text=draw(deltas),
        reasoning=draw(deltas),
        tool_calls=draw(tool_calls),
        usage=draw(st.none() | st.tuples(st.integers(0, 10**6), st.integers(0, 10**6))),
        n=draw(st.integers(1, 3)) if fmt == "openai_chat" else 1,
        refusal=draw(st.none() | st.text(max_size=10)) if openai else None,
        seed=draw(st.integers(0, 10**6)),
    )
    return fmt, script


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=scripts(), data=st.data())
def test_round_trip_random_scripts(case: tuple[str, Script], data: st.DataObject) -> None:
    fmt, script = case
    body = b"".join(encode(fmt, script))
    completions, error = outcome(fmt, data.draw(chunkings(body)))
    assert error is None, error
    assert completions == [expected_completion(script, fmt)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_cache_and_reasoning_counts_reach_the_completion(fmt: str) -> None:
    """Each format's cache / reasoning usage fields, decoded into `Usage` (None where the
    provider does not report them)."""
    script = Script(
        text="cached answer",
        reasoning="thinking",
        usage=(100, 30),
        cached_tokens=(60, 25),
        reasoning_tokens=12,
    )
    completions, error = outcome(fmt, [b"".join(encode(fmt, script))])
    assert error is None
    usage = completions[0].usage
    assert usage == expected_completion(script, fmt).usage
    expected = {
        "openai_chat": (60, None, 12),
        "openai_responses": (60, None, 12),
        "anthropic": (60, 25, None),
        "gemini": (60, None, 1),  # thoughtsTokenCount: one per reasoning delta here
        "bedrock": (60, 25, None),
    }[fmt]
    assert (
        usage.cache_read_input_tokens,
        usage.cache_write_input_tokens,
        usage.reasoning_tokens,
    ) == expected
