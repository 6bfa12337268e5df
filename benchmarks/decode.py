"""Decode benchmark: microseconds per token, bytes -> StreamToken.

The same bytes (a stream rendered by `rxtokens.testing.wire`, cut into ~4 KB
chunks) go through:

- rxtokens' provider path: ``sse_decoder(parse_sse(), decode_x())``, what
  ``HttpProvider.stream`` pipes the body through (the fused SSE -> decoder
  processor), also with the decoders' template path switched off; the public
  operators ``pipe(parse_sse(), decode_x())``; and the pure core
  (``SseParser.feed`` + ``Decoder.feed``, no Rx);
- the official SDKs' own client iteration, through their HTTP client
  (``httpx2``) with a ``MockTransport`` that serves the same chunks:
  ``OpenAI().chat.completions.create(stream=True)``,
  ``Anthropic().messages.create(stream=True)`` and
  ``Anthropic().messages.stream(...).text_stream``;
- raw baselines: split on blank lines + ``json.loads`` (or pydantic-core's
  ``from_json``, the parser rxtokens uses) of each ``data:`` line (no token
  objects at all).

Every contender runs once per round, the order reversed every other round;
ratios are medians of the per-round ratios with their min-max.
Goals (issue 17): >= 60x the openai SDK, >= 12x the anthropic SDK's
``create(stream=True)``, <= 1.2x the raw split + ``from_json``.

Run: ``.venv/bin/python benchmarks/decode.py [--quick] [--tokens N]
[--rounds N] [--print]``; writes the "decode" section of
``benchmarks/RESULTS.md`` unless ``--quick`` / ``--print``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx2
import reactivex
from _report import write_section
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
WORDS = ["Hello", " world", ",", " the", " quick", " brown", " fox", " jumps", " ü", " 日本"]


def chunked(body: bytes, size: int = CHUNK) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def bodies(tokens: int) -> dict[str, bytes]:
    script = Script(text=[WORDS[i % len(WORDS)] for i in range(tokens)], usage=(10, tokens))
    return {
        "openai": b"".join(openai_chat_events(script, include_usage=True)),
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


def rx_fused(chunks: list[bytes], decoder: Callable[[], Any]) -> int:
    """The providers' path: ``HttpProvider.stream`` pipes the body through ``sse_decoder``."""
    count = 0

    def on_next(_: object) -> None:
        nonlocal count
        count += 1

    reactivex.from_iterable(chunks).pipe(sse_decoder(parse_sse(), decoder())).subscribe(on_next)
    return count


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


def _median_spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def run(tokens: int, rounds: int) -> str:
    data = {name: chunked(body) for name, body in bodies(tokens).items()}
    oa, an = data["openai"], data["anthropic"]
    # (key, name, function, expected count). Every run's count is checked: the contenders
    # really decode the same tokens.
    ours = tokens  # text tokens; our decoders add Finish + Usage tokens
    contenders: list[tuple[str, str, Callable[[], int], int]] = [
        ("o_fused", "rxtokens provider path (fused SSE -> decode_openai_chat)",
         lambda: rx_fused(oa, decode_openai_chat), ours + 2),
        ("o_notpl", "rxtokens provider path, template path off",
         no_template(lambda: rx_fused(oa, decode_openai_chat)), ours + 2),
        ("o_rx", "rxtokens operators parse_sse() + decode_openai_chat()",
         lambda: rx_pipeline(oa, decode_openai_chat), ours + 2),
        ("o_core", "rxtokens pure core (SseParser + OpenAIChatDecoder)",
         lambda: pure_core(oa, OpenAIChatDecoder), ours + 2),
        ("o_raw", "raw baseline (split + json.loads)", lambda: raw_baseline(oa), tokens + 3),
        ("o_rawfj", "raw baseline with pydantic_core.from_json (the parser rxtokens uses)",
         lambda: raw_baseline(oa, from_json), tokens + 3),
        ("o_sdk", "openai SDK chat.completions.create(stream=True)",
         lambda: openai_sdk(oa), tokens),
        ("a_fused", "rxtokens provider path (fused SSE -> decode_anthropic)",
         lambda: rx_fused(an, decode_anthropic), ours + 3),
        ("a_notpl", "rxtokens provider path, template path off",
         no_template(lambda: rx_fused(an, decode_anthropic)), ours + 3),
        ("a_rx", "rxtokens operators parse_sse() + decode_anthropic()",
         lambda: rx_pipeline(an, decode_anthropic), ours + 3),
        ("a_core", "rxtokens pure core (SseParser + AnthropicDecoder)",
         lambda: pure_core(an, AnthropicDecoder), ours + 3),
        ("a_raw", "raw baseline (split + json.loads)", lambda: raw_baseline(an), tokens + 6),
        ("a_rawfj", "raw baseline with pydantic_core.from_json (the parser rxtokens uses)",
         lambda: raw_baseline(an, from_json), tokens + 6),
        ("a_sdk", "anthropic SDK messages.create(stream=True)",
         lambda: anthropic_create(an), tokens),
        ("a_text", "anthropic SDK messages.stream().text_stream",
         lambda: anthropic_text_stream(an), tokens),
    ]  # fmt: skip
    # Warm up (imports, client construction caches, first-call costs) on a small stream.
    small = {name: chunked(body) for name, body in bodies(50).items()}
    for warm in (openai_sdk, raw_baseline):
        warm(small["openai"])
    for warm in (anthropic_create, anthropic_text_stream, raw_baseline):
        warm(small["anthropic"])
    rx_fused(small["openai"], decode_openai_chat)
    rx_pipeline(small["anthropic"], decode_anthropic)
    times: dict[str, list[float]] = {key: [] for key, *_ in contenders}
    names = {key: name for key, name, *_ in contenders}
    # Every contender once per round, the order reversed every other round, so a load change
    # on this shared machine hits every contender alike; ratios are taken within a round.
    for round_ in range(rounds):
        for key, name, fn, expected in contenders[:: -1 if round_ % 2 else 1]:
            start = time.process_time()
            count = fn()
            elapsed = time.process_time() - start
            assert count == expected, f"{name}: {count} tokens, expected {expected}"
            times[key].append(elapsed / tokens * 1e6)

    def ratio(top: str, bottom: str) -> str:
        return _median_spread([a / b for a, b in zip(times[top], times[bottom], strict=True)])

    ratios = [
        ("openai SDK / rxtokens provider path (goal >= 60x)", ratio("o_sdk", "o_fused")),
        ("anthropic SDK create(stream=True) / rxtokens provider path (goal >= 12x)",
         ratio("a_sdk", "a_fused")),
        ("anthropic SDK text_stream / rxtokens provider path", ratio("a_text", "a_fused")),
        ("rxtokens provider path / raw split + from_json, OpenAI (goal <= 1.2x)",
         ratio("o_fused", "o_rawfj")),
        ("rxtokens provider path / raw split + from_json, Anthropic (goal <= 1.2x)",
         ratio("a_fused", "a_rawfj")),
        ("rxtokens provider path / raw split + json.loads, OpenAI", ratio("o_fused", "o_raw")),
        ("rxtokens provider path / raw split + json.loads, Anthropic",
         ratio("a_fused", "a_raw")),
        ("provider path, template off / raw split + from_json, OpenAI",
         ratio("o_notpl", "o_rawfj")),
        ("provider path, template off / raw split + from_json, Anthropic",
         ratio("a_notpl", "a_rawfj")),
        ("openai SDK / parse_sse() + decode_openai_chat() operators", ratio("o_sdk", "o_rx")),
        ("anthropic SDK create / parse_sse() + decode_anthropic() operators",
         ratio("a_sdk", "a_rx")),
    ]  # fmt: skip
    lines = [
        f"bytes -> StreamToken, {tokens:,} text tokens per stream, {CHUNK} B chunks, "
        f"CPU time of this process (time.process_time: the machine is shared); {rounds} rounds, "
        "every contender once per round, order reversed every other round; ratios are the "
        "median of the per-round ratios (min-max in brackets).",
        "",
        "| ratio | median (min-max) |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in ratios),
        "",
        "| format | contender | µs / token, median (best) |",
        "|---|---|---|",
    ]
    for key, values in times.items():
        fmt = "openai" if key.startswith("o_") else "anthropic"
        lines.append(
            f"| {fmt} | {names[key]} | {statistics.median(values):.2f} ({min(values):.2f}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 tokens, 5 rounds, printed")
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--print", action="store_true", help="print only (no RESULTS.md)")
    args = parser.parse_args()
    # The SDKs warn about model ids nearing end of life; irrelevant to a mock transport.
    warnings.simplefilter("ignore", DeprecationWarning)
    if args.quick:  # a smoke test: printed, not written to RESULTS.md
        print(run(tokens=10_000, rounds=5))
        return
    markdown = run(tokens=args.tokens, rounds=args.rounds)
    print(markdown)
    if not args.print:
        write_section("decode", markdown)


if __name__ == "__main__":
    main()
