"""The ``rxtokens`` command as a user runs it: a subprocess against the bundled provider server."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rxtokens.cli import _Terminal, main, progress_line, summary_line
from rxtokens.operators import MetricsSnapshot
from rxtokens.testing import ProviderServer, Reply, Script, encode
from rxtokens.testing.server import DEMO_ANSWER
from rxtokens.tokens import Completion, TextDelta, Usage, token_from_json

pytestmark = pytest.mark.timeout(60)

ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
}
ENV["PYTHONIOENCODING"] = "utf-8"


def rxtokens(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rxtokens", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        env=ENV,
        **kwargs,
    )


@pytest.fixture(scope="module")
def server() -> Iterator[ProviderServer]:
    with ProviderServer.running_in_thread() as srv:
        yield srv


def test_demo_prints_the_answer_and_a_status_line() -> None:
    result = rxtokens("demo", "--delay", "0", "--prompt", "Hi, I am ann@example.com")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f'You asked: "Hi, I am [EMAIL]". {DEMO_ANSWER}\n'
    assert "loopback server over real HTTP" in result.stderr
    status = result.stderr.strip().splitlines()[-1]
    assert status.startswith("-- done | finish stop | usage ")
    assert "time to first token" in status
    assert "tokens/s" in status


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "openai_responses", "bedrock"])
def test_demo_speaks_every_wire_format(provider: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--delay", "0", "--provider", provider, "--prompt", "Hi"]) == 0
    out, err = capsys.readouterr()
    assert out == f'You asked: "Hi". {DEMO_ANSWER}\n'
    assert f"decode_{provider}" in err


def test_the_demo_shows_its_redaction(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--delay", "0"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith('You asked: "My card is [CARD], mail me at [EMAIL]: what is rxtokens?"')


def test_run_a_launch_string_against_the_provider_server(server: ProviderServer) -> None:
    server.queue(Script(text="Call me at 4111 1111 1111 1111 today.", usage=(5, 9)))
    url = server.base_url_for("openai")
    result = rxtokens("run", f"testing base_url={url} prompt='Hi' ! preset name=safe")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Call me at [CARD] today.\n"
    assert "| usage 5 in / 9 out |" in result.stderr
    assert server.requests[-1].json["messages"] == [{"role": "user", "content": "Hi"}]


def test_run_json_lines_parse_as_tokens(server: ProviderServer, tmp_path: Path) -> None:
    server.queue(Script(text="Hello there, world", usage=(2, 3)))
    spec = tmp_path / "pipeline.json"
    from rxtokens.spec import parse_launch

    parse_launch(
        f"testing base_url={server.base_url_for('openai')} prompt=Hi ! chunk_by boundary=word"
    ).save(spec)
    result = rxtokens("run", str(spec), "--json")
    assert result.returncode == 0, result.stderr
    tokens = [token_from_json(line) for line in result.stdout.splitlines()]
    texts = [t.text for t in tokens if isinstance(t, TextDelta)]
    assert texts == ["Hello ", "there, ", "world"]
    assert Usage(2, 3, cache_read_input_tokens=0, reasoning_tokens=0) in tokens
    assert tokens[-1].type in ("finish", "usage")


def test_sigint_mid_stream_cancels_the_request_and_keeps_what_arrived(
    server: ProviderServer,
) -> None:
    words = " ".join(f"word{i}" for i in range(200))
    server.queue(Reply(script=Script(text=words), delay=0.05))
    before = len(server.requests)
    url = server.base_url_for("openai")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rxtokens", "run", f"testing base_url={url} prompt=Hi"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        first = os.read(proc.stdout.fileno(), 65536)  # blocks until the first token is printed
        assert first.startswith(b"word0")
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    printed = (first + rest).decode()
    assert proc.returncode == 130, err.decode()
    assert printed.strip()
    assert words.startswith(printed.strip())
    assert len(printed.strip()) < len(words)
    assert "-- interrupted: request cancelled after" in err.decode()
    record = server.requests[before]
    assert record.ended.wait(10)
    assert record.disconnected
    assert not record.completed
    assert record.units_sent < record.units_total


def test_errors_exit_with_2_and_show_the_caret() -> None:
    result = rxtokens("run", "testing prompt=hi ! redact pattern='('")
    assert result.returncode == 2
    assert "operators[0] redact: pattern: not a valid regular expression" in result.stderr
    assert result.stderr.splitlines()[-1].endswith("^")


def test_stream_errors_exit_with_1_and_keep_the_partial_text(
    server: ProviderServer, capsys: pytest.CaptureFixture[str]
) -> None:
    script = Script(text="Partial answer that never ends")
    events = encode("openai_chat", script, include_usage=True)
    server.queue(Reply(script=script, drop_after=len(b"".join(events[:3])) + 5))
    url = server.base_url_for("openai")
    assert main(["run", f"testing base_url={url} prompt=Hi"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("Partial")
    assert "-- failed: TruncatedStreamError" in err


def test_ops_spec_and_schema_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ops"]) == 0
    listing = capsys.readouterr().out
    for expected in ("redact", "pattern: str required", "testing", "preset", "safe:", "jsonl"):
        assert expected in listing
    assert main(["ops", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"operators", "presets", "providers", "sinks"}
    assert main(["spec", "openai:gpt-4o-mini prompt='Tell me a joke' ! smooth delay=0.02"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["source"]["model"] == "gpt-4o-mini"
    assert main(["spec", "--launch", "openai:gpt-4o-mini prompt='a b'"]) == 0
    assert capsys.readouterr().out == "openai model=gpt-4o-mini prompt='a b'\n"
    assert main(["spec-schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "rxtokens pipeline"
    assert main(["run", "missing.json"]) == 2
    assert "no such spec file" in capsys.readouterr().err


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_only_when_stderr_is_a_terminal_and_stdout_is_not() -> None:
    assert _Terminal(io.StringIO(), FakeTTY(), json_lines=False, quiet=False).progress
    assert not _Terminal(FakeTTY(), FakeTTY(), json_lines=False, quiet=False).progress
    assert _Terminal(FakeTTY(), FakeTTY(), json_lines=True, quiet=False).progress
    assert not _Terminal(io.StringIO(), io.StringIO(), json_lines=False, quiet=False).progress
    err = FakeTTY()
    terminal = _Terminal(io.StringIO(), err, json_lines=False, quiet=False)
    terminal.show_progress("... streaming")
    terminal.clear_progress()
    assert err.getvalue() == "\r\x1b[2K... streaming\r\x1b[2K"


def snapshot(**fields: Any) -> MetricsSnapshot:
    base: dict[str, Any] = dict.fromkeys(MetricsSnapshot.__dataclass_fields__)
    base.update(
        elapsed=2.5, time_to_first_token=0.25, tokens=10, chunks=8, characters=40, bytes=40,
        content_tokens=8, tokens_per_second=4.0, usage_estimated=False, itl_samples=0, errors=0,
        done=True,
    )  # fmt: skip
    base.update(fields)
    return MetricsSnapshot(**base)


def test_summary_and_progress_lines() -> None:
    completion = Completion(text="Hi", finish_reason="stop", usage=Usage(3, 8))
    assert summary_line("done", completion, snapshot()) == (
        "-- done | finish stop | usage 3 in / 8 out | time to first token 250 ms | "
        "4.0 tokens/s | 2.50 s total"
    )
    assert summary_line("interrupted", None, snapshot(time_to_first_token=None)) == (
        "-- interrupted | 8 tokens received | time to first token - | 4.0 tokens/s | 2.50 s total"
    )
    assert progress_line(snapshot()) == "... streaming: 8 tokens | 40 chars | 2.5 s | 4.0 tokens/s"


def test_progress_line_on_a_terminal_stderr_for_long_runs(server: ProviderServer) -> None:
    import pty

    words = " ".join(f"w{i}" for i in range(60))
    server.queue(Reply(script=Script(text=words), delay=0.03))  # about 2 s: a "long" run
    url = server.base_url_for("openai")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rxtokens", "run", f"testing base_url={url} prompt=Hi"],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=ENV,
    )
    os.close(slave)
    seen = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        out, _ = proc.communicate(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert out.decode() == words + "\n"
    terminal = seen.decode()
    assert "\r\x1b[2K... streaming: " in terminal
    assert terminal.rstrip().splitlines()[-1].split("\x1b[2K")[-1].startswith("-- done")


def test_tiny_model_then_demo_with_it_as_the_readme_says(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    model = tmp_path / "tiny.gguf"
    written = rxtokens("tiny-model", str(model))
    assert written.returncode == 0, written.stderr
    assert model.stat().st_size > 100_000
    assert "gibberish by design" in written.stderr
    assert f"rxtokens demo --model {model}" in written.stderr
    result = rxtokens("demo", "--model", str(model), "--max-tokens", "8", "--json")
    assert result.returncode == 0, result.stderr
    tokens = [token_from_json(line) for line in result.stdout.splitlines()]
    usage = [t for t in tokens if isinstance(t, Usage)]
    # max_tokens, plus at most 3 while a multi-byte character is unfinished (see llama.py)
    assert 8 <= (usage[-1].output_tokens or 0) <= 11
    assert "local model" in result.stderr
    assert "-- done | finish length | usage " in result.stderr


def test_tiny_model_without_gguf_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "rxtokens.testing.tiny_model", None)
    assert main(["tiny-model", str(tmp_path / "t.gguf")]) == 1
    assert "pip install 'rxtokens[local]'" in capsys.readouterr().err
    assert not (tmp_path / "t.gguf").exists()


def test_demo_live_without_a_key_says_which_variable_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert main(["demo", "--live", "--provider", "anthropic"]) == 2
    assert "--live needs an API key: set ANTHROPIC_API_KEY" in capsys.readouterr().err


def test_run_reads_the_spec_from_stdin(
    server: ProviderServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server.queue(Script(text="From stdin"))
    spec = f"testing base_url={server.base_url_for('openai')} prompt=Hi ! preset name=low_latency"
    monkeypatch.setattr(sys, "stdin", io.StringIO(spec))
    assert main(["run", "-", "--quiet"]) == 0
    assert capsys.readouterr() == ("From stdin\n", "")


def test_serve_delegates_to_the_server_options(capsys: pytest.CaptureFixture[str]) -> None:
    from rxtokens.cli import main

    with pytest.raises(SystemExit) as info:
        main(["serve", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--upstream" in out
    assert "--allow-specs" in out


def test_demo_with_a_missing_model_says_only_that(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["demo", "--model", str(tmp_path / "none.gguf")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert "rxtokens demo: streaming" not in err  # no banner before the error
