"""Per-token cost of the token / filter / accumulator operators, and of a typical chain.

Input: a 100,000-token answer (20,000 with ``--quick``) whose deltas are real
cl100k_base tokens of English prose with numbers, newlines, some non-ASCII
text and an API key (``sk-`` + 20 characters) every ~400 tokens, rendered as
OpenAI Chat Completions SSE bytes by `rxtokens.testing.wire` and cut into
4 KB network chunks.

Measured in the same run:

- baseline "decode alone": ``parse_sse() -> decode_openai_chat()`` on the bytes;
- the typical chain: ``parse_sse -> decode_openai_chat -> count_tokens ->
  redact -> chunk_by("word") -> metrics`` on the same bytes; target: at least
  half the throughput of decode alone;
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
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import reactivex
from reactivex.subject import Subject

from benchmarks import _report
from benchmarks._report import write_section
from rxtokens.operators import (
    StreamMetrics,
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


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """The least CPU time (this process) of `repeat` runs of `fn`, in seconds.

    CPU time rather than wall time: the machine is shared with other workers,
    whose load would otherwise dominate the differences measured here.
    """
    return _report.best_of(fn, repeat, clock=time.process_time)


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
    repeat = 2 if args.quick else 5

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

    # Interleaved, so that both see the same machine load; the best run of each counts.
    t_decode = t_chain = float("inf")
    for _ in range(repeat):
        t_decode = min(t_decode, best_of(decode_alone, 1))
        t_chain = min(t_chain, best_of(chain, 1))

    def base() -> int:
        return drain(reactivex.from_iterable(tokens))

    t_base = best_of(base, repeat)
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
    rows = []
    for name, make, items in cases:
        t = best_of(
            lambda make=make, items=items: drain(reactivex.from_iterable(items).pipe(make())),
            repeat,
        )
        rows.append((name, (t - t_base) / len(items) * 1e6))
    t_ids = best_of(lambda: drain(reactivex.from_iterable(ids).pipe(decode_token_ids(enc))), repeat)
    t_ids_base = best_of(lambda: drain(reactivex.from_iterable(ids)), repeat)
    rows.append(("decode_token_ids() (ids -> TextDelta)", (t_ids - t_ids_base) / len(ids) * 1e6))

    mean_delay, max_delay, share = redact_latency(deltas)
    ratio = t_decode / t_chain
    per_decode = t_decode / n_tokens * 1e6
    per_chain = t_chain / n_tokens * 1e6
    lines = [
        f"Stream: {n_tokens:,} tokens of prose (cl100k token boundaries) with an API key every "
        f"~400 tokens, as OpenAI chat SSE bytes in {CHUNK // 1024} KB chunks; best of {repeat} "
        "(CPU time of the process: the machine is shared).",
        "",
        "| pipeline | throughput vs decode alone | µs/token | tokens/s |",
        "|---|---|---|---|",
        f"| parse_sse -> decode_openai_chat (baseline) | 1.00x | {per_decode:.2f} | {n_tokens / t_decode:,.0f} |",
        f"| ... -> count_tokens -> redact -> chunk_by('word') -> metrics | **{ratio:.2f}x** "
        f"(target >= 0.50x) | {per_chain:.2f} | {n_tokens / t_chain:,.0f} |",
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
    markdown = "\n".join(lines)
    print(markdown)
    write_section("operators", markdown)


if __name__ == "__main__":
    main()
