"""Bedrock bytes -> tokens: rxtokens vs boto3's own ``converse_stream`` iteration, same bytes.

The same ``ConverseStream`` body (a long answer rendered by `rxtokens.testing.wire_bedrock`,
one ``contentBlockDelta`` message per token, cut into 4 KB chunks) goes through:

- rxtokens: ``reactivex.from_iterable(chunks).pipe(parse_aws_eventstream(), decode_bedrock())``
  (the operator pipeline, tokens out), and the pure core (``EventStreamParser.feed`` +
  ``BedrockDecoder.feed``, no Rx) for reference;
- boto3: ``client.converse_stream(...)`` then iterating ``response["stream"]`` (event dicts
  out, not yet text), the whole client path: a ``before-send`` hook answers the request
  with the same chunks instead of the network, so request building, signing, botocore's
  ``EventStreamBuffer`` and its response parser all run as they do in production.

Both must produce the same text before anything is timed. Figure: median of per-round
ratios (CPU time, order alternating), with min-max. Target: >= 5x boto3.

Run: ``.venv/bin/python benchmarks/bedrock.py [--quick]``; writes section "bedrock" of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3
import botocore
import reactivex
from _report import write_section
from botocore.awsrequest import AWSResponse
from sse_parse import chunked

from rxtokens.eventstream import EventStreamParser
from rxtokens.operators import aggregate, decode_bedrock, parse_aws_eventstream
from rxtokens.operators._decode_bedrock import BedrockDecoder
from rxtokens.testing.wire import Script
from rxtokens.testing.wire_bedrock import bedrock_events

WORDS = ["Hello", " world", ",", " the", " quick", " brown", " fox", " jumps", " ü", " 日本"]


def body(tokens: int) -> bytes:
    script = Script(text=[WORDS[i % len(WORDS)] for i in range(tokens)], usage=(10, tokens))
    return b"".join(bedrock_events(script))


def rx_pipeline(chunks: list[bytes]) -> int:
    count = 0

    def on_next(_: object) -> None:
        nonlocal count
        count += 1

    reactivex.from_iterable(chunks).pipe(parse_aws_eventstream(), decode_bedrock()).subscribe(
        on_next
    )
    return count


def pure_core(chunks: list[bytes]) -> int:
    parser = EventStreamParser()
    decoder = BedrockDecoder()
    feed = decoder.feed
    count = 0
    for chunk in chunks:
        for message in parser.feed(chunk):
            count += len(feed(message))
    parser.close()
    decoder.close()
    return count


class _Raw:
    """What botocore reads a streaming body from (``stream()`` yields the chunks)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        pass


def boto3_client(chunks: list[bytes]) -> Any:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    )

    def answer(request: Any, **kwargs: Any) -> AWSResponse:
        headers = {"content-type": "application/vnd.amazon.eventstream"}
        return AWSResponse(request.url, 200, headers, _Raw(chunks))

    client.meta.events.register("before-send.bedrock-runtime.ConverseStream", answer)
    return client


def boto3_iteration(client: Any) -> int:
    response = client.converse_stream(
        modelId="anthropic.claude-3-5-haiku-20241022-v1:0",
        messages=[{"role": "user", "content": [{"text": "Hi"}]}],
    )
    count = 0
    for _ in response["stream"]:
        count += 1
    return count


def same_text(chunks: list[bytes], client: Any) -> None:
    ours = reactivex.from_iterable(chunks).pipe(
        parse_aws_eventstream(), decode_bedrock(), aggregate()
    )
    text = ours.run().text
    response = client.converse_stream(modelId="m", messages=[{"role": "user", "content": []}])
    theirs = "".join(
        e["contentBlockDelta"]["delta"].get("text", "")
        for e in response["stream"]
        if "contentBlockDelta" in e
    )
    assert text == theirs, "rxtokens and boto3 disagree"


def per_round(runners: dict[str, Callable[[], int]], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {label: [] for label in runners}
    order = list(runners)
    for r in range(rounds):
        for label in order if r % 2 == 0 else order[::-1]:
            start = time.process_time()
            runners[label]()
            times[label].append(time.process_time() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller inputs (smoke test)")
    args = ap.parse_args()
    tokens, rounds = (5_000, 5) if args.quick else (50_000, 9)
    chunks = chunked(body(tokens))
    client = boto3_client(chunks)
    same_text(chunks, client)
    runners: dict[str, Callable[[], int]] = {
        "rxtokens pipeline": lambda: rx_pipeline(chunks),
        "rxtokens pure core": lambda: pure_core(chunks),
        "boto3 converse_stream": lambda: boto3_iteration(client),
    }
    times = per_round(runners, rounds)
    base = times["boto3 converse_stream"]
    rows = []
    for label in ("rxtokens pipeline", "rxtokens pure core"):
        ratios = [b / t for b, t in zip(base, times[label], strict=True)]
        median = statistics.median(ratios)
        verdict = ""
        if label == "rxtokens pipeline":
            verdict = f" (>= 5x: {'met' if median >= 5 else 'MISSED'})"
        rows.append(
            f"| {label} vs boto3 | **{median:.1f}x**{verdict} | "
            f"{min(ratios):.1f}x - {max(ratios):.1f}x |"
        )
        print(f"{label}: {median:.1f}x boto3 ({min(ratios):.1f}x - {max(ratios):.1f}x)")
    abs_rows = [
        f"| {label} | {statistics.median(t) / tokens * 1e6:.2f} | {tokens / min(t):,.0f} |"
        for label, t in times.items()
    ]
    md = "\n".join(
        [
            "## Bedrock bytes -> tokens (`benchmarks/bedrock.py"
            + (" --quick" if args.quick else "")
            + "`)",
            "",
            f"A {tokens:,}-token ConverseStream body in 4 KB chunks; median of {rounds} "
            "per-round ratios (CPU time, order alternating), min-max beside it. "
            "Target: the rxtokens pipeline >= 5x boto3's `converse_stream` iteration.",
            "",
            "| comparison | speed-up | spread over rounds |",
            "|---|---|---|",
            *rows,
            "",
            "| implementation | median µs / token | best tokens/s |",
            "|---|---|---|",
            *abs_rows,
            "",
            f"boto3 {boto3.__version__} / botocore {botocore.__version__}: the full client "
            "call with a `before-send` hook serving the same chunks (no network), iterating "
            "`response['stream']` to event dicts; rxtokens goes further, to `StreamToken`s. "
            "Pipeline: `reactivex.from_iterable(chunks).pipe(parse_aws_eventstream(), "
            "decode_bedrock())`; pure core: the two pure classes without Rx.",
        ]
    )
    write_section("bedrock", md)


if __name__ == "__main__":
    main()
