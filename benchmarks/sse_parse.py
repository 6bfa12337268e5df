"""SSE parsing throughput: rxtokens' SseParser vs the openai SDK's decoder vs a raw split.

All three run in the same process on the same chunked bytes:

- ``rxtokens``: ``SseParser().feed(chunk)`` for every chunk, then ``close()``.
- ``openai SDK``: ``openai._streaming.SSEDecoder().iter_bytes(iter(chunks))``, the exact path
  ``openai.Stream`` takes over ``response.iter_bytes()`` (it yields ``ServerSentEvent`` objects).
- ``raw split``: the least a parser can do: append the chunk to a buffer,
  ``bytes.split(b"\\n\\n")``, keep the incomplete tail and ``decode()`` each complete block.
  It neither strips ``data: `` nor handles CR, comments, fields or invalid UTF-8.

Inputs, all cut into 4 KB network-sized chunks: a 100,000-token OpenAI chat completion
stream (one small ``data: {...}`` event per token; English text, about 2% non-ASCII tokens),
a stream of 64 KB events (the two with targets), and for contrast the same chat stream with
25% non-ASCII tokens and an Anthropic-shaped stream (``event:`` + ``data:`` lines).
Also: the same chat stream delivered one event per network chunk (token-paced streams).
Times are CPU time (``time.process_time``); every figure is the median of per-round
ratios, the order of the three alternating from round to round.

Run: ``.venv/bin/python benchmarks/sse_parse.py [--quick]``; the full run writes section
"sse_parse" of benchmarks/RESULTS.md (``--quick``, a smoke test, only prints).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import openai
from _report import ROUNDS, Ratio, goal, rounds, write_section
from openai._streaming import SSEDecoder

from rxtokens.sse import SseParser

CHUNK = 4096
# English model output: mostly ASCII tokens, with the non-ASCII ones such text really has
# (curly quotes, dashes, accents, an emoji) at about 2% of tokens.
ASCII_WORDS = (
    " the", " a", " stream", " of", " tokens", " is", " parsed", " quickly", ",", ".",
    " reactive", " model", " data", " event", " and", " to", " in", " that", " it", "\n",
    " with", " for", " as", " on", " be", " this", " are", " by", " not", " you",
)  # fmt: skip
NON_ASCII_WORDS = ("’", " —", " café", " naïve", " 🙂", " “", "”", " über", " 東京", " é")
ENGLISH = (ASCII_WORDS * 16, NON_ASCII_WORDS)  # 480 : 10 draws
NON_ASCII_HEAVY = (ASCII_WORDS, NON_ASCII_WORDS)  # 30 : 10 draws, for contrast


def openai_chat_stream(
    tokens: int, vocab: tuple[tuple[str, ...], ...] = ENGLISH, seed: int = 1
) -> bytes:
    """A realistic OpenAI chat.completions stream of `tokens` content deltas (byte-exact shape)."""
    rng = random.Random(seed)
    cid = "chatcmpl-" + "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789") for _ in range(29)
    )
    head = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": 1732190000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
    }

    def event(delta: dict[str, object], finish: str | None = None) -> bytes:
        body = {
            **head,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return (
            b"data: "
            + json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            + b"\n\n"
        )

    words = [w for group in vocab for w in group]
    parts = [event({"role": "assistant", "content": "", "refusal": None})]
    parts += [event({"content": rng.choice(words)}) for _ in range(tokens)]
    parts.append(event({}, "stop"))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def big_event_stream(events: int, size: int = 65536, seed: int = 2) -> bytes:
    """`events` events whose data line is `size` bytes of JSON-ish text."""
    rng = random.Random(seed)
    alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789 ,:{}"[]'
    parts = []
    for _ in range(events):
        payload = "".join(rng.choices(alphabet, k=size)).encode()
        parts.append(b"data: " + payload + b"\n\n")
    return b"".join(parts)


def anthropic_stream(tokens: int, seed: int = 3) -> bytes:
    """An Anthropic Messages stream: every block has an ``event:`` line and a ``data:`` line."""
    rng = random.Random(seed)
    words = [w for group in ENGLISH for w in group]

    def event(kind: str, body: dict[str, object]) -> bytes:
        payload = json.dumps({"type": kind, **body}, ensure_ascii=False, separators=(",", ":"))
        return f"event: {kind}\ndata: {payload}\n\n".encode()

    parts = [
        event("message_start", {"message": {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "role": "assistant",
              "model": "claude-sonnet-4-5", "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        event("ping", {}),
    ]  # fmt: skip
    delta = {"index": 0, "delta": {"type": "text_delta", "text": ""}}
    for _ in range(tokens):
        delta["delta"] = {"type": "text_delta", "text": rng.choice(words)}
        parts.append(event("content_block_delta", delta))
    parts.append(event("content_block_stop", {"index": 0}))
    parts.append(
        event(
            "message_delta",
            {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": tokens}},
        )
    )
    parts.append(event("message_stop", {}))
    return b"".join(parts)


def chunked(data: bytes, size: int = CHUNK) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# Each runner consumes the events the way a streaming consumer does (handles each batch, keeps
# none), and returns how many there were. `collect_*` keep them, to check all three agree.


def run_rxtokens(chunks: list[bytes]) -> int:
    parser = SseParser()
    feed = parser.feed
    n = 0
    for chunk in chunks:
        n += len(feed(chunk))
    return n + len(parser.close())


def run_sdk(chunks: list[bytes]) -> int:
    n = 0
    for _ in SSEDecoder().iter_bytes(iter(chunks)):
        n += 1
    return n


def run_raw(chunks: list[bytes]) -> int:
    n = 0
    buf = b""
    for chunk in chunks:
        buf += chunk
        blocks = buf.split(b"\n\n")
        buf = blocks.pop()
        n += len([block.decode() for block in blocks])
    return n


def collect(chunks: list[bytes]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(event type, data) of every event, from rxtokens and from the SDK."""
    parser = SseParser()
    ours = [(e.event, e.data) for chunk in chunks for e in parser.feed(chunk)]
    ours += [(e.event, e.data) for e in parser.close()]
    sdk = [(e.event or "message", e.data) for e in SSEDecoder().iter_bytes(iter(chunks))]
    return ours, sdk


RUNNERS: dict[str, Callable[[list[bytes]], int]] = {
    "rxtokens SseParser": run_rxtokens,
    "openai SDK SSEDecoder": run_sdk,
    "raw split + decode": run_raw,
}


def per_event(data: bytes) -> list[bytes]:
    """One network chunk per event (a token-paced stream: each event arrives alone)."""
    return [block + b"\n\n" for block in data.split(b"\n\n") if block]


def measure(chunks: list[bytes], count: int) -> tuple[dict[str, list[float]], int]:
    """CPU times of each implementation in `count` rounds (order alternating), event count."""
    ours, sdk = collect(chunks)
    # Same bytes, same answer: the benchmark compares equal work.
    assert ours == sdk, "rxtokens and the openai SDK disagree"
    counts = {label: fn(chunks) for label, fn in RUNNERS.items()}
    assert set(counts.values()) == {len(ours)}, counts
    # CPU time (process_time), not wall time: this machine's cores are shared with other
    # jobs, and descheduled time is not the parser's.
    runners = {label: partial(fn, chunks) for label, fn in RUNNERS.items()}
    return rounds(runners, count), len(ours)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller inputs (smoke test)")
    args = ap.parse_args()
    tokens, big, count = (5_000, 16, 2) if args.quick else (50_000, 160, ROUNDS)

    chat = openai_chat_stream(tokens)
    # (label, chunks, goal key, goal vs the SDK, target time vs raw split)
    inputs: list[tuple[str, list[bytes], str | None, float | None, float | None]] = [
        (f"OpenAI chat stream, {tokens:,} tokens", chunked(chat), "sse_small", 10.0, 1.5),
        (
            f"OpenAI chat stream, {tokens:,} tokens, one event per network chunk",
            per_event(chat),
            "sse_one_event",
            5.0,
            None,
        ),
        (f"{big} events of 64 KB", chunked(big_event_stream(big)), None, 3.0, None),
        (
            f"OpenAI chat stream, {tokens:,} tokens, 25% non-ASCII",
            chunked(openai_chat_stream(tokens, NON_ASCII_HEAVY)),
            None,
            None,
            None,
        ),
        (
            f"Anthropic stream (event + data lines), {tokens:,} tokens",
            chunked(anthropic_stream(tokens)),
            None,
            None,
            None,
        ),
    ]
    ratio_rows = []
    abs_rows = []
    goals = []
    for label, chunks, key, sdk_target, raw_target in inputs:
        times, n = measure(chunks, count)
        mb = sum(map(len, chunks)) / 1e6
        ours_t = times["rxtokens SseParser"]
        vs_sdk = Ratio.of(times["openai SDK SSEDecoder"], ours_t)
        vs_raw = Ratio.of(ours_t, times["raw split + decode"])

        def verdict(value: float, target: float | None, higher: bool) -> str:
            if target is None:
                return "(no target)"
            ok = value >= target if higher else value <= target
            return f"({'>=' if higher else '<='} {target:g}x: {'met' if ok else 'MISSED'})"

        raw_vs_sdk = Ratio.of(times["openai SDK SSEDecoder"], times["raw split + decode"])
        ratio_rows.append(
            f"| {label} | {vs_sdk.text(1)} {verdict(vs_sdk.median, sdk_target, True)} "
            f"| {vs_raw.text(2, bold=False)} {verdict(vs_raw.median, raw_target, False)} "
            f"| {raw_vs_sdk.median:.1f}x |"
        )
        if key is not None and sdk_target is not None:
            goals.append(goal(key, vs_sdk.text(1), vs_sdk.median >= sdk_target))
        print(f"{label}: {mb:.1f} MB, {n:,} events, {len(chunks):,} chunks")
        for impl, values in times.items():
            t = statistics.median(values)
            abs_rows.append(f"| {label} | {impl} | {mb / t:,.0f} | {n / t:,.0f} | {t * 1e3:,.1f} |")
            print(f"  {impl:24s} {mb / t:8.0f} MB/s {n / t:12,.0f} events/s")
        print(f"  rxtokens: {vs_sdk.text(1, bold=False)} the SDK's throughput")

    md = "\n".join(
        [
            "## SSE parsing (`benchmarks/sse_parse.py" + (" --quick" if args.quick else "") + "`)",
            "",
            f"Same bytes for all three, cut into {CHUNK} B chunks (or one event per chunk); "
            f"CPU time, {count} rounds with the order alternating; each figure is the median "
            "of the per-round ratios (min-max over the rounds; best-of beside it). Goals "
            "(issue 17): small events >= 10x the openai SDK's throughput, one event per chunk "
            ">= 5x; 64 KB events >= 3x the SDK.",
            "",
            "| input | rxtokens vs openai SDK (throughput) | rxtokens time / raw split time "
            "| for scale: raw split vs SDK |",
            "|---|---|---|---|",
            *ratio_rows,
            "",
            "| input | implementation | MB/s (median round) | events/s | CPU ms |",
            "|---|---|---|---|---|",
            *abs_rows,
            "",
            "openai SDK: `SSEDecoder().iter_bytes(iter(chunks))`, the path `openai.Stream` takes "
            f'(openai {openai.__version__}). Raw split: `buf += chunk; blocks = buf.split(b"\\n\\n")`, '
            "`decode()` each block: no field parsing, no CR handling, no `data: ` stripping, no "
            "event objects. The chat streams are English text with about 2% non-ASCII tokens "
            "(quotes, dashes, accents, emoji); the 25% variant shows the cost of wide strings.",
            "",
            "Why small events stay under 10x the SDK here: the raw split, which builds no event "
            "objects at all, is itself only about 10-11x the SDK on this machine, and building one "
            "`SseEvent` (a NamedTuple, via `tuple.__new__`) costs about 150-200 ns, roughly a third "
            "of rxtokens' time per event. 10x the SDK would need the parser within about 1.05x "
            "of the raw split.",
            "",
            *goals,
        ]
    )
    write_section("sse_parse", md)


if __name__ == "__main__":
    main()
