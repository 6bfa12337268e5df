"""Bundled recorded-style transcripts: raw SSE bodies exactly as on the wire.

Each transcript ``NAME`` is two files in ``rxtokens/testing/transcripts/``:
``NAME.sse`` (the response body's bytes) and ``NAME.expected.json`` (its wire
format and what decoding it must give: a `Completion`, or an error with the
partial `Completion`). They are rendered from the official SDKs' stream types
by `rxtokens.testing.wire` (`SCRIPTS` below says how) and checked in, so a
change to the encoders never silently changes them.

Example:
    >>> body = load_transcript("anthropic_thinking_tools")
    >>> body.startswith(b"event: message_start\\n")
    True
    >>> load_expected("gemini_text").format
    'gemini'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from ..tokens import Completion
from .wire import Script, ScriptedToolCall, encode, expected_completion

__all__ = ["DIRECTORY", "SCRIPTS", "TRANSCRIPTS", "Expected", "load_expected", "load_transcript"]

DIRECTORY = Path(__file__).with_name("transcripts")
"""Where the ``.sse`` and ``.expected.json`` files live."""

_WEATHER = ScriptedToolCall(
    "get_weather", {"location": "Zürich, CH", "unit": "celsius"}, fragments=5
)
_TIME = ScriptedToolCall("get_time", {"timezone": "Asia/Tōkyō"}, fragments=3)

SCRIPTS: dict[str, tuple[str, Script, dict[str, Any]]] = {
    "openai_chat_text": (
        "openai_chat",
        Script(text="Héllo wörld! Ça va? 日本語のテキスト 🙂🚀 done.", usage=(19, 16), seed=1),
        {"include_usage": True, "obfuscation": True},
    ),
    "openai_chat_tools": (
        "openai_chat",
        Script(tool_calls=[_WEATHER, _TIME], usage=(82, 47), seed=2),
        {"include_usage": True},
    ),
    "openai_chat_n2": (
        "openai_chat",
        Script(text="Deux réponses ☕ en même temps", n=2, usage=(12, 18), seed=3),
        {"include_usage": True},
    ),
    "openai_chat_error_after_200": (
        "openai_chat",
        Script(
            text="Partial ånswer before the",
            error={"type": "server_error", "message": "The server had an error while processing"},
            seed=4,
        ),
        {"include_usage": True, "done_after_error": True},
    ),
    "openai_responses_text": (
        "openai_responses",
        Script(text="Responses API: «streamed» text ✓", usage=(25, 11), seed=5),
        {},
    ),
    "anthropic_thinking_tools": (
        "anthropic",
        Script(
            text="Let me check the wéather.",
            reasoning="The user wants the weather → call get_weather.",
            tool_calls=[_WEATHER],
            usage=(412, 96),
            seed=6,
        ),
        {"ping_every": 4},
    ),
    "gemini_text": (
        "gemini",
        Script(
            text="Gemini streams incrementally: ñandú, Ελληνικά, 🌍.",
            reasoning="Thinking about the answer…",
            usage=(9, 30),
            seed=7,
        ),
        {},
    ),
}
"""Transcript name -> (wire format, script, encoder options) it was rendered from."""

TRANSCRIPTS: tuple[str, ...] = tuple(sorted(SCRIPTS))
"""The names of the bundled transcripts."""


class Expected(NamedTuple):
    """What decoding a transcript must give.

    Attributes:
        format: the wire format (``openai_chat``, ``anthropic`` ...), see `wire.FORMATS`.
        completion: the final `Completion`, or None when the stream fails.
        error: the failure's class name (``"ProviderError"``), or None.
        error_type: the provider's error type, for a `ProviderError`.
        partial: the failure's ``.partial`` `Completion` (what arrived before it).
    """

    format: str
    completion: Completion | None = None
    error: str | None = None
    error_type: str | None = None
    partial: Completion | None = None


def _check(name: str) -> None:
    if name not in SCRIPTS:
        raise KeyError(f"unknown transcript {name!r}; bundled: {list(TRANSCRIPTS)}")


def load_transcript(name: str) -> bytes:
    """The raw body bytes of transcript `name` (one of `TRANSCRIPTS`)."""
    _check(name)
    return (DIRECTORY / f"{name}.sse").read_bytes()


def load_expected(name: str) -> Expected:
    """What decoding transcript `name` must give."""
    _check(name)
    data = json.loads((DIRECTORY / f"{name}.expected.json").read_text("utf-8"))
    completion = data.get("completion")
    partial = data.get("partial")
    return Expected(
        format=data["format"],
        completion=None if completion is None else Completion.from_dict(completion),
        error=data.get("error"),
        error_type=data.get("error_type"),
        partial=None if partial is None else Completion.from_dict(partial),
    )


def _render(name: str) -> tuple[bytes, dict[str, Any]]:
    """The body and the expected JSON of transcript `name`, from its script."""
    fmt, script, options = SCRIPTS[name]
    body = b"".join(encode(fmt, script, **options))
    expected: dict[str, Any] = {"format": fmt}
    if script.error is None:
        expected["completion"] = expected_completion(script, fmt).to_dict()
    else:
        before = Script(
            text=script.text,
            reasoning=script.reasoning,
            refusal=script.refusal,
            n=script.n,
            usage=None,
            seed=script.seed,
        )
        partial = expected_completion(before, fmt)
        expected["error"] = "ProviderError"
        expected["error_type"] = script.error.get("type")
        # Nothing finished before the error: no finish reason in the partial.
        data = partial.to_dict()
        data["finish_reason"] = None
        for choice in data["choices"]:
            choice["finish_reason"] = None
        expected["partial"] = data
    return body, expected


def write_transcripts(directory: Path = DIRECTORY) -> list[Path]:
    """(Re)write every transcript's files from `SCRIPTS`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TRANSCRIPTS:
        body, expected = _render(name)
        sse = directory / f"{name}.sse"
        sse.write_bytes(body)
        exp = directory / f"{name}.expected.json"
        exp.write_text(json.dumps(expected, ensure_ascii=False, indent=2) + "\n", "utf-8")
        written += [sse, exp]
    return written


if __name__ == "__main__":  # python -m rxtokens.testing.transcripts: regenerate the files
    for path in write_transcripts():
        print(path)
