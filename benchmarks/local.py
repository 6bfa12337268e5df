"""Local generation throughput: `rxtokens.providers.llama` against llama-cpp-python itself.

One run, one model, one prompt, one seed (greedy), the same number of tokens:

* baseline: iterating llama-cpp-python's own ``create_completion(stream=True)``;
* ``providers.llama`` delivered on the worker thread (no event loop);
* ``providers.llama`` subscribed inside an asyncio loop (delivered on the loop);
* the bare ``Llama.generate`` token loop (no text at all): the floor, on the
  calling thread and in a new thread (what running off the event loop costs).

The model is a tiny GGUF written by `rxtokens.testing.tiny_model` (no weights
can be downloaded here), wired with a script that cycles through ASCII and
split multi-byte characters so that every run generates exactly `max_tokens`
tokens. Its compute per token is small, so the numbers mostly measure
per-token overhead: a real model's decode time would dwarf both paths.

Run: .venv/bin/python benchmarks/local.py [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _report import Ratio, rounds, write_section

from rxtokens.providers.llama import llama, load_model
from rxtokens.testing.tiny_model import write_tiny_llama_gguf
from rxtokens.tokens import StreamToken, TextDelta, Usage

# A cycle (no end-of-sequence token): 2 words, 日 as 3 byte tokens, é, 😀 as 4 byte tokens.
SCRIPT = [
    "▁the", "▁a", "x", "y",
    "<0xE6>", "<0x97>", "<0xA5>",
    "é", "!",
    "<0xF0>", "<0x9F>", "<0x98>", "<0x80>",
    ",",
]  # fmt: skip
PROMPT = "Once upon a time"
N_CTX = 1024


def run_provider(path: Path, max_tokens: int) -> tuple[int, str]:
    done = threading.Event()
    texts: list[str] = []
    usage: list[int] = []
    errors: list[Exception] = []

    def on_next(token: StreamToken) -> None:
        if isinstance(token, TextDelta):
            texts.append(token.text)
        elif isinstance(token, Usage):
            usage.append(token.output_tokens or 0)

    llama(path, PROMPT, n_ctx=N_CTX, max_tokens=max_tokens, temperature=0, seed=1).subscribe(
        on_next, lambda e: (errors.append(e), done.set()), done.set
    )
    done.wait()
    if errors:
        raise errors[0]
    return usage[0], "".join(texts)


def run_provider_in_loop(path: Path, max_tokens: int) -> int:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        count = 0

        def on_next(token: StreamToken) -> None:
            nonlocal count
            if isinstance(token, Usage):
                count = token.output_tokens or 0

        llama(path, PROMPT, n_ctx=N_CTX, max_tokens=max_tokens, temperature=0, seed=1).subscribe(
            on_next, finished.set_exception, lambda: finished.set_result(None)
        )
        await finished
        return count

    return asyncio.run(main())


def run_baseline(llm: Any, max_tokens: int) -> str:
    chunks = llm.create_completion(
        PROMPT, max_tokens=max_tokens, temperature=0, seed=1, stream=True
    )
    return "".join(chunk["choices"][0]["text"] for chunk in chunks)


def run_bare_generate(llm: Any, max_tokens: int) -> int:
    tokens = llm.tokenize(PROMPT.encode(), add_bos=True, special=True)
    llm.set_seed(1)
    n = 0
    for _ in llm.generate(tokens, temp=0):
        n += 1
        if n >= max_tokens:
            break
    return n


def in_thread(fn: Any) -> None:
    thread = threading.Thread(target=fn)
    thread.start()
    thread.join()


def main() -> None:
    quick = "--quick" in sys.argv
    max_tokens = 64 if quick else 128
    repeat = 30 if quick else 15
    dims: dict[str, Any] = (
        {"n_ctx": N_CTX}
        if quick
        else {"n_embd": 256, "n_layer": 4, "n_head": 8, "n_ff": 768, "n_ctx": N_CTX}
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = write_tiny_llama_gguf(Path(tmp) / "bench.gguf", script=SCRIPT, **dims)
        size_kb = path.stat().st_size // 1024
        llm = load_model(path, n_ctx=N_CTX)  # the instance the provider uses: same context

        count, text = run_provider(path, max_tokens)
        reference = llm.create_completion(PROMPT, max_tokens=max_tokens, temperature=0, seed=1)
        assert count == max_tokens == reference["usage"]["completion_tokens"], count
        assert text == reference["choices"][0]["text"]
        assert run_provider_in_loop(path, max_tokens) == max_tokens
        run_baseline(llm, max_tokens)  # warm-up

        runs = {
            "llama-cpp-python `create_completion(stream=True)` (baseline)": lambda: run_baseline(
                llm, max_tokens
            ),
            "`providers.llama`, delivered on the worker thread": lambda: run_provider(
                path, max_tokens
            ),
            "`providers.llama`, inside an asyncio loop": lambda: run_provider_in_loop(
                path, max_tokens
            ),
            "bare `Llama.generate` loop, no text (floor)": lambda: run_bare_generate(
                llm, max_tokens
            ),
            "bare `Llama.generate` loop in a new worker thread": lambda: in_thread(
                lambda: run_bare_generate(llm, max_tokens)
            ),
        }
        # Every path once per round, the order alternating: load on this shared machine
        # drifts, and alternating exposes every path to the same conditions (wall time:
        # the provider works in a thread).
        timings = rounds(runs, repeat, clock=time.perf_counter)
    baseline = next(iter(timings.values()))
    lines = [
        "## Local models: `providers.llama` vs llama-cpp-python streaming",
        "",
        f"Tiny scripted llama GGUF ({size_kb} KB, {'default dims' if quick else '256-wide, 4 layers'}), "
        f"greedy, {max_tokens} tokens per run (prompt eval included), {repeat} rounds with the "
        f"order alternating{' (quick)' if quick else ''}. Ratio: tokens/s relative to the "
        "baseline (higher is faster), median of the per-round ratios (min-max; best-of beside "
        "it); tokens/s and ms: the median round.",
        "",
        "| path | tokens/s ratio | tokens/s | ms per run |",
        "|---|---:|---:|---:|",
    ]
    for name, values in timings.items():
        seconds = statistics.median(values)
        ratio = Ratio.of(baseline, values).text(bold=False)
        lines.append(f"| {name} | {ratio} | {max_tokens / seconds:,.0f} | {seconds * 1e3:.1f} |")
    lines += [
        "",
        "The baseline re-detokenizes the whole completion on every token (quadratic in the "
        "length) and its streamed text drops characters split over byte tokens; the provider "
        "decodes each token's bytes once, incrementally. The bare loops bound what any wrapper "
        "can reach (the last one pays for the worker thread, as the provider does). This "
        "machine is shared: differences of several percent between runs are noise. On a real "
        "model the decode time per token (milliseconds) dominates all of these.",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    write_section("local", markdown)


if __name__ == "__main__":
    main()
