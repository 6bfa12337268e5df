"""Providers over loopback HTTP: many concurrent streams, ours vs raw aiohttp and the SDK.

A `ProviderServer` runs in a separate process (so the server's CPU is not charged
to either client) and answers every request with the same pre-rendered OpenAI
Chat Completions body (N tokens, sent in 16 KB chunks). In the same run, on the
same server and bytes:

- rxtokens: ``openai_chat(...)`` (aiohttp -> parse_sse -> decode_openai_chat),
  consumed by a plain subscriber;
- the floor: raw aiohttp (one shared session) + split on blank lines +
  ``pydantic_core.from_json`` of each event (no token objects, no Rx);
- the SDK: ``AsyncOpenAI(...).chat.completions.create(stream=True)`` iterated
  with ``async for`` (httpx2, unlimited connection pool), one round.

This is the one owner of the concurrent-streams measurement: ``concurrency.py``
reuses these functions for its 1,000-stream run.

Reported (goal of issue 17, 200 streams): total tokens/s >= 0.9x the floor's and
p99 time to first token <= 1.2x the floor's, as medians of per-round ratios
(rxtokens and the floor alternate, wall time); and both vs the SDK.

Run: ``.venv/bin/python benchmarks/providers_http.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
from pydantic_core import from_json

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import ROUNDS, Ratio, goal, write_section

from rxtokens import TextDelta
from rxtokens.providers import close_sessions, openai_chat
from rxtokens.testing import ProviderServer, Reply, Script, openai_chat_events

WORDS = ["Hello", " world", ",", " the", " quick", " brown", " fox", " jumps", " ü", " 日本"]


def _serve(tokens: int, conn: Any) -> None:
    script = Script(text=[WORDS[i % len(WORDS)] for i in range(tokens)], usage=(10, tokens))
    body = b"".join(openai_chat_events(script, include_usage=True))
    with ProviderServer.running_in_thread(default=Reply(events=[body], chunk_size=16384)) as server:
        conn.send(server.base_url_for("openai"))
        conn.recv()  # until the parent says stop


Result = tuple[int, list[float], float]  # tokens, TTFTs, wall seconds


async def _gather(one: Callable[[], Awaitable[tuple[int, float]]], streams: int) -> Result:
    """Run `streams` copies of `one` at once: (tokens, time to first token each, wall time)."""
    began = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(streams)))
    elapsed = time.perf_counter() - began
    return sum(n for n, _ in results), [f for _, f in results], elapsed


async def _ours(base_url: str, streams: int) -> tuple[int, list[float], float]:
    loop = asyncio.get_running_loop()

    async def one() -> tuple[int, float]:
        start = loop.time()
        done: asyncio.Future[None] = loop.create_future()
        state = {"n": 0, "first": 0.0}

        def on_next(token: object) -> None:
            if type(token) is TextDelta:
                if not state["n"]:
                    state["first"] = loop.time() - start
                state["n"] += 1

        openai_chat("bench", "go", base_url=base_url, api_key="k").subscribe(
            on_next, done.set_exception, lambda: done.set_result(None)
        )
        await done
        return int(state["n"]), float(state["first"])

    result = await _gather(one, streams)
    await close_sessions()
    return result


async def _sdk(base_url: str, streams: int) -> tuple[int, list[float], float]:
    from openai import AsyncOpenAI

    loop = asyncio.get_running_loop()
    # an unlimited pool: the SDK's default (1,000 connections) would queue larger runs
    limits = httpx2.Limits(max_connections=None, max_keepalive_connections=None)
    http = httpx2.AsyncClient(limits=limits, timeout=600)
    async with AsyncOpenAI(
        base_url=base_url, api_key="k", max_retries=0, http_client=http
    ) as client:

        async def one() -> tuple[int, float]:
            start = loop.time()
            count, first = 0, 0.0
            stream = await client.chat.completions.create(
                model="bench",
                messages=[{"role": "user", "content": "go"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    if not count:
                        first = loop.time() - start
                    count += 1
            return count, first

        return await _gather(one, streams)


async def _raw(base_url: str, streams: int) -> tuple[int, list[float], float]:
    """The floor: one shared aiohttp session, split on blank lines, `from_json` per event."""
    loop = asyncio.get_running_loop()
    body = {
        "model": "bench",
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": "Bearer k"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> tuple[int, float]:
            start = loop.time()
            count, first = 0, 0.0
            async with session.post(
                f"{base_url}/chat/completions", json=body, headers=headers
            ) as response:
                response.raise_for_status()
                tail = b""
                async for chunk in response.content.iter_any():
                    events = (tail + chunk).split(b"\n\n")
                    tail = events.pop()
                    for event in events:
                        if not event.startswith(b"data: {"):
                            continue
                        choices = from_json(event[6:])["choices"]
                        if choices and choices[0]["delta"].get("content"):
                            if not count:
                                first = loop.time() - start
                            count += 1
            return count, first

        return await _gather(one, streams)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    streams, tokens, rounds = (20, 200, 2) if args.quick else (200, 2000, ROUNDS)

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(tokens, child), daemon=True)
    proc.start()
    runs: dict[str, list[Result]] = {"rxtokens": [], "raw aiohttp": [], "openai SDK": []}
    try:
        base_url = parent.recv()
        for warm in (_ours, _raw):  # imports, first connections
            asyncio.run(warm(base_url, 5))
        # rxtokens and the raw floor alternate round by round; the SDK (~30x slower) once
        plan = [("openai SDK", _sdk)]
        for index in range(rounds):
            pair = [("rxtokens", _ours), ("raw aiohttp", _raw)]
            plan += pair if index % 2 == 0 else pair[::-1]
        for name, fn in plan:
            result = asyncio.run(fn(base_url, streams))
            if result[0] != streams * tokens:
                raise SystemExit(f"{name}: got {result[0]} tokens, expected {streams * tokens}")
            runs[name].append(result)
    finally:
        parent.send("stop")
        proc.join(timeout=10)

    ours, raw, sdk = runs["rxtokens"], runs["raw aiohttp"], runs["openai SDK"]
    # tokens/s ratio = raw's wall time / ours (same tokens); TTFT ratio = ours / raw's p99
    rate = Ratio.of([r[2] for r in raw], [r[2] for r in ours])
    p99 = Ratio.of([_p(r[1], 0.99) for r in ours], [_p(r[1], 0.99) for r in raw])
    vs_sdk = Ratio.of([sdk[0][2]] * rounds, [r[2] for r in ours])
    met = rate.median >= 0.9 and p99.median <= 1.2
    lines = [
        "## Providers over loopback HTTP (`benchmarks/providers_http.py`)",
        "",
        f"{streams} concurrent OpenAI chat streams of {tokens} tokens each against one "
        "`ProviderServer` in another process (16 KB chunks). rxtokens `openai_chat` "
        "(aiohttp -> parse_sse -> decode_openai_chat, a plain subscriber) vs the floor: "
        "raw aiohttp (one shared session) + split on blank lines + `pydantic_core.from_json` "
        f"per event; {rounds} rounds, order alternating, median of per-round ratios "
        "(wall time). The openai SDK (`AsyncOpenAI`, httpx2, unlimited pool) runs once.",
        "",
        f"- **Total tokens/s: {rate.text(bold=False)} raw aiohttp's** (goal >= 0.9x)",
        f"- **p99 time to first token: {p99.text(bold=False)} raw aiohttp's** (goal <= 1.2x)",
        f"- **Total tokens/s: {vs_sdk.text(1, bold=False)} the openai SDK's** (one SDK round)",
        "",
        "| client | tokens/s (median round) | TTFT p50 (ms) | TTFT p99 (ms) | wall (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, results in runs.items():
        walls = sorted(r[2] for r in results)
        mid = next(r for r in results if r[2] == walls[len(walls) // 2])
        lines.append(
            f"| {name} | {mid[0] / mid[2]:,.0f} | {statistics.median(mid[1]) * 1e3:.1f} | "
            f"{_p(mid[1], 0.99) * 1e3:.1f} | {mid[2]:.2f} |"
        )
    lines += [
        "",
        goal(
            "concurrency",
            f"{rate.text()}; p99 TTFT {p99.text(bold=False)}",
            met and streams >= 200,
        ),
    ]
    markdown = "\n".join(lines)
    print(markdown)
    write_section("providers_http", markdown)


if __name__ == "__main__":
    main()
