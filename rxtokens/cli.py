"""The ``rxtokens`` command.

::

    rxtokens demo [--prompt P] [--provider openai|openai_responses|anthropic|gemini|bedrock]
                  [--model path.gguf] [--live] [--json]
    rxtokens run "<launch string>" | pipeline.json | -   [--json] [--timeout S] [--quiet]
    rxtokens ops [--json]                 operators, presets, providers and sinks with parameters
    rxtokens spec "<launch string>" | pipeline.json  [--launch]   validate; print JSON (or launch)
    rxtokens spec-schema                  the JSON Schema of pipeline specs
    rxtokens tiny-model PATH              write a tiny random-weight GGUF model (local path)
    rxtokens serve [options]              serve pipelines to browsers (rxtokens serve --help)

``run`` and ``demo`` stream the answer's text to stdout as it arrives (``--json``: every
token as one JSON line, for piping), then print a summary line on stderr: finish
reason, usage, time to first token, tokens per second. While a long run streams to a
pipe, a progress line is kept up to date on stderr when stderr is a terminal.

Ctrl-C (SIGINT) cancels the request cleanly: the subscription is disposed, which
closes the HTTP connection (or stops local generation); what arrived stays printed, the
summary says "interrupted", and the exit code is 130. Exit codes: 0 success, 1 the
stream failed (the partial answer stays printed), 2 invalid arguments or
configuration, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from reactivex import Observable

from .aio import run_sync
from .errors import ConfigError, ProviderNotInstalledError, RxTokensError
from .providers import BUILTIN_RECORDS, provider_record
from .providers._llama_models import check_gguf
from .providers.llama import llama_stream
from .tokens import Completion, StreamToken, token_to_json

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

DEMO_PROMPT = "My card is 4111 1111 1111 1111, mail me at ada@example.com: what is rxtokens?"
"""The demo's prompt: the loopback model quotes it, so the `safe` preset's redaction shows."""
_DEMO_PROVIDERS = [
    record.name
    for record in BUILTIN_RECORDS
    if record.wire_format and record.default_model and not record.capabilities.local
]
"""Hosted APIs the demo can stream from: live, or from the loopback server's double."""


# --------------------------------------------------------------------------- terminal output


class _Terminal:
    """Writes tokens live (text, or JSON lines) and the status / progress lines."""

    def __init__(self, stdout: TextIO, stderr: TextIO, *, json_lines: bool, quiet: bool) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.json_lines = json_lines
        self.quiet = quiet
        self.at_line_start = True
        self.broken = False
        self.on_broken: Callable[[], None] = lambda: None
        self.progress = not quiet and _isatty(stderr) and (json_lines or not _isatty(stdout))
        self._progress_shown = False

    def write(self, text: str) -> None:
        if self.broken or not text:
            return
        try:
            self.stdout.write(text)
            self.stdout.flush()
        except (BrokenPipeError, ValueError, OSError):
            self.broken = True
            self.on_broken()
            return
        self.at_line_start = text.endswith("\n")

    def on_token(self, token: Any) -> None:
        if self.json_lines:
            self.write(token_to_json(token) + "\n")
            return
        kind = token.type
        if kind in ("text", "refusal") and getattr(token, "index", 0) == 0:
            self.write(token.text)
        elif kind == "reasoning" and token.index == 0:
            self.note(token.text, end="", dim=True)
        elif kind == "tool_call":
            args = json.dumps(token.arguments, ensure_ascii=False)
            prefix = "" if self.at_line_start else "\n"
            self.write(f"{prefix}[tool call {token.name}({args})]\n")

    def note(self, text: str, *, end: str = "\n", dim: bool = False) -> None:
        """Write to stderr (dim on a terminal)."""
        self.clear_progress()
        styled = f"\x1b[2m{text}\x1b[0m" if dim and _isatty(self.stderr) else text
        with contextlib.suppress(OSError, ValueError):
            self.stderr.write(styled + end)
            self.stderr.flush()

    def finish_text(self) -> None:
        if not self.at_line_start and not self.json_lines:
            self.write("\n")

    def show_progress(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stderr.write("\r\x1b[2K" + line)
            self.stderr.flush()
            self._progress_shown = True

    def clear_progress(self) -> None:
        if self._progress_shown:
            with contextlib.suppress(OSError, ValueError):
                self.stderr.write("\r\x1b[2K")
                self.stderr.flush()
            self._progress_shown = False


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def progress_line(snapshot: Any) -> str:
    """The live progress line: tokens so far, elapsed time, rate."""
    rate = snapshot.tokens_per_second
    parts = [
        f"{snapshot.content_tokens} tokens",
        f"{snapshot.characters} chars",
        f"{snapshot.elapsed:.1f} s",
    ]
    if rate:
        parts.append(f"{rate:.1f} tokens/s")
    return "... streaming: " + " | ".join(parts)


def summary_line(status: str, completion: Completion | None, snapshot: Any) -> str:
    """The final status line: outcome, finish reason, usage, time to first token, rate."""
    parts = [f"-- {status}"]
    if completion is not None and completion.finish_reason:
        parts.append(f"finish {completion.finish_reason}")
    usage = completion.usage if completion is not None else None
    if usage is not None and (usage.input_tokens is not None or usage.output_tokens is not None):
        estimated = " (estimated)" if usage.estimated else ""
        in_tokens = "?" if usage.input_tokens is None else usage.input_tokens
        out_tokens = "?" if usage.output_tokens is None else usage.output_tokens
        parts.append(f"usage {in_tokens} in / {out_tokens} out{estimated}")
    else:
        parts.append(f"{snapshot.content_tokens} tokens received")
    parts.append(f"time to first token {_seconds(snapshot.time_to_first_token)}")
    rate = snapshot.tokens_per_second
    parts.append(f"{rate:.1f} tokens/s" if rate else "- tokens/s")
    parts.append(f"{snapshot.elapsed:.2f} s total")
    return " | ".join(parts)


# --------------------------------------------------------------------------- streaming


@dataclass
class _Outcome:
    completion: Completion | None
    error: BaseException | None
    interrupted: bool
    broken_pipe: bool
    snapshot: Any


async def _stream(
    build: Callable[[], Observable[StreamToken]],
    terminal: _Terminal,
    sinks: Sequence[Any] = (),
    *,
    time_limit: float | None = None,
) -> _Outcome:
    """Run one stream: live output, sinks, Ctrl-C, progress; return how it ended."""
    from .broadcast import Broadcast
    from .operators import StreamMetrics, metrics

    stats = StreamMetrics()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reason: list[str] = []

    def interrupt() -> None:
        reason.append("interrupted")
        stop.set()
        # a second Ctrl-C falls back to KeyboardInterrupt
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signal.SIGINT)

    def broken() -> None:
        reason.append("broken pipe")
        loop.call_soon(stop.set)

    terminal.on_broken = broken
    # build first: a configuration error (no API key ...) leaves no signal handler behind
    broadcast = Broadcast(build().pipe(metrics(stats)), replay="none", name="rxtokens-cli")
    handler_installed = False
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, interrupt)
        handler_installed = True

    final = broadcast.final
    subscriptions = []
    stopper = asyncio.ensure_future(stop.wait())
    progress: asyncio.Task[None] | None = None
    completion: Completion | None = None
    error: BaseException | None = None
    try:
        subscriptions.append(broadcast.subscribe(terminal.on_token, name="terminal"))
        for i, sink in enumerate(sinks):
            subscriptions.append(broadcast.subscribe(sink.on_next, name=f"sink-{i}"))
        if terminal.progress:
            progress = asyncio.ensure_future(_progress(terminal, stats))
        waiters: set[asyncio.Future[Any]] = {final, stopper}
        done, _ = await asyncio.wait(waiters, timeout=time_limit, return_when="FIRST_COMPLETED")
        if final in done:
            try:
                completion = final.result()
            except Exception as exc:
                error = exc
                completion = getattr(exc, "partial", None) or broadcast.completion_so_far()
        else:
            if not done:
                reason.append("timeout")
            broadcast.cancel()  # disposes the upstream subscription: the connection closes
            completion = broadcast.completion_so_far()
            with contextlib.suppress(Exception):
                await final
    finally:
        stopper.cancel()
        if progress is not None:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
        terminal.clear_progress()
        for subscription in subscriptions:
            subscription.dispose()
        if handler_installed:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signal.SIGINT)
    if reason and reason[0] == "timeout":
        error = TimeoutError(f"the stream did not complete within {time_limit} s")
    return _Outcome(
        completion,
        error,
        bool(reason) and reason[0] == "interrupted",
        bool(reason) and reason[0] == "broken pipe",
        stats.snapshot(),
    )


async def _progress(terminal: _Terminal, stats: Any) -> None:
    while True:
        await asyncio.sleep(0.25)
        snapshot = stats.snapshot()
        if snapshot.elapsed >= 1.0:
            terminal.show_progress(progress_line(snapshot))


def _finish(terminal: _Terminal, outcome: _Outcome) -> int:
    """Print the end of the text and the summary; the exit code."""
    terminal.finish_text()
    if outcome.broken_pipe:
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    if outcome.interrupted:
        chars = len(outcome.completion.text) if outcome.completion else 0
        status = f"interrupted: request cancelled after {chars} characters"
        code = EXIT_INTERRUPTED
    elif outcome.error is not None:
        status = f"failed: {type(outcome.error).__name__}: {outcome.error}"
        code = EXIT_FAILED
    else:
        status = "done"
        code = EXIT_OK
    if not terminal.quiet or code != EXIT_OK:
        terminal.note(summary_line(status, outcome.completion, outcome.snapshot))
    return code


def _run_loop(coro_factory: Callable[[], Any]) -> Any:
    async def main() -> Any:
        from .providers import close_sessions

        try:
            return await coro_factory()
        finally:
            await close_sessions()

    return run_sync(main, "the rxtokens command", "rxtokens.aio.collect")


# --------------------------------------------------------------------------- commands


def _load_spec(text: str) -> Any:
    from .spec import PipelineSpec, parse_launch

    if text == "-":
        data = sys.stdin.read()
        return PipelineSpec.from_json(data) if data.lstrip().startswith("{") else parse_launch(data)
    if os.path.isfile(text):
        return PipelineSpec.load(text)
    if text.endswith(".json") and "!" not in text and " " not in text:
        raise ConfigError(f"no such spec file: {text!r}")
    return parse_launch(text)


def _cmd_run(args: argparse.Namespace, terminal: _Terminal) -> int:
    spec = _load_spec(args.spec)
    sinks = spec.build_sinks()
    try:
        outcome = _run_loop(lambda: _stream(spec.build, terminal, sinks, time_limit=args.timeout))
    finally:
        for sink in sinks:
            sink.close()
    return _finish(terminal, outcome)


@contextlib.contextmanager
def _demo_source(args: argparse.Namespace) -> Iterator[tuple[Callable[[], Any], str, str]]:
    """The demo's token stream (a function building it), where it comes from, how it is made."""
    prompt = args.prompt
    if args.model:
        path = args.model
        check_gguf(Path(path))  # before the banner: a wrong path is the whole story
        yield (
            lambda: llama_stream(path, prompt, max_tokens=args.max_tokens, temperature=0.8),
            f"the local model {path} (llama.cpp, in-process)",
            "llama.cpp worker thread -> UTF-8 decoding",
        )
        return
    provider = args.provider
    record = provider_record(provider)
    decoder = getattr(record.decoder, "__name__", "decode")
    parser = getattr(record.parser, "__name__", "parse_sse")
    if args.live:
        names = record.env_vars
        if not any(os.environ.get(name) for name in names):
            raise ConfigError(f"--live needs an API key: set {' or '.join(names)}")
        model = record.default_model
        yield (
            lambda: record.stream(model, prompt),
            f"the real {provider} API ({model})",
            f"HTTPS bytes -> {parser} -> {decoder}",
        )
        return
    from .testing import demo_stream

    with demo_stream(prompt, provider, delay=args.delay) as tokens:
        yield (
            lambda: tokens,
            f"the bundled {provider} loopback server over real HTTP (no API key needed)",
            f"HTTP bytes -> {parser} -> {decoder}",
        )


def _cmd_demo(args: argparse.Namespace, terminal: _Terminal) -> int:
    from . import presets

    safe = presets.operator("safe")
    with _demo_source(args) as (build_source, description, head):
        terminal.note(f"rxtokens demo: streaming from {description}", dim=True)
        terminal.note(
            f"pipeline: {head} -> preset safe (redaction) -> metrics -> Broadcast "
            "-> this terminal + aggregate",
            dim=True,
        )
        outcome = _run_loop(lambda: _stream(lambda: build_source().pipe(safe), terminal))
    return _finish(terminal, outcome)


def _type_name(annotation: Any) -> str:
    """A short readable type: ``int | None``, ``'word' | 'line'``, ``list[str]``, ``json``."""
    from typing import Literal, Union, get_args, get_origin

    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is type(None):
        return "None"
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin is Union or type(annotation).__name__ == "UnionType":
        return " | ".join(_type_name(a) for a in args)
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    if "JsonValue" in str(annotation):
        return "json"
    return getattr(annotation, "__name__", str(annotation))


def _plain(text: str) -> str:
    return text.replace("``", "").replace("`", "")


def _params_listing(model: Any) -> list[dict[str, Any]]:
    rows = []
    for name, field in model.model_fields.items():
        required = field.is_required()
        rows.append(
            {
                "name": name,
                "type": _type_name(field.annotation),
                "required": required,
                "default": None if required else field.get_default(call_default_factory=True),
                "description": field.description or "",
            }
        )
    return rows


def _cmd_ops(args: argparse.Namespace, terminal: _Terminal) -> int:
    from . import presets
    from .launch import format_value
    from .registry import operator_entries, provider_entries, sink_entries

    data: dict[str, Any] = {
        "operators": {
            name: {"summary": _plain(e.summary), "params": _params_listing(e.params)}
            for name, e in operator_entries().items()
        },
        "presets": {
            name: " ! ".join(op.to_launch() for op in presets.get(name)) for name in presets.names()
        },
        "providers": {
            name: {
                "summary": _plain(e.summary),
                "default_model": e.default_model,
                "env_vars": list(e.env_vars),
                "params": _params_listing(e.params),
                "extra_params": e.params.model_config.get("extra") == "allow",
            }
            for name, e in provider_entries().items()
        },
        "sinks": {
            name: {"summary": _plain(e.summary), "params": _params_listing(e.params)}
            for name, e in sink_entries().items()
        },
    }
    if args.json:
        terminal.write(json.dumps(data, indent=2, default=str) + "\n")
        return EXIT_OK

    lines: list[str] = []

    def params(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            default = "required" if row["required"] else f"= {format_value(row['default'])}"
            lines.append(f"      {row['name']}: {row['type']} {default}")

    lines.append("Providers (the first element of a launch string; 'provider:model' works too):")
    for name, info in data["providers"].items():
        model = info["default_model"] or "required"
        keys = f"; key from {' or '.join(info['env_vars'])}" if info["env_vars"] else ""
        lines.append(f"  {name}  {info['summary']} (model: {model}{keys})")
        params(info["params"])
        if info["extra_params"]:
            lines.append("      ... and any other request field (temperature=0.2 ...)")
    lines.append("")
    lines.append("Operators (after '!'):")
    for name, info in data["operators"].items():
        lines.append(f"  {name}  {info['summary']}")
        params(info["params"])
    lines.append("")
    lines.append("Presets (the operator 'preset name=NAME'):")
    for name, chain in data["presets"].items():
        lines.append(f"  {name}: {chain}")
    lines.append("")
    lines.append("Sinks (last, after the operators):")
    for name, info in data["sinks"].items():
        lines.append(f"  {name}  {info['summary']}")
        params(info["params"])
    terminal.write("\n".join(lines) + "\n")
    return EXIT_OK


def _cmd_spec(args: argparse.Namespace, terminal: _Terminal) -> int:
    spec = _load_spec(args.spec)
    terminal.write((spec.to_launch() if args.launch else spec.to_json()) + "\n")
    return EXIT_OK


def _cmd_tiny_model(args: argparse.Namespace, terminal: _Terminal) -> int:
    """Write the tiny test model: real llama.cpp runs it, and it talks gibberish by design."""
    try:  # gguf and numpy come with the [local] extra, which `rxtokens` itself does not need
        from .testing.tiny_model import write_tiny_llama_gguf
    except ImportError as exc:
        missing = exc.name if exc.name in ("gguf", "numpy") else "gguf"
        raise ProviderNotInstalledError(missing, "local") from None
    path = write_tiny_llama_gguf(args.path)
    terminal.note(
        f"wrote {path} ({path.stat().st_size:,} bytes): a random-weight llama model that real "
        f"llama.cpp loads and runs; its answers are gibberish by design. "
        f"Try: rxtokens demo --model {path}"
    )
    return 0


def _cmd_spec_schema(args: argparse.Namespace, terminal: _Terminal) -> int:
    from .spec import PipelineSpec

    terminal.write(json.dumps(PipelineSpec.json_schema(), indent=2) + "\n")
    return EXIT_OK


# --------------------------------------------------------------------------- arguments


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rxtokens`` command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="rxtokens",
        description="LLM output as ReactiveX streams: run pipelines from the command line.",
        epilog=(
            "examples:\n"
            "  rxtokens demo\n"
            "  rxtokens run \"testing prompt='Hello' ! preset name=safe ! smooth delay=0.02\"\n"
            "  rxtokens run \"openai:gpt-4o-mini prompt='Tell me a joke'\" --json | jq .\n"
            "  rxtokens ops"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rxtokens {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    demo = commands.add_parser(
        "demo",
        help="stream a real answer over real HTTP from the bundled provider server",
        description=(
            "Stream an answer through a real pipeline: by default from the bundled "
            "loopback server over real HTTP (no API key), with --model from a local GGUF "
            "model, with --live from the real API (needs the provider's API key)."
        ),
    )
    demo.add_argument("--prompt", default=DEMO_PROMPT, help="the prompt (default: %(default)r)")
    demo.add_argument(
        "--provider",
        default="openai",
        choices=_DEMO_PROVIDERS,
        help="the wire format / API to stream from (default: %(default)s)",
    )
    demo.add_argument("--model", metavar="PATH.gguf", help="use a local GGUF model (llama.cpp)")
    demo.add_argument(
        "--live", action="store_true", help="call the real API (needs OPENAI_API_KEY ...)"
    )
    demo.add_argument(
        "--delay",
        type=_positive_float,
        default=0.015,
        help="seconds between events from the loopback server (default: %(default)s)",
    )
    demo.add_argument("--max-tokens", type=int, default=64, help="with --model: tokens to generate")
    demo.add_argument("--json", action="store_true", help="write tokens as JSON lines")
    demo.set_defaults(handler=_cmd_demo)

    run = commands.add_parser(
        "run",
        help="run a pipeline: a launch string, a spec file (.json or launch string) or -",
        description="Run a pipeline and stream its text to stdout.",
    )
    run.add_argument("spec", help="a launch string, a spec file, or - for stdin")
    run.add_argument("--json", action="store_true", help="write tokens as JSON lines")
    run.add_argument("--timeout", type=_positive_float, help="cancel after this many seconds")
    run.add_argument("-q", "--quiet", action="store_true", help="no summary line on success")
    run.set_defaults(handler=_cmd_run)

    ops = commands.add_parser("ops", help="list operators, presets, providers and sinks")
    ops.add_argument("--json", action="store_true", help="machine-readable output")
    ops.set_defaults(handler=_cmd_ops)

    spec = commands.add_parser(
        "spec", help="validate a pipeline and print it as JSON (or as a launch string)"
    )
    spec.add_argument("spec", help="a launch string, a spec file, or - for stdin")
    spec.add_argument("--launch", action="store_true", help="print the launch string")
    spec.set_defaults(handler=_cmd_spec)

    schema = commands.add_parser("spec-schema", help="print the JSON Schema of pipeline specs")
    schema.set_defaults(handler=_cmd_spec_schema)

    tiny = commands.add_parser(
        "tiny-model", help="write a tiny random-weight GGUF model (gibberish, for the local path)"
    )
    tiny.add_argument("path", help="the .gguf file to write")
    tiny.set_defaults(handler=_cmd_tiny_model)

    serve = commands.add_parser(
        "serve",
        help="serve pipelines to browsers over SSE (see: rxtokens serve --help)",
        add_help=False,
    )
    del serve  # handled in main() before parsing: listed here for --help only
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rxtokens`` command; returns the exit code.

    Example:
        >>> main(["spec", "testing prompt=Hi ! preset name=safe", "--launch"])
        testing prompt=Hi ! preset name=safe
        0
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:  # the server parses its own options (rxtokens serve --help)
        from .server import main as serve_main

        return serve_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    terminal = _Terminal(
        sys.stdout,
        sys.stderr,
        json_lines=bool(getattr(args, "json", False)) and args.command in ("run", "demo"),
        quiet=bool(getattr(args, "quiet", False)),
    )
    started = time.monotonic()
    try:
        code: int = args.handler(args, terminal)
        return code
    except KeyboardInterrupt:
        terminal.finish_text()
        terminal.note(f"-- interrupted after {time.monotonic() - started:.2f} s")
        return EXIT_INTERRUPTED
    except ConfigError as exc:
        terminal.finish_text()
        terminal.note(f"rxtokens: error: {exc}")
        return EXIT_USAGE
    except RxTokensError as exc:
        terminal.finish_text()
        terminal.note(f"rxtokens: {type(exc).__name__}: {exc}")
        return EXIT_FAILED
