"""The fused SSE -> decoder path (operators/_decode_sse.py) and the decoders' template path.

Reference: the unfused path, ``pipe(parse_sse(), decode_x())``, whose decoders see one
`SseEvent` at a time and never use a template. The fused path must give exactly its tokens
and its error, for every cut of the bytes.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
import reactivex
from hypothesis import example, given, settings
from hypothesis import strategies as st
from reactivex import operators as ops

from rxtokens.operators import _decode_openai as _openai
from rxtokens.operators import (
    decode_anthropic,
    decode_gemini,
    decode_openai_chat,
    decode_openai_responses,
    parse_sse,
)
from rxtokens.operators._decode import loads as _loads
from rxtokens.operators._decode_openai import OpenAIChatDecoder
from rxtokens.operators._decode_sse import SseDecoding, sse_decoder
from rxtokens.sse import SseEvent, SseParser
from rxtokens.testing import (
    TRANSCRIPTS,
    Script,
    load_expected,
    load_transcript,
    openai_chat_events,
)
from rxtokens.tokens import TextDelta

DECODERS: dict[str, Callable[[], Any]] = {
    "openai_chat": decode_openai_chat,
    "openai_responses": decode_openai_responses,
    "anthropic": decode_anthropic,
    "gemini": decode_gemini,
}

Outcome = tuple[list[Any], str | None]


def outcome(chunks: list[bytes], operator: Callable[[Any], Any]) -> Outcome:
    """The tokens, and the error (type and message) or None, of `chunks` through `operator`."""
    tokens: list[Any] = []
    errors: list[Exception] = []
    done: list[bool] = []
    reactivex.from_iterable(chunks).pipe(operator).subscribe(
        tokens.append, errors.append, lambda: done.append(True)
    )
    assert len(errors) + len(done) == 1
    error = f"{type(errors[0]).__name__}: {errors[0]}" if errors else None
    return [(type(token).__name__, *token) for token in tokens], error


def unfused(name: str) -> Callable[[Any], Any]:
    parse, decode = parse_sse(), DECODERS[name]()
    return lambda source: source.pipe(parse, decode)


def fused(name: str) -> Callable[[Any], Any]:
    return sse_decoder(parse_sse(max_event_bytes=1 << 20), DECODERS[name]())


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]


def assert_same(name: str, body: bytes, cuts: list[int]) -> Outcome:
    """Fused (cut at `cuts`) equals unfused (whole body); returns the outcome."""
    expected = outcome([body], unfused(name))
    assert outcome(cut(body, cuts), fused(name)) == expected
    return expected


# --- wiring ----------------------------------------------------------------------------------


def test_providers_use_the_fused_path_and_other_pairs_are_piped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []
    original = SseDecoding.__init__

    def spy(self: SseDecoding, *args: Any) -> None:
        seen.append(self)
        original(self, *args)

    monkeypatch.setattr(SseDecoding, "__init__", spy)
    body = b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: [DONE]\n\n'
    fused_op = sse_decoder(parse_sse(), decode_openai_chat())
    assert reactivex.of(body).pipe(fused_op).run() == TextDelta("Hi")
    assert len(seen) == 1
    # Another parser (Bedrock's, a user's own operator): piped as given.
    own_parser = ops.map(lambda chunk: SseEvent(data=chunk.decode()))
    piped = sse_decoder(own_parser, decode_openai_chat())
    assert reactivex.of(b'{"choices":[{"delta":{"content":"Hi"}}]}', b"[DONE]").pipe(
        piped
    ).run() == TextDelta("Hi")
    assert len(seen) == 1


def test_tokens_before_an_error_in_the_same_chunk_come_first() -> None:
    body = (
        b'data: {"choices":[{"delta":{"content":"kept"}}]}\n\n'
        b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n'
    )
    tokens, error = outcome([body], fused("openai_chat"))
    assert tokens == [("TextDelta", "kept", 0)]
    assert error is not None
    assert error.startswith("ProviderError")
    assert (tokens, error) == outcome([body], unfused("openai_chat"))


def test_an_oversized_event_fails_as_the_parser_does() -> None:
    operator = sse_decoder(parse_sse(max_event_bytes=8), decode_openai_chat())
    assert outcome([b"data: 0123456789"], operator)[1].startswith("StreamDecodeError")  # type: ignore[union-attr]


# --- transcripts: every cut at every byte -----------------------------------------------------


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_transcripts_split_at_every_byte(name: str) -> None:
    fmt = load_expected(name).format
    if fmt not in DECODERS:
        pytest.skip(f"{fmt} is not SSE")
    body = load_transcript(name)
    expected = outcome([body], unfused(fmt))
    for at in range(len(body) + 1):
        assert outcome([body[:at], body[at:]], fused(fmt)) == expected, at
    assert outcome([body[i : i + 1] for i in range(len(body))], fused(fmt)) == expected


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(TRANSCRIPTS), st.lists(st.integers(0, 20_000), max_size=40))
def test_transcripts_under_random_cuts(name: str, cuts: list[int]) -> None:
    fmt = load_expected(name).format
    if fmt in DECODERS:
        assert_same(fmt, load_transcript(name), cuts)


# --- generated streams: framing corners and near-miss envelopes -------------------------------

# Strings that stress the template: plain, empty, JSON-special, escapes written in the payload,
# non-ASCII, characters isprintable() turns away, a value that also occurs in the envelope.
texts = st.one_of(
    st.sampled_from(
        ["Hi", "gpt", "gpt", "", '"', "\\", "a\nb", "é", "🙂", "\u2028", "\x7f", "0", "x",
         "content", '","', "}", "text_delta", "\xa0"]
    ),
    st.text(max_size=4),
)  # fmt: skip


# OpenAI's obfuscation padding: plain, empty, JSON-special (escaped in the payload), the
# content key itself, splices of fields the decoder reads, non-ASCII, unprintable characters.
pads = st.one_of(
    st.sampled_from(
        ["aZ3", "q", "", '"', "\\", "}", ',"content":"', '","content":"x', "é🙂", "\u2028",
         "\x00", "content", "obfuscation", '","usage":{"prompt_tokens":1},"o":"',
         '","error":{"message":"x"},"o":"', '"}],"x":"']
    ),
    st.text(max_size=6),
)  # fmt: skip


@st.composite
def often(draw: st.DrawFn, common: Any, *rare: Any, odds: int = 3) -> Any:
    """`common`, else (one time in `odds`) one of `rare`: near misses of the common shape."""
    if draw(st.integers(1, odds)) > 1:
        return common
    return draw(st.sampled_from(rare))


@st.composite
def json_string(draw: st.DrawFn, text: str) -> str:
    """`text` as a JSON string literal, written one of several legal ways."""
    how = draw(often("compact", "ascii", "escaped"))
    if how == "escaped" and text:
        at = draw(st.integers(0, len(text) - 1))
        if 0xD800 <= ord(text[at]) <= 0xDFFF or ord(text[at]) > 0xFFFF:
            return json.dumps(text)
        head, tail = json.dumps(text[:at], ensure_ascii=False), json.dumps(text[at + 1 :])
        return f"{head[:-1]}\\u{ord(text[at]):04x}{tail[1:]}"
    return json.dumps(text, ensure_ascii=how == "ascii")


@st.composite
def openai_payload(draw: st.DrawFn, pool: list[str], padded: str = "none") -> str:
    """A chat chunk; `padded` (none, some, all): which carry an ``obfuscation`` field."""
    text = draw(json_string(draw(st.sampled_from(pool))))
    pad = ""
    if padded == "all" or (padded == "some" and draw(st.booleans())):
        pad = f',"obfuscation":{draw(json_string(draw(pads)))}'
    head, tail = draw(often(("", pad), (pad, ""), odds=6))
    model = draw(often('"m"', '"n"', draw(json_string(draw(st.sampled_from(pool))))))
    index = draw(often("0", "1", '"a"', "null", "true"))
    delta = draw(
        often(
            f'{{"content":{text}}}',
            f'{{"role":"assistant","content":{text}}}',
            f'{{"content":{text},"content":{text}}}',
            f'{{"reasoning_content":{text}}}',
            f'{{"content":{text},"refusal":null}}',
            f'{{"content":[{text}]}}',
            "{}",
        )
    )
    finish = draw(often("null", '"stop"', '"length"'))
    usage = draw(often("", ',"usage":null', ',"usage":{"prompt_tokens":1}'))
    return draw(
        often(
            f'{{"model":{model}{head},"choices":[{{"index":{index},"delta":{delta},'
            f'"finish_reason":{finish}}}]{usage}{tail}}}',
            f'{{"choices":[{{"delta":{delta},"index":{index}{tail}}}],"model":{model}{usage}}}',
            f'{{"choices":[{{"delta":{delta}}},{{"delta":{delta}}}]}}',
            '{"error":{"message":"boom"}}',
            "[DONE]",
            "not json",
        )
    )


@st.composite
def anthropic_payload(draw: st.DrawFn, pool: list[str]) -> tuple[str, str]:
    text = draw(json_string(draw(st.sampled_from(pool))))
    other = draw(often('"o"', draw(json_string(draw(st.sampled_from(pool))))))
    kind = draw(often("text_delta", "thinking_delta", "input_json_delta"))
    field = {"text_delta": "text", "thinking_delta": "thinking"}.get(kind, "partial_json")
    index = draw(often("0", "1", '"x"', other))
    body = draw(
        often(
            f'{{"type":"content_block_delta","index":{index},'
            f'"delta":{{"type":"{kind}","{field}":{text}}}}}',
            f'{{"type":"content_block_delta","delta":{{"{field}":{text},"type":"{kind}"}}}}',
            f'{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta",'
            f'"text":{text},"text":{other}}}}}',
            f'{{"type":"content_block_delta","id":{other},"index":0,'
            f'"delta":{{"type":"text_delta","text":{text}}}}}',
        )
    )
    return draw(
        often(
            ("content_block_delta", body),
            ("ping", "{}"),
            ("message", body),
            ("message_stop", '{"type":"message_stop"}'),
            ("error", '{"type":"error","error":{"type":"overloaded_error","message":"x"}}'),
            ("content_block_delta", "not json"),
        )
    )


@st.composite
def framed(draw: st.DrawFn, payloads: list[tuple[str, str]]) -> bytes:
    """An SSE body of (event type, data) pairs, with the spec's framing corners drawn.

    Each corner is rare per event, so most runs of events keep the fast shapes (and the
    template path) and the corners land between them.
    """
    out = []
    if draw(st.booleans()):
        out.append("\ufeff")
    for kind, payload in payloads:
        eol = draw(often("\n", "\r\n", "\r", odds=4))
        lines = [draw(often("", ": keep-alive", ":", "id: 7", "retry: 10", odds=20))]
        if kind != "message" or draw(often(False, True, odds=20)):
            lines.append(f"event: {kind}")
        lines.append(draw(often("data: ", "data:", odds=20)) + payload)
        out.append(eol.join(line for line in lines if line) + eol + eol)
    out.append(
        draw(
            often(
                "",
                "data: [DONE]\n\n",
                'event: message_stop\ndata: {"type":"message_stop"}\n\n',
            )
        )
    )
    body = "".join(out).encode()
    if draw(st.integers(0, 9)) == 0 and body:  # an invalid byte somewhere: U+FFFD
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + b"\xff" + body[at:]
    return body


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_openai_chat_fused_and_templated_equals_unfused(data: st.DataObject) -> None:
    pool = data.draw(st.lists(texts, min_size=1, max_size=2))
    padded = data.draw(st.sampled_from(["none", "some", "all"]))
    payloads = [
        ("message", data.draw(openai_payload(pool, padded)))
        for _ in range(data.draw(st.integers(1, 12)))
    ]
    body = data.draw(framed(payloads))
    assert_same("openai_chat", body, data.draw(st.lists(st.integers(0, len(body)), max_size=8)))


words = st.text("abcXYZ019 é日🙂,:{}[]", max_size=8)  # plain: what the template must take


@st.composite
def literal(draw: st.DrawFn, rare: st.SearchStrategy[str]) -> str:
    """Mostly a plain word written compactly; else a `rare` string or another spelling."""
    text = draw(often(draw(words), draw(rare), odds=5))
    spelt = draw(often(json.dumps(text, ensure_ascii=False), draw(json_string(text)), odds=5))
    return draw(often(spelt, f'"{text}"', odds=8))  # rarely raw: a splice or invalid JSON


@st.composite
def wire_chat_payload(draw: st.DrawFn, pool: list[str], padded: str) -> str:
    """Mostly a content-only chunk in OpenAI's wire shape (the template's case), each with
    its own text and padding; sometimes any `openai_payload` (a near miss)."""
    if draw(st.integers(0, 5)) == 0:
        return draw(openai_payload(pool, padded))
    text = draw(literal(texts))
    pad = ""
    if padded == "all" or (padded == "some" and draw(st.booleans())):
        pad = f',"obfuscation":{draw(literal(pads))}'
    return (
        '{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
        f'"delta":{{"content":{text}}},"logprobs":null,"finish_reason":null}}],"usage":null{pad}}}'
    )


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_openai_chat_wire_shaped_streams_with_padding(data: st.DataObject) -> None:
    pool = data.draw(st.lists(texts, min_size=1, max_size=2))
    padded = data.draw(st.sampled_from(["none", "some", "all", "all"]))
    payloads = [
        ("message", data.draw(wire_chat_payload(pool, padded)))
        for _ in range(data.draw(st.integers(4, 16)))
    ]
    body = data.draw(framed(payloads))
    assert_same("openai_chat", body, data.draw(st.lists(st.integers(0, len(body)), max_size=8)))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_anthropic_fused_and_templated_equals_unfused(data: st.DataObject) -> None:
    pool = data.draw(st.lists(texts, min_size=1, max_size=2))
    payloads = [data.draw(anthropic_payload(pool)) for _ in range(data.draw(st.integers(1, 12)))]
    body = data.draw(framed(payloads))
    assert_same("anthropic", body, data.draw(st.lists(st.integers(0, len(body)), max_size=8)))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(DECODERS)), st.binary(max_size=400), st.lists(st.integers(0, 400)))
@example("openai_chat", b'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: [DONE]\n\n', [7])
def test_arbitrary_bytes_fused_equals_unfused(name: str, body: bytes, cuts: list[int]) -> None:
    assert_same(name, body, cuts)


def test_the_template_path_is_taken_and_envelope_changes_fall_back() -> None:
    def chunk(text: str, index: int = 0, model: str = "m") -> str:
        return (
            f'{{"model":"{model}","choices":[{{"index":{index},"delta":{{"content":{json.dumps(text)}}},'
            '"finish_reason":null}]}'
        )

    decoder = OpenAIChatDecoder()
    tokens: list[Any] = []
    decoder.decode_values([chunk("a"), chunk("b"), chunk("c\\"), chunk("d", 1)], tokens)
    assert decoder._template[0].endswith('"content":"')
    assert tokens == [TextDelta("a"), TextDelta("b"), TextDelta("c\\"), TextDelta("d", 1)]
    # A content value equal to the model name: ambiguous, no template is learnt from it.
    fresh = OpenAIChatDecoder()
    fresh.decode_values([chunk("m")], [])
    assert fresh._template[0] == ""  # no template


def test_the_obfuscation_padding_is_the_templates_second_hole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = Script(text=[f"w{i} é" for i in range(40)], usage=(1, 40))
    body = b"".join(openai_chat_events(script, obfuscation=True))
    parses: list[str] = []
    monkeypatch.setattr(
        _openai, "fast_loads", lambda data: parses.append(data) or _loads("openai", data)
    )
    decoder = OpenAIChatDecoder()
    tokens: list[Any] = []
    decoder.decode_values(SseParser().feed_split(body)[1][:-1], tokens)  # all but [DONE]
    prefix, middle, suffix, _ = decoder._template
    assert prefix.endswith('"content":"')
    assert middle.endswith(',"obfuscation":"')
    assert suffix == '"}'
    assert [t.text for t in tokens if type(t) is TextDelta] == script.text
    assert len(parses) == 4  # the role chunk, the first text, the finish and the usage
    monkeypatch.undo()
    assert_same("openai_chat", body, list(range(0, len(body), 97)))


def test_single_event_chunks_skip_the_buffering() -> None:
    parser = SseParser()
    assert parser.feed_split(b"data: one\n\n") == (0, ["one"])
    assert parser.feed_split(b"data: a\nb\n\n")[0] == 2  # two lines: the general path
    assert parser.feed(b"data: \xff\n\n")[0].data == "\ufffd"


def _chat(
    content: str, model: str = '"m"', tail: str = '"finish_reason":null', pad: str = ""
) -> str:
    pad = pad and f',"obfuscation":{pad}'
    return (
        f'{{"model":{model},"choices":[{{"index":0,"delta":{{"content":{content}}},{tail}}}]{pad}}}'
    )


def _text(text: str, head: str = '"type":"content_block_delta","index":0') -> str:
    return f'{{{head},"delta":{{"type":"text_delta","text":{text}}}}}'


NEAR_MISSES = {
    "model equals the content": [_chat('"gpt"', '"gpt"'), _chat('"gpt"', '"abc"')],
    "content escaped, model literal": [_chat('"g\\u0070t"', '"gpt"'), _chat('"g\\u0070t"', '"x"')],
    "duplicate content keys": [
        '{"choices":[{"delta":{"content":"a","content":"b"}}]}',
        '{"choices":[{"delta":{"content":"a","content":"c"}}]}',
    ],
    "a quote in the new text": [_chat('"a"'), _chat('"b","x":"y"'), _chat('"b\\"c"')],
    "a backslash escape in the new text": [_chat('"a"'), _chat('"b\\nc"'), _chat('"\\u0041"')],
    "a raw control character": [_chat('"a"'), _chat('"b\tc"')],
    "an empty text": [_chat('"a"'), _chat('""')],
    "the finish chunk": [_chat('"a"'), _chat('"b"', tail='"finish_reason":"stop"')],
    "after [DONE]": [_chat('"a"'), "[DONE]", _chat('"b"')],
    "an error envelope": [_chat('"a"'), '{"error":{"message":"x"},"choices":[]}'],
    "non-printable text": [_chat('"a"'), _chat('"\u2028"'), _chat('"\x7f"'), _chat('"\ufeff"')],
    "a quote in the padding": [
        _chat('"a"', pad='"x"'),
        _chat('"b"', pad='"y","model":"z"'),
        _chat('"b"', pad='"y","content":"z"'),
        _chat('"b"', pad='"y\\"z"'),
    ],
    "the padding's envelope changes": [
        _chat('"a"', pad='"x"'),
        _chat('"b"', pad='"y"', model='"n"'),
        _chat('"b"', pad='"y"', tail='"finish_reason":"stop"'),
        _chat('"b"'),
        _chat('"b"', pad="null"),
        _chat('"b"', pad="1"),
        _chat('"b"', pad='{"o":"x"}'),
    ],
    "escapes and control characters in the padding": [
        _chat('"a"', pad='"x"'),
        _chat('"b"', pad='"\\u0022"'),
        _chat('"b"', pad='"\\\\"'),
        _chat('"b"', pad='"\u2028"'),
        _chat('"b"', pad='"\t"'),  # invalid JSON: both paths fail alike
    ],
    "plain paddings that fit": [
        _chat('"a"', pad='"x"'),
        _chat('"b"', pad='""'),
        _chat('"c"', pad='"}],"'),
        _chat('"d"', pad='"é🙂,:content"'),
    ],
    "changes the decoder reads, spliced into the holes": [
        _chat('"a"', pad='"x"'),
        _chat('""', pad='"y"'),
        _chat('"b"', pad='"y","usage":{"prompt_tokens":3},"o":"z"'),
        _chat('"b"', pad="").replace("null}]}", '"stop"}],"obfuscat":"z"}'),
        _chat('"b"', pad='"y","error":{"message":"boom"},"o":"z"'),
    ],
    "escapes and unprintable text beside a padding": [
        _chat('"a"', pad='"x"'),
        _chat('"b\\nc"', pad='"y"'),
        _chat('"\\u0041"', pad='"y"'),
        _chat('"\u2028"', pad='"y"'),
        _chat('"b\tc"', pad='"y"'),  # a raw control character: invalid JSON
    ],
    "the middle overlaps the suffix": [
        _chat('"a"', pad='"x"'),
        _chat('"ab"', pad='"x"')[:-3] + "}",  # an unterminated string: invalid
    ],
    "a padding equal to the content": [_chat('"a"', pad='"a"'), _chat('"b"', pad='"b"')],
    "two paddings": [
        _chat('"a"', pad='"x","obfuscation":"y"'),
        _chat('"b"', pad='"z","obfuscation":"y"'),
        _chat('"c"', pad='"z","obfuscation":"w"'),
    ],
    "the padding before the content": [
        '{"obfuscation":"x","choices":[{"delta":{"content":"a"}}]}',
        '{"obfuscation":"y","choices":[{"delta":{"content":"b"}}]}',
    ],
}
_HEAD = '"type":"content_block_delta"'
ANTHROPIC_NEAR_MISSES = {
    "id equals the text": [_text('"hi"', _HEAD + ',"id":"hi"'), _text('"hi"', _HEAD + ',"id":"x"')],
    "thinking with the same envelope": [
        _text('"a"'),
        _text('"b"').replace("text_delta", "thinking_delta").replace('"text"', '"thinking"'),
    ],
    "text escaped": [
        _text('"\\u0061"', _HEAD + ',"m":"a"'),
        _text('"\\u0061"', _HEAD + ',"m":"b"'),
    ],
}


@pytest.mark.parametrize("payloads", NEAR_MISSES.values(), ids=list(NEAR_MISSES))
def test_openai_near_miss_envelopes_decode_as_without_the_template(payloads: list[str]) -> None:
    body = "".join(f"data: {p}\n\n" for p in payloads * 2).encode()
    assert_same("openai_chat", body, [])
    assert_same("openai_chat", body, list(range(0, len(body), 7)))


@pytest.mark.parametrize(
    "payloads", ANTHROPIC_NEAR_MISSES.values(), ids=list(ANTHROPIC_NEAR_MISSES)
)
def test_anthropic_near_miss_envelopes_decode_as_without_the_template(payloads: list[str]) -> None:
    body = "".join(f"event: content_block_delta\ndata: {p}\n\n" for p in payloads * 2)
    body += 'event: message_stop\ndata: {"type":"message_stop"}\n\n' + (
        f"event: content_block_delta\ndata: {payloads[0]}\n\n"
    )
    assert_same("anthropic", body.encode(), [])
