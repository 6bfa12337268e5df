"""Decode benchmark: microseconds per token, bytes -> StreamToken.

The same bytes (a stream rendered by `rxtokens.testing.wire`, cut into ~4 KB
chunks; OpenAI's twice: without and with the per-chunk ``obfuscation`` padding that
the real API sends, the realistic case on which the OpenAI goals are judged) go through:

- rxtokens' provider path: ``sse_decoder(parse_sse(), decode_x())``, what
  ``HttpProvider.stream`` pipes the body through (SSE parsing fused with the
  decoder: no ``SseEvent``), also with the decoders' template path off; the
  public operators ``pipe(parse_sse(), decode_x())``; and the pure core
  (``SseParser.feed`` + ``Decoder.feed``, no Rx) for reference;
- the official SDKs' own client iteration, through their HTTP client
  (``httpx2``) with a ``MockTransport`` that serves the same chunks:
  ``OpenAI().chat.completions.create(stream=True)``,
  ``Anthropic().messages.create(stream=True)`` and
  ``Anthropic().messages.stream(...).text_stream``;
- a raw baseline: split on blank lines + ``json.loads`` (or pydantic-core's
  ``from_json``) of each ``data:`` line (no token objects at all).

Goals (issue 17): >= 60x the openai SDK, >= 12x the anthropic SDK's
``create(stream=True)``, <= 1.2x the time of the raw baseline with the same JSON
parser; each the median of per-round ratios (order alternating, CPU time).

Run: ``.venv/bin/python benchmarks/decode.py [--quick]``; writes the
"decode" section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx2
import reactivex
from _report import ROUNDS, Ratio, goal, write_section
from _report import rounds as _report_rounds
from pydantic_core import from_json

from rxtokens.operators import _decode_anthropic as _anthropic
from rxtokens.operators import _decode_openai as _openai
from rxtokens.operators import decode_anthropic, decode_openai_chat, parse_sse
from rxtokens.operators._decode_anthropic import AnthropicDecoder
from rxtokens.operators._decode_openai import OpenAIChatDecoder
from rxtokens.operators._decode_sse import sse_decoder
from rxtokens.sse import SseParser
from rxtokens.testing import Script, anthropic_events, openai_chat_events

CHUNK = 4096
OBF = "openai+obfuscation"
WORDS = ["Hello", " world", ",", " the", " quick", " brown", " fox", " jumps", " ü", " 日本"]


def chunked(body: bytes, size: int = CHUNK) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def bodies(tokens: int) -> dict[str, bytes]:
    script = Script(text=[WORDS[i % len(WORDS)] for i in range(tokens)], usage=(10, tokens))
    return {
        "openai": b"".join(openai_chat_events(script, include_usage=True)),
        # What OpenAI really sends: a random-length "obfuscation" padding on every chunk.
        OBF: b"".join(openai_chat_events(script, include_usage=True, obfuscation=True)),
        "anthropic": b"".join(anthropic_events(script)),
    }


# --------------------------------------------------------------------------- rxtokens


def rx_pipeline(chunks: list[bytes], decoder: Callable[[], Any]) -> int:
    count = 0

    def on_next(_: object) -> None:
        nonlocal count
        count += 1

    reactivex.from_iterable(chunks).pipe(parse_sse(), decoder()).subscribe(on_next)
    return count


def rx_provider_path(chunks: list[bytes], decoder: Callable[[], Any]) -> int:
    """What ``HttpProvider.stream`` pipes the body through: ``sse_decoder`` (fused SSE ->
    decoder, no ``SseEvent``)."""
    count = 0

    def on_next(_: object) -> None:
        nonlocal count
        count += 1

    reactivex.from_iterable(chunks).pipe(sse_decoder(parse_sse(), decoder())).subscribe(on_next)
    return count


def no_template(run: Callable[[], int]) -> Callable[[], int]:
    """`run` with the decoders' template path switched off (to show what it adds)."""

    def without() -> int:
        saved = _openai._TEMPLATE_TRIES, _anthropic._TEMPLATE_TRIES
        _openai._TEMPLATE_TRIES = _anthropic._TEMPLATE_TRIES = 0
        try:
            return run()
        finally:
            _openai._TEMPLATE_TRIES, _anthropic._TEMPLATE_TRIES = saved

    return without


def pure_core(chunks: list[bytes], decoder_class: Callable[[], Any]) -> int:
    parser = SseParser()
    decoder = decoder_class()
    feed = decoder.feed
    count = 0
    for chunk in chunks:
        for event in parser.feed(chunk):
            count += len(feed(event))
    for event in parser.close():
        count += len(feed(event))
    decoder.close()
    return count


# --------------------------------------------------------------------------- baselines


def raw_baseline(chunks: list[bytes], loads: Callable[[bytes], Any] = json.loads) -> int:
    buffer = b""
    count = 0
    for chunk in chunks:
        buffer += chunk
        *blocks, buffer = buffer.split(b"\n\n")
        for block in blocks:
            for line in block.split(b"\n"):
                if line[:6] == b"data: " and line[6:] != b"[DONE]":
                    loads(line[6:])
                    count += 1
    return count


def mock_http(chunks: list[bytes]) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=iter(chunks)
        )

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def openai_sdk(chunks: list[bytes]) -> int:
    from openai import OpenAI

    with mock_http(chunks) as http:
        client = OpenAI(api_key="x", base_url="http://mock/v1", http_client=http, max_retries=0)
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        count = 0
        for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    count += 1
        return count


def anthropic_create(chunks: list[bytes]) -> int:
    from anthropic import Anthropic

    with mock_http(chunks) as http:
        client = Anthropic(api_key="x", base_url="http://mock", http_client=http, max_retries=0)
        stream = client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
        count = 0
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                count += 1
        return count


def anthropic_text_stream(chunks: list[bytes]) -> int:
    from anthropic import Anthropic

    with mock_http(chunks) as http:
        client = Anthropic(api_key="x", base_url="http://mock", http_client=http, max_retries=0)
        count = 0
        with client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            for _ in stream.text_stream:
                count += 1
        return count


# --------------------------------------------------------------------------- main


def run(tokens: int, repeat: int) -> str:
    data = {name: chunked(body) for name, body in bodies(tokens).items()}
    oa, an, ob = data["openai"], data["anthropic"], data[OBF]
    # (format, name, function, expected count). Every run's count is
    # checked: the contenders really decode the same tokens.
    ours = tokens  # text tokens; our decoders add Finish + Usage tokens
    contenders: list[tuple[str, str, Callable[[], int], int]] = [
        (
            "openai",
            "rxtokens provider path (sse_decoder: fused parse_sse + decode_openai_chat)",
            lambda: rx_provider_path(oa, decode_openai_chat),
            ours + 2,
        ),
        (
            "openai",
            "rxtokens provider path, template path off",
            no_template(lambda: rx_provider_path(oa, decode_openai_chat)),
            ours + 2,
        ),
        (
            "openai",
            "rxtokens operators pipe(parse_sse(), decode_openai_chat())",
            lambda: rx_pipeline(oa, decode_openai_chat),
            ours + 2,
        ),
        (
            "openai",
            "rxtokens pure core (SseParser + OpenAIChatDecoder)",
            lambda: pure_core(oa, OpenAIChatDecoder),
            ours + 2,
        ),
        (
            "openai",
            "raw baseline (split + json.loads)",
            lambda: raw_baseline(oa),
            tokens + 3,
        ),
        (
            "openai",
            "raw baseline with pydantic_core.from_json (the parser rxtokens uses)",
            lambda: raw_baseline(oa, from_json),
            tokens + 3,
        ),
        (
            "openai",
            "openai SDK chat.completions.create(stream=True)",
            lambda: openai_sdk(oa),
            tokens,
        ),
        (
            OBF,
            "rxtokens provider path (sse_decoder: fused parse_sse + decode_openai_chat)",
            lambda: rx_provider_path(ob, decode_openai_chat),
            ours + 2,
        ),
        (
            OBF,
            "rxtokens provider path, template path off",
            no_template(lambda: rx_provider_path(ob, decode_openai_chat)),
            ours + 2,
        ),
        (
            OBF,
            "raw baseline with pydantic_core.from_json (the parser rxtokens uses)",
            lambda: raw_baseline(ob, from_json),
            tokens + 3,
        ),
        (
            OBF,
            "openai SDK chat.completions.create(stream=True)",
            lambda: openai_sdk(ob),
            tokens,
        ),
        (
            "anthropic",
            "rxtokens provider path (sse_decoder: fused parse_sse + decode_anthropic)",
            lambda: rx_provider_path(an, decode_anthropic),
            ours + 3,
        ),
        (
            "anthropic",
            "rxtokens provider path, template path off",
            no_template(lambda: rx_provider_path(an, decode_anthropic)),
            ours + 3,
        ),
        (
            "anthropic",
            "rxtokens operators pipe(parse_sse(), decode_anthropic())",
            lambda: rx_pipeline(an, decode_anthropic),
            ours + 3,
        ),
        (
            "anthropic",
            "rxtokens pure core (SseParser + AnthropicDecoder)",
            lambda: pure_core(an, AnthropicDecoder),
            ours + 3,
        ),
        (
            "anthropic",
            "raw baseline (split + json.loads)",
            lambda: raw_baseline(an),
            tokens + 6,
        ),
        (
            "anthropic",
            "raw baseline with pydantic_core.from_json (the parser rxtokens uses)",
            lambda: raw_baseline(an, from_json),
            tokens + 6,
        ),
        (
            "anthropic",
            "anthropic SDK messages.create(stream=True)",
            lambda: anthropic_create(an),
            tokens,
        ),
        (
            "anthropic",
            "anthropic SDK messages.stream().text_stream",
            lambda: anthropic_text_stream(an),
            tokens,
        ),
    ]
    # Warm up (imports, client construction caches, first-call costs) on a small stream.
    small = {name: chunked(body) for name, body in bodies(50).items()}
    for warm in (openai_sdk, raw_baseline):
        warm(small["openai"])
    for warm in (anthropic_create, anthropic_text_stream, raw_baseline):
        warm(small["anthropic"])
    rx_provider_path(small["openai"], decode_openai_chat)
    rx_provider_path(small[OBF], decode_openai_chat)
    rx_provider_path(small["anthropic"], decode_anthropic)

    def checked(name: str, fn: Callable[[], int], expected: int) -> Callable[[], None]:
        def run() -> None:
            count = fn()
            assert count == expected, f"{name}: {count} tokens, expected {expected}"

        return run

    # Every contender once per round, the order alternating (see _report.rounds).
    runners = {(fmt, name): checked(name, fn, expected) for fmt, name, fn, expected in contenders}
    keys = list(runners)
    labels = {f"{fmt}: {name}": (fmt, name) for fmt, name in keys}
    times = {
        labels[label]: values
        for label, values in _report_rounds(
            {label: runners[key] for label, key in labels.items()}, repeat
        ).items()
    }
    o = {name: times[("openai", name)] for fmt, name in keys if fmt == "openai"}
    a = {name: times[("anthropic", name)] for fmt, name in keys if fmt == "anthropic"}
    b = {name: times[(OBF, name)] for fmt, name in keys if fmt == OBF}
    ours_o = o["rxtokens provider path (sse_decoder: fused parse_sse + decode_openai_chat)"]
    ours_a = a["rxtokens provider path (sse_decoder: fused parse_sse + decode_anthropic)"]
    same_o = o["raw baseline with pydantic_core.from_json (the parser rxtokens uses)"]
    same_a = a["raw baseline with pydantic_core.from_json (the parser rxtokens uses)"]
    ours_b = b["rxtokens provider path (sse_decoder: fused parse_sse + decode_openai_chat)"]
    same_b = b["raw baseline with pydantic_core.from_json (the parser rxtokens uses)"]
    sdk = "openai SDK chat.completions.create(stream=True)"
    # The goals are judged on the realistic OpenAI bytes (with the obfuscation padding).
    vs_openai = Ratio.of(b[sdk], ours_b)
    vs_anthropic = Ratio.of(a["anthropic SDK messages.create(stream=True)"], ours_a)
    vs_plain = Ratio.of(o[sdk], ours_o)
    raw_o, raw_a = Ratio.of(ours_b, same_b), Ratio.of(ours_a, same_a)
    ratios = [
        ("openai SDK time / rxtokens, OpenAI bytes with obfuscation (goal >= 60x)", vs_openai),
        ("openai SDK time / rxtokens, OpenAI bytes without obfuscation", vs_plain),
        ("anthropic SDK create(stream=True) time / rxtokens (goal >= 12x)", vs_anthropic),
        (
            "anthropic SDK text_stream time / rxtokens",
            Ratio.of(a["anthropic SDK messages.stream().text_stream"], ours_a),
        ),
        (
            "rxtokens time / raw split + from_json (same JSON parser), OpenAI with obfuscation "
            "(goal <= 1.2x)",
            raw_o,
        ),
        (
            "rxtokens time / raw split + from_json (same JSON parser), OpenAI without obfuscation",
            Ratio.of(ours_o, same_o),
        ),
        (
            "rxtokens time / raw split + from_json (same JSON parser), Anthropic (goal <= 1.2x)",
            raw_a,
        ),
        (
            "rxtokens time / raw split + json.loads, OpenAI",
            Ratio.of(ours_o, o["raw baseline (split + json.loads)"]),
        ),
        (
            "rxtokens time / raw split + json.loads, Anthropic",
            Ratio.of(ours_a, a["raw baseline (split + json.loads)"]),
        ),
        (
            "template path off: rxtokens time / raw split + from_json, OpenAI",
            Ratio.of(o["rxtokens provider path, template path off"], same_o),
        ),
        (
            "template path off: rxtokens time / raw split + from_json, OpenAI with obfuscation",
            Ratio.of(b["rxtokens provider path, template path off"], same_b),
        ),
        (
            "template path off: rxtokens time / raw split + from_json, Anthropic",
            Ratio.of(a["rxtokens provider path, template path off"], same_a),
        ),
        (
            "openai SDK time / the public operators pipe(parse_sse(), decode_openai_chat())",
            Ratio.of(
                o["openai SDK chat.completions.create(stream=True)"],
                o["rxtokens operators pipe(parse_sse(), decode_openai_chat())"],
            ),
        ),
        (
            "anthropic SDK create time / the public operators pipe(parse_sse(), "
            "decode_anthropic())",
            Ratio.of(
                a["anthropic SDK messages.create(stream=True)"],
                a["rxtokens operators pipe(parse_sse(), decode_anthropic())"],
            ),
        ),
    ]
    lines = [
        f"bytes -> StreamToken, {tokens:,} text tokens per stream, {CHUNK} B chunks; every "
        f"contender once per round, {repeat} rounds, the order alternating; the figure is the "
        "median of the per-round ratios (min-max, and the best-of ratio beside it); CPU time "
        "of this process (time.process_time: the machine is shared).",
        "",
        "| ratio | value |",
        "|---|---|",
        *(f"| {name} | {value.text(2 if value.median < 10 else 1)} |" for name, value in ratios),
        "",
        "| format | contender | median µs / token | best µs / token |",
        "|---|---|---|---|",
    ]
    for (fmt, name), values in times.items():
        lines.append(
            f"| {fmt} | {name} | {statistics.median(values) / tokens * 1e6:.2f} | "
            f"{min(values) / tokens * 1e6:.2f} |"
        )
    both = f"OpenAI (with obfuscation) {raw_o.text()}; Anthropic {raw_a.text()}"
    lines += [
        "",
        goal(
            "openai_sdk",
            f"with OpenAI's obfuscation padding (the wire today) {vs_openai.text(1)}; "
            f"the same stream without it {vs_plain.text(1)}",
            vs_openai.median >= 60,
        ),
        goal("anthropic_sdk", vs_anthropic.text(1), vs_anthropic.median >= 12),
        goal("raw_split", both, raw_o.median <= 1.2 and raw_a.median <= 1.2),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="3,000 tokens, 2 rounds (a smoke test)"
    )
    args = parser.parse_args()
    # The SDKs warn about model ids nearing end of life; irrelevant to a mock transport.
    warnings.simplefilter("ignore", DeprecationWarning)
    markdown = run(tokens=3_000, repeat=2) if args.quick else run(tokens=30_000, repeat=ROUNDS)
    print(markdown)
    write_section("decode", markdown)


if __name__ == "__main__":
    main()
