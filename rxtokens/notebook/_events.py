"""What the live display shows besides the text: tool calls, inflight events, sections."""

from __future__ import annotations

import html
import importlib
import json
import re
from typing import Any

from ..errors import ProviderNotInstalledError
from ..operators._aggregate import CompletionBuilder
from ..tokens import (
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

_CONTENT_KINDS = (TextDelta, ReasoningDelta, RefusalDelta, ToolCallDelta, ToolCall)
_FENCE = re.compile(r"^[ ]{0,3}(`{3,}|~{3,})", re.M)


def _import_ipython_display() -> Any:
    try:
        return importlib.import_module("IPython.core.display_functions")
    except ImportError:
        raise ProviderNotInstalledError("ipython", "notebook") from None


def _shell_active() -> bool:
    """Whether an IPython shell exists (else `display` would only print)."""
    try:
        from IPython.core.interactiveshell import InteractiveShell
    except ImportError:
        return False
    return bool(InteractiveShell.initialized())


# --------------------------------------------------------------------------- rendering


def _fmt_seconds(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2f} s"
    return f"{seconds:.1f} s"


def _short(value: Any, limit: int = 200) -> str:
    """Compact JSON (or str) of `value`, cut at `limit` characters."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
        except (TypeError, ValueError):
            text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _close_fences(markdown: str) -> str:
    """Close an unterminated code fence (a frame cut in the middle of a code block)."""
    opened: str | None = None
    for match in _FENCE.finditer(markdown):
        fence = match.group(1)
        if opened is None:
            opened = fence
        elif fence[0] == opened[0] and len(fence) >= len(opened):
            opened = None
    if opened is None:
        return markdown
    return markdown + ("\n" if not markdown.endswith("\n") else "") + opened


def _quote(text: str, mark: str) -> str:
    """`text` as a Markdown block quote whose first line starts with `mark`."""
    lines = text.split("\n")
    return "\n".join(("> " + mark + " " if i == 0 else "> ") + line for i, line in enumerate(lines))


class _Event:
    """One line of the tools section: a tool call (growing) or an inflight event."""

    __slots__ = ("args", "complete", "kind", "name", "payload")

    def __init__(self, kind: str, name: str, args: str = "", payload: Any = None) -> None:
        self.kind = kind
        self.name = name
        self.args = args
        self.payload = payload
        self.complete = kind != "call"

    def markdown(self) -> str:
        name = html.escape(self.name)
        if self.kind == "call":
            args = html.escape(_short(self.args, 300))
            more = "" if self.complete else " …"
            return f"🔧 **{name}**(<code>{args}</code>){more}"
        return self.payload_markdown(name)

    def payload_markdown(self, name: str) -> str:
        p = self.payload
        if self.kind == "tool_result":
            if getattr(p, "error", None):
                return f"↩️ **{name}** failed: {html.escape(_short(p.error))}"
            return f"↩️ **{name}** → <code>{html.escape(_short(getattr(p, 'result', None)))}</code>"
        if self.kind == "intent":
            confidence = getattr(p, "confidence", None)
            shown = f" ({confidence:.0%})" if isinstance(confidence, float) else ""
            evidence = getattr(p, "evidence", "")
            quoted = f": “{html.escape(_short(evidence, 80))}”" if evidence else ""
            return f"🎯 intent **{name}**{shown}{quoted}"
        if self.kind == "action_result":
            if getattr(p, "error", None):
                return f"⚡ **{name}** on “{html.escape(p.match)}” failed: {html.escape(p.error)}"
            value = html.escape(_short(getattr(p, "value", None)))
            return (
                f"⚡ **{name}** on “{html.escape(getattr(p, 'match', ''))}” → <code>{value}</code>"
            )
        if self.kind == "step":
            return f"⏭️ step {html.escape(str(getattr(p, 'step', '?')))} ended: {name}"
        return f"• {html.escape(self.kind)}: <code>{html.escape(_short(self.args))}</code>"

    def plain(self) -> str:
        if self.kind == "call":
            return f"tool call {self.name}({_short(self.args, 300)}){'' if self.complete else ' …'}"
        p = self.payload
        if self.kind == "tool_result":
            if getattr(p, "error", None):
                return f"tool result {self.name}: error {_short(p.error)}"
            return f"tool result {self.name} -> {_short(getattr(p, 'result', None))}"
        if self.kind == "intent":
            return f"intent {self.name}"
        if self.kind == "action_result":
            return f"action {self.name} on {getattr(p, 'match', '')!r}"
        if self.kind == "step":
            return f"step {getattr(p, 'step', '?')} ended: {self.name}"
        return f"{self.kind}: {_short(self.args)}"


class _Section:
    """One response of the stream: its text and its events (run_agent streams several)."""

    __slots__ = ("builder", "calls", "events", "usage")

    def __init__(self) -> None:
        self.builder = CompletionBuilder()
        self.events: list[_Event] = []
        self.calls: dict[tuple[int, int], _Event] = {}
        self.usage: Usage | None = None


def _event_for(token: Any) -> _Event | None:
    """An `_Event` for an inflight token kind (duck-typed on ``type``), else None."""
    kind = getattr(type(token), "type", None)
    if kind == "tool_result":
        return _Event(kind, str(token.name), payload=token)
    if kind == "intent":
        return _Event(kind, str(token.name), payload=token)
    if kind == "action_result":
        return _Event(kind, str(token.action), payload=token)
    if kind == "step":
        return _Event(kind, str(token.reason), payload=token)
    if isinstance(kind, str) and hasattr(token, "_fields"):
        fields = dict(zip(token._fields, token, strict=False))
        return _Event(kind, kind, args=_short(fields))
    return None
