"""Rich reprs: HTML chips for tokens, HTML / Markdown for a `Completion`."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any

from ..tokens import (
    Completion,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    _Kind,
)
from ._events import _quote, _short

# --------------------------------------------------------------------------- rich reprs

_CHIP = (
    "display:inline-block;margin:1px;padding:0 3px;border-radius:3px;"
    "font-family:monospace;white-space:pre;border:1px solid #bbb;"
)
_COLOURS = {
    "text": "#e8f0fe",
    "reasoning": "#f3e8fd",
    "refusal": "#fde8e8",
    "tool_call_delta": "#fff4e0",
    "tool_call": "#ffe9c2",
    "usage": "#eeeeee",
    "finish": "#e3f5e1",
}


def _visible(text: str) -> str:
    return html.escape(text).replace("\n", "↵\n").replace("\t", "⇥")


def token_html(token: Any) -> str:
    """A token as a small HTML chip: its kind and, for text, the exact text (↵ for newlines).

    Example:
        >>> "Hel" in token_html(TextDelta("Hel"))
        True
    """
    kind = str(getattr(type(token), "type", type(token).__name__))
    colour = _COLOURS.get(kind, "#f6f6f6")
    title = html.escape(repr(token), quote=True)
    if isinstance(token, TextDelta | ReasoningDelta | RefusalDelta):
        body = _visible(token.text)
    elif type(token) is ToolCallDelta:
        name = f"{token.name} " if token.name else ""
        body = html.escape(name) + _visible(token.arguments)
    elif type(token) is ToolCall:
        body = html.escape(f"{token.name}({_short(token.arguments)})")
    elif type(token) is Usage:
        body = html.escape(f"in={token.input_tokens} out={token.output_tokens}")
    elif type(token) is Finish:
        body = html.escape(str(token.reason))
    elif hasattr(token, "_fields"):
        body = html.escape(_short(dict(zip(token._fields, token, strict=False)), 120))
    else:
        body = html.escape(repr(token))
    label = f'<span style="font-size:70%;opacity:.6">{html.escape(kind)}</span> '
    style = f"{_CHIP}background:{colour}"
    return f'<span class="rxt-token" style="{style}" title="{title}">{label}{body}</span>'


def tokens_html(tokens: Iterable[Any]) -> str:
    """Tokens side by side as chips: see where a stream was cut.

    Example:
        >>> tokens_html([TextDelta("Hel"), TextDelta("lo")]).count('class="rxt-token"')
        2
    """
    chips = "".join(token_html(t) for t in tokens)
    return f'<div class="rxt-tokens" style="line-height:1.9">{chips}</div>'


def completion_markdown(completion: Completion) -> str:
    """A `Completion` as Markdown: the text, then reasoning, tool calls, finish reason and usage.

    Example:
        >>> completion_markdown(Completion(text="Hi", finish_reason="stop")).startswith("Hi")
        True
    """
    parts: list[str] = []
    choices = completion.choices if len(completion.choices) > 1 else []
    if choices:
        for choice in choices:
            parts.append(f"**choice {choice.index}** ({choice.finish_reason})\n\n{choice.text}")
    elif completion.text:
        parts.append(completion.text)
    if completion.reasoning:
        parts.append(_quote(completion.reasoning, "💭"))
    if completion.refusal:
        parts.append(_quote(completion.refusal, "🚫"))
    for call in completion.tool_calls:
        args = html.escape(json.dumps(call.arguments, ensure_ascii=False))
        parts.append(f"- 🔧 **{html.escape(call.name)}**(<code>{args}</code>)")
    parts.append("---\n" + _summary(completion))
    return "\n\n".join(parts)


def _summary(completion: Completion) -> str:
    fields = [f"finish reason: {completion.finish_reason}"]
    usage = completion.usage
    if usage is not None:
        estimated = " (estimated)" if usage.estimated else ""
        fields.append(f"tokens: {usage.input_tokens} in, {usage.output_tokens} out{estimated}")
    fields.append(f"{len(completion.text)} characters")
    return " · ".join(fields)


def completion_html(completion: Completion) -> str:
    """A `Completion` as an HTML card (text, reasoning folded, tool calls, finish reason, usage).

    Example:
        >>> "&lt;b&gt;" in completion_html(Completion(text="<b>"))
        True
    """
    style = "border:1px solid #ccc;border-radius:6px;padding:8px;margin:2px 0;"
    rows: list[str] = []
    texts = completion.choices if len(completion.choices) > 1 else []
    if texts:
        for choice in texts:
            rows.append(
                f"<div><b>choice {choice.index}</b> ({html.escape(str(choice.finish_reason))})"
                f'<div style="white-space:pre-wrap">{html.escape(choice.text)}</div></div>'
            )
    else:
        rows.append(f'<div style="white-space:pre-wrap">{html.escape(completion.text)}</div>')
    if completion.reasoning:
        rows.append(
            "<details><summary>💭 reasoning</summary>"
            f'<div style="white-space:pre-wrap">{html.escape(completion.reasoning)}</div></details>'
        )
    if completion.refusal:
        rows.append(f"<div>🚫 refusal: {html.escape(completion.refusal)}</div>")
    if completion.tool_calls:
        items = "".join(
            f"<li>🔧 <b>{html.escape(call.name)}</b>"
            f"(<code>{html.escape(json.dumps(call.arguments, ensure_ascii=False))}</code>)</li>"
            for call in completion.tool_calls
        )
        rows.append(f"<ul>{items}</ul>")
    rows.append(
        f'<div style="font-size:85%;opacity:.7;border-top:1px solid #ddd;margin-top:4px">'
        f"{html.escape(_summary(completion))}</div>"
    )
    return f'<div class="rxt-completion" style="{style}">{"".join(rows)}</div>'


def register_formatters(shell: Any = None) -> bool:
    """Register the HTML / Markdown reprs of `Completion` and the token chips with IPython.

    Called when this module is imported inside IPython; call it again after
    creating a new shell. Returns False when there is no IPython shell.

    Example:
        >>> register_formatters()  # outside IPython: nothing to do
        False
    """
    if shell is None:
        try:
            from IPython.core.getipython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
        if shell is None:
            return False
    formatters = shell.display_formatter.formatters
    formatters["text/html"].for_type(Completion, completion_html)
    formatters["text/markdown"].for_type(Completion, completion_markdown)
    # every token kind, including the ones registered later, derives from _Kind
    formatters["text/html"].for_type(_Kind, token_html)
    return True


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext rxtokens.notebook``: register the rich reprs."""
    register_formatters(ipython)
