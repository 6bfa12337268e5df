"""Sinks of a spec (`TokenSink`) and the built-in ones: ``stdout``, ``jsonl``, ``textfile``."""

from __future__ import annotations

import sys
from typing import IO, Any, Protocol, runtime_checkable

from ..tokens import token_to_json

__all__ = ["JsonlSink", "StdoutSink", "TextFileSink", "TokenSink"]


@runtime_checkable
class TokenSink(Protocol):
    """A sink of a spec: receives each token, is closed at the end.

    Any object with these two methods is one; the built-in sinks also inherit
    the no-op `close`.
    """

    def on_next(self, token: Any) -> None:  # pragma: no cover (interface)
        """Called with each token."""

    def close(self) -> None:
        """Called once at the end (completed, failed or cancelled)."""


class StdoutSink(TokenSink):
    """Write the visible text (`TextDelta` of choice 0) to standard output as it arrives."""

    def __init__(self) -> None:
        self._out = sys.stdout

    def on_next(self, token: Any) -> None:
        if token.type == "text" and token.index == 0:
            self._out.write(token.text)
            self._out.flush()


class JsonlSink(TokenSink):
    """Append every token to a file as one JSON object per line (`token_to_json`).

    Args:
        path: the file (created, appended to).
    """

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close)

    def on_next(self, token: Any) -> None:
        self._file.write(token_to_json(token) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TextFileSink(TokenSink):
    """Write the visible text (choice 0) to a file as it arrives.

    Args:
        path: the file (created or truncated).
    """

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed by close)

    def on_next(self, token: Any) -> None:
        if token.type == "text" and token.index == 0:
            self._file.write(token.text)
            self._file.flush()

    def close(self) -> None:
        self._file.close()
