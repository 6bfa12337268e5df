"""Per-token cost of the token / filter / accumulator operators, and of a typical chain.

Input: a 100,000-token answer (20,000 with ``--quick``) whose deltas are real
cl100k_base tokens of English prose with numbers, newlines, some non-ASCII
text and an API key (``sk-`` + 20 characters) every ~400 tokens, rendered as
OpenAI Chat Completions SSE bytes by `rxtokens.testing.wire` and cut into
4 KB network chunks.

Measured in the same run:

- baseline "decode alone": ``parse_sse() -> decode_openai_chat()`` on the bytes;
- the typical chain: ``parse_sse -> decode_openai_chat -> count_tokens ->
  redact -> chunk_by("word") -> metrics -> aggregate`` on the same bytes; goal
  (issue 17): at least 0.7x the throughput of decode alone, as the median of the
  per-round ratios (order alternating, CPU time of the process);
- each operator alone on the decoded token list (``from_iterable(tokens)``),
  minus the bare ``from_iterable -> sink`` path: its own cost per token;
- `redact` latency: how long text is held back, in tokens (deltas).

Run: ``.venv/bin/python benchmarks/operators.py [--quick]``; writes the
"operators" section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import reactivex
from reactivex.subject import Subject

from benchmarks._report import ROUNDS, Ratio, goal, rounds, write_section
from rxtokens.operators import (
    StreamMetrics,
    aggregate,
    chunk_by,
    count_tokens,
    decode_openai_chat,
    decode_token_ids,
    filter_tokens,
    load_encoding,
    metrics,
    parse_sse,
    redact,
    stop_when,
)
from rxtokens.testing import Script, openai_chat_events
from rxtokens.tokens import TextDelta

CHUNK = 4096
KEY = r"sk-[A-Za-z0-9]{20}"
KEY_REPLACEMENT = "[REDACTED-API-KEY-XXXX]"  # as long as a key: positions map 1:1
assert len(KEY_REPLACEMENT) == len("sk-") + 20
WORDS = [
    "the",
    "model",
    "streams",
    "tokens",
    "to",
    "every",
    "subscriber",
    "while",
    "the",
    "aggregator",
    "builds",
    "the",
    "final",
    "answer",
    "and",
    "nothing",
    "is",
    "lost",
    "when",
    "the",
    "network",
    "fails",
    "halfway",
    "through",
    "a",
    "long",
    "response",
    "naïve",
    "café",
    "Grüße",
    "日本語",
    "2026",
    "3.14",
    "1,000,000",
]


def answer_text(tokens: int, seed: int = 1) -> str:
    """Prose of about `tokens` cl100k tokens, with an API key every ~400 tokens."""
    rng = random.Random(seed)
    parts: list[str] = []
    count = 0
    while count < tokens * 1.02:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18)))
        parts.append(sentence.capitalize() + rng.choice([". ", ". ", "! ", "? ", ".\n\n"]))
        count += 16
        if rng.random() < 0.04:
            key = "".join(rng.choice("ABCDEFGHabcdefgh0123456789") for _ in range(20))
            parts.append(f"Use the key sk-{key} for that. ")
            count += 16
    return "".join(parts)


def token_deltas(text: str, tokens: int) -> list[str]:
    """`text` cut at its cl100k token boundaries (whole characters), `tokens` deltas."""
    enc = load_encoding("cl100k_base")
    out: list[str] = []
    pending = b""
    for token_id in enc.encode_ordinary(text):
        pending += enc.decode_single_token_bytes(token_id)
        try:
            piece = pending.decode()
        except UnicodeDecodeError:
            continue
        pending = b""
        out.append(piece)
        if len(out) == tokens:
            break
    return out


def sse_chunks(deltas: list[str]) -> list[bytes]:
    body = b"".join(openai_chat_events(Script(text=deltas, usage=(10, len(deltas)))))
    return [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]


def drain(source: reactivex.Observable[Any]) -> int:
    count = 0

    def on_next(_: object) -> None:
        nonlocal count
        count += 1

    def on_error(error: Exception) -> None:
        raise error

    source.subscribe(on_next, on_error)
    return count


def redact_latency(deltas: list[str]) -> tuple[float, int, float]:
    """(mean delay in deltas per character, max delay, share of characters delayed)."""
    subject: Subject[Any] = Subject()
    released: list[int] = []  # cumulative output length after each input delta
    total = 0

    def on_next(token: Any) -> None:
        nonlocal total
        total += len(token.text)

    subject.pipe(redact(KEY, KEY_REPLACEMENT)).subscribe(on_next)
    for delta in deltas:
        subject.on_next(TextDelta(delta))
        released.append(total)
    subject.on_completed()
    released[-1] = total
    delays: list[int] = []
    step = 0
    for arrived, delta in enumerate(deltas):
        for _ in delta:
            position = len(delays)
            step = max(step, arrived)
            while released[step] <= position:
                step += 1
            delays.append(step - arrived)
    held = sum(1 for d in delays if d)
    return sum(delays) / len(delays), max(delays), held / len(delays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run (smoke test)")
    args = parser.parse_args()
    n = 20_000 if args.quick else 100_000
    repeat = 2 if args.quick else ROUNDS

    text = answer_text(n)
    deltas = token_deltas(text, n)
    chunks = sse_chunks(deltas)
    tokens = list(
        reactivex.from_iterable(chunks).pipe(parse_sse(), decode_openai_chat()).to_list().run()
    )
    joined = "".join(deltas)
    assert re.search(KEY, joined), "the text should contain keys"
    enc = load_encoding("cl100k_base")
    ids = enc.encode_ordinary(joined)[:n]
    n_tokens = len(deltas)

    def decode_alone() -> int:
        return drain(reactivex.from_iterable(chunks).pipe(parse_sse(), decode_openai_chat()))

    def chain() -> int:
        return drain(
            reactivex.from_iterable(chunks).pipe(
                parse_sse(),
                decode_openai_chat(),
                count_tokens("cl100k_base"),
                redact(KEY, KEY_REPLACEMENT),
                chunk_by("word"),
                metrics(StreamMetrics()),
                aggregate(),
            )
        )

    out = list(
        reactivex.from_iterable(chunks)
        .pipe(
            parse_sse(),
            decode_openai_chat(),
            count_tokens(),
            redact(KEY, KEY_REPLACEMENT),
            chunk_by(),
        )
        .to_list()
        .run()
    )
    chained_text = "".join(t.text for t in out if type(t) is TextDelta)
    assert chained_text == re.sub(KEY, KEY_REPLACEMENT, joined), "the chain changed the text"

    times = rounds({"decode": decode_alone, "chain": chain}, max(repeat, ROUNDS))
    throughput = Ratio.of(times["decode"], times["chain"])  # chain throughput / decode's
    t_decode, t_chain = min(times["decode"]), min(times["chain"])

    cases: list[tuple[str, Callable[[], Any], list[Any]]] = [
        ("count_tokens()", lambda: count_tokens(), tokens),
        (
            "count_tokens(on_count=...) (running count each delta)",
            lambda: count_tokens(on_count=lambda c: None),
            tokens,
        ),
        (f"redact({KEY!r})", lambda: redact(KEY, KEY_REPLACEMENT), tokens),
        (
            r"redact(r'\b\d{3}-\d{2}-\d{4}\b') (word boundaries)",
            lambda: redact(r"\b\d{3}-\d{2}-\d{4}\b"),
            tokens,
        ),
        (
            r"redact(r'\d+', max_match=32) (unbounded, windowed)",
            lambda: redact(r"\d+", "#", max_match=32),
            tokens,
        ),
        ("stop_when('NEVER-MATCHES') (no match)", lambda: stop_when("NEVER-MATCHES"), tokens),
        ("stop_when(predicate)", lambda: stop_when(lambda t: False), tokens),
        ("metrics() (helper G's, for the chain)", lambda: metrics(StreamMetrics()), tokens),
        ("filter_tokens(predicate)", lambda: filter_tokens(lambda t: True), tokens),
        ('chunk_by("word")', lambda: chunk_by("word"), tokens),
        ('chunk_by("sentence")', lambda: chunk_by("sentence"), tokens),
        ("chunk_by(16)", lambda: chunk_by(16), tokens),
    ]
    # Every case once per round beside the bare path (order alternating); a case's own cost
    # is the median over the rounds of (its time - the bare path's) per token.
    runners: dict[str, Callable[[], object]] = {
        "bare": lambda: drain(reactivex.from_iterable(tokens)),
        "bare ids": lambda: drain(reactivex.from_iterable(ids)),
        "decode_token_ids() (ids -> TextDelta)": lambda: drain(
            reactivex.from_iterable(ids).pipe(decode_token_ids(enc))
        ),
    }
    for name, make, items in cases:
        runners[name] = lambda make=make, items=items: drain(
            reactivex.from_iterable(items).pipe(make())
        )
    per_case = rounds(runners, repeat)

    def own_cost(name: str, base: str, count: int) -> float:
        pairs = zip(per_case[name], per_case[base], strict=True)
        return statistics.median((t - b) / count * 1e6 for t, b in pairs)

    rows = [(name, own_cost(name, "bare", len(items))) for name, _, items in cases]
    rows.append(
        (
            "decode_token_ids() (ids -> TextDelta)",
            own_cost("decode_token_ids() (ids -> TextDelta)", "bare ids", len(ids)),
        )
    )
    t_base = statistics.median(per_case["bare"])

    mean_delay, max_delay, share = redact_latency(deltas)
    per_decode = t_decode / n_tokens * 1e6
    per_chain = t_chain / n_tokens * 1e6
    lines = [
        f"Stream: {n_tokens:,} tokens of prose (cl100k token boundaries) with an API key every "
        f"~400 tokens, as OpenAI chat SSE bytes in {CHUNK // 1024} KB chunks; CPU time of the "
        "process (the machine is shared). Chain vs decode: median of the per-round ratios "
        f"(order alternating, {max(repeat, ROUNDS)} rounds); operators alone: median over "
        f"{repeat} rounds of their time minus the bare path's.",
        "",
        "| pipeline | throughput vs decode alone | best µs/token | best tokens/s |",
        "|---|---|---|---|",
        f"| parse_sse -> decode_openai_chat (baseline) | 1.00x | {per_decode:.2f} | {n_tokens / t_decode:,.0f} |",
        "| ... -> count_tokens -> redact -> chunk_by('word') -> metrics -> aggregate | "
        f"{throughput.text()} (goal >= 0.7x) | {per_chain:.2f} | {n_tokens / t_chain:,.0f} |",
        "",
        "Each operator alone, on the decoded tokens (its own cost: minus the bare "
        f"`from_iterable -> sink` path, {t_base / len(tokens) * 1e6:.2f} µs/token):",
        "",
        "| operator | µs/token | share of decode's per-token time |",
        "|---|---|---|",
    ]
    for name, cost in rows:
        lines.append(f"| {name} | {cost:.2f} | {cost / per_decode:.0%} |")
    lines += [
        "",
        f"`redact({KEY!r})` latency: text is held back {mean_delay:.3f} deltas on average "
        f"(max {max_delay}); {share:.2%} of characters wait at all (those of an `s`/`sk-...` "
        "candidate until it is decided).",
    ]
    lines += ["", goal("chain", throughput.text(), throughput.median >= 0.7)]
    markdown = "\n".join(lines)
    print(markdown)
    write_section("operators", markdown)


if __name__ == "__main__":
    main()
