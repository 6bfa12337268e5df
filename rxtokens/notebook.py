"""Jupyter display: a token stream rendered live in a cell, and rich reprs of results.

`display_stream` shows a stream as Markdown in the cell's output and updates it in
place (one ``display(..., display_id=True)``, then ``update``) at a bounded frame
rate: deltas that arrive between two frames are coalesced into the next one, so a
fast stream costs at most `fps` updates per second however many tokens it has. Under
the text: the tool calls and other inflight events (intents, tool results) as they
arrive, and a status line (tokens, time to first token, tokens per second, the
finish reason or the error). The handle it returns is awaitable::

    completion = await display_stream(stream("testing:demo", "Hi"))

Threads: when a loop is running in the calling thread (a notebook cell always has
one), every notification is handed over to that loop's thread
(`rxtokens.aio.ThreadSafeObserver`) and the frame timer runs on it too, so
sources that emit on worker threads (llama.cpp) are displayed safely.

Rich reprs: importing this module inside IPython registers HTML / Markdown
formatters for `Completion` and HTML chips for every token kind
(`register_formatters`; also ``%load_ext rxtokens.notebook``). `token_html`,
`tokens_html`, `completion_html` and `completion_markdown` are the plain functions.

IPython is an optional dependency (``pip install 'rxtokens[notebook]'``); without an
IPython shell, `display_stream` prints the final text once instead of updating.

Example:
    >>> from rxtokens.notebook import display_stream  # doctest: +SKIP
    >>> completion = await display_stream(tokens, fps=15)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import importlib
import json
import logging
import math
import re
import sys
import threading
from collections.abc import Generator, Iterable
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, SingleAssignmentDisposable

from .aio import ThreadSafeObserver
from .broadcast import Broadcast
from .completion import CompletionBuilder, attach_partial
from .errors import ConfigError, ProviderNotInstalledError
from .operators._pacing import clock_of, default_scheduler, schedule_at
from .tokens import (
    Choice,
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

__all__ = [
    "StreamDisplay",
    "completion_html",
    "completion_markdown",
    "display_stream",
    "load_ipython_extension",
    "register_formatters",
    "token_html",
    "tokens_html",
]

log = logging.getLogger("rxtokens.notebook")

_get_running_loop = asyncio._get_running_loop

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


# --------------------------------------------------------------------------- the display


class StreamDisplay:
    """The live display of one stream; what `display_stream` returns.

    Awaitable: ``await handle`` gives the final `Completion` (or raises the
    stream's error, whose ``.partial`` holds the text received; or
    `asyncio.CancelledError` after `cancel`). Cancelling the ``await`` (interrupting
    the cell) cancels the stream.

    Attributes:
        updates: how many times the output was published (the first display included).
    """

    def __init__(
        self,
        *,
        fps: float,
        show_status: bool,
        show_tools: bool,
        scheduler: abc.SchedulerBase | None,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self._interval = 1.0 / fps
        self._show_status = show_status
        self._show_tools = show_tools
        self._loop = loop
        self._scheduler = scheduler if scheduler is not None else default_scheduler()
        self._clock = clock_of(self._scheduler)
        self._lock = threading.RLock()
        self._builder = CompletionBuilder()  # the whole stream (what `await` returns)
        self._sections = [_Section()]  # one per response (run_agent streams several)
        self._content = 0
        self._finish: str | None = None
        self._start = self._clock()
        self._first: float | None = None
        self._last: float | None = None
        self._end: float | None = None
        self._last_publish = -math.inf
        self._timer: abc.DisposableBase | None = None
        self._dirty = False
        self._state = "waiting"  # waiting, streaming, completed, error, cancelled
        self._closing = False  # the end arrived; the final frame may still be pending
        self._completion: Completion | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._subscription = SingleAssignmentDisposable()
        self._handle: Any = None  # IPython DisplayHandle, or None without a shell
        self.updates = 0

    def __repr__(self) -> str:
        return (
            f"<StreamDisplay {self._state}: {len(self.text)} characters, "
            f"{self._content} tokens, {self.updates} updates>"
        )

    def _ipython_display_(self) -> None:
        """Shown already (live): evaluating the handle in a cell adds nothing."""

    # ------------------------------------------------------------------ public state

    @property
    def done(self) -> bool:
        """True once the final frame is shown and the result is set."""
        return self._done.is_set()

    @property
    def text(self) -> str:
        """The text of choice 0 received so far."""
        return self.completion_so_far().text

    @property
    def error(self) -> BaseException | None:
        """The stream's error, if it failed."""
        return self._error

    def completion_so_far(self) -> Completion:
        """Everything received so far (unfinished tool calls: best effort)."""
        with self._lock:
            if self._completion is not None:
                return self._completion
            return self._builder.build(strict=False)

    def markdown(self) -> str:
        """The Markdown of the current frame."""
        with self._lock:
            return self._render_markdown()

    def plain(self) -> str:
        """The plain text of the current frame."""
        with self._lock:
            return self._render_plain()

    def status(self) -> str:
        """The status line (plain text)."""
        with self._lock:
            return self._status_text()

    def result(self, timeout: float | None = None) -> Completion:
        """Block until the end (from synchronous code, worker-thread sources) and return it.

        Raises:
            ConfigError: called on the thread of the loop that runs the stream
                before it ended (it would wait forever): ``await`` the handle instead.
            TimeoutError: not finished within `timeout` seconds.
            StreamError: the stream failed.
        """
        if not self._done.is_set():
            if self._loop is not None and _get_running_loop() is self._loop:
                raise ConfigError(
                    "StreamDisplay.result() would block the event loop that runs the stream; "
                    "use `await handle` instead"
                )
            if not self._done.wait(timeout):
                raise TimeoutError(f"the stream did not end within {timeout} s")
        if self._state == "cancelled":
            raise asyncio.CancelledError("the display was cancelled")
        if self._error is not None:
            raise self._error
        assert self._completion is not None
        return self._completion

    def __await__(self) -> Generator[Any, None, Completion]:
        return self._wait().__await__()

    async def _wait(self) -> Completion:
        if not self._done.is_set():
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            with self._lock:
                pending = not self._done.is_set()
                if pending:
                    self._waiters.append((loop, future))
            if pending:
                try:
                    await future
                except asyncio.CancelledError:
                    self.cancel()
                    raise
        return self.result()

    def cancel(self) -> bool:
        """Stop the stream (dispose the subscription) and show what arrived; False if it ended."""
        with self._lock:
            if self._closing:
                return False
            self._subscription.dispose()
            self._close("cancelled", None)
            return True

    # ------------------------------------------------------------------ observer side

    def _start_display(self) -> None:
        if _shell_active():
            display_functions = _import_ipython_display()
            self._handle = display_functions.display(self._bundle(), raw=True, display_id=True)
            self._count_publish()

    def _subscribe(self, source: Observable[Any]) -> None:
        observer: abc.ObserverBase[Any] = reactivex.Observer(
            self._on_next, self._on_error, self._on_completed
        )
        safe: ThreadSafeObserver[Any] | None = None
        if self._loop is not None:
            safe = ThreadSafeObserver(observer, self._loop)
            observer = safe
        try:
            subscription = source.subscribe(observer)
        except Exception as exc:
            self._on_error(exc)
            raise
        if safe is not None:
            self._subscription.disposable = CompositeDisposable(safe, subscription)
        else:
            self._subscription.disposable = subscription

    def _on_next(self, token: Any) -> None:
        with self._lock:
            if self._closing:
                return
            try:
                self._record(token)
            except Exception as exc:  # a malformed token: fail like aggregate() would
                log.debug("display_stream: cannot record %r", token, exc_info=True)
                self._subscription.dispose()
                self._on_error(exc)
                return
            self._dirty = True
            self._frame()

    def _record(self, token: Any) -> None:
        now = self._clock()
        self._builder.add(token)
        section = self._sections[-1]
        section.builder.add(token)
        if isinstance(token, _CONTENT_KINDS):
            self._content += 1
            if self._first is None:
                self._first = now
                self._state = "streaming"
            self._last = now
        kind = type(token)
        if kind is ToolCallDelta:
            key = (token.choice, token.index)
            event = section.calls.get(key)
            if event is None or event.complete:
                event = _Event("call", token.name or "?", token.arguments)
                section.calls[key] = event
                section.events.append(event)
            else:
                if token.name and event.name == "?":
                    event.name = token.name
                event.args += token.arguments
        elif kind is ToolCall:
            key = (token.choice, token.index)
            event = section.calls.get(key)
            args = json.dumps(token.arguments, ensure_ascii=False)
            if event is None or event.complete:
                event = _Event("call", token.name, args)
                section.events.append(event)
            else:
                event.name, event.args = token.name, args
            event.complete = True
            section.calls[key] = event
        elif kind is Usage:
            section.usage = token
        elif kind is Finish:
            if token.index == 0:
                self._finish = token.reason
        elif not isinstance(token, _CONTENT_KINDS):
            event = _event_for(token)
            if event is not None:
                section.events.append(event)
                if event.kind == "step":  # run_agent: the next response starts
                    self._sections.append(_Section())

    def _on_error(self, error: Exception) -> None:
        with self._lock:
            if self._closing:
                return
            self._close("error", attach_partial(error, self._builder))

    def _on_completed(self) -> None:
        with self._lock:
            if self._closing:
                return
            try:
                completion = self._builder.build()
            except Exception as exc:  # invalid tool arguments (StreamDecodeError)
                self._close("error", exc)
                return
            self._completion = completion
            self._close("completed", None)

    # ------------------------------------------------------------------ frames

    def _close(self, state: str, error: BaseException | None) -> None:
        """The end (called with the lock held): show the final frame at the next slot."""
        self._closing = True
        self._state = state
        self._error = error
        self._end = self._clock()
        self._dirty = True
        if self._timer is not None:
            self._timer.dispose()
            self._timer = None
        self._frame()

    def _frame(self) -> None:
        """Publish now if a frame slot is free, else make sure a timer will (lock held)."""
        now = self._clock()
        due = self._last_publish + self._interval
        if now >= due:
            self._publish()
        elif self._timer is None:
            self._timer = schedule_at(self._scheduler, due, now, self._on_timer)

    def _on_timer(self, _due: float) -> None:
        with self._lock:
            self._timer = None
            if self._dirty:
                self._publish()

    def _publish(self) -> None:
        self._dirty = False
        final = self._closing
        try:
            if self._handle is not None:
                self._handle.update(self._bundle(), raw=True)
                self._count_publish()
            elif final:
                print(self._render_plain(), file=sys.stdout)
        except Exception:  # the display must never break the stream
            log.warning("display_stream: publishing the frame failed", exc_info=True)
        if final:
            self._resolve()

    def _count_publish(self) -> None:
        self.updates += 1
        self._last_publish = self._clock()

    def _resolve(self) -> None:
        self._done.set()
        waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            if _get_running_loop() is loop:
                _wake(future)
            else:
                with contextlib.suppress(RuntimeError):  # that loop is closed
                    loop.call_soon_threadsafe(_wake, future)

    # ------------------------------------------------------------------ content

    def _bundle(self) -> dict[str, str]:
        return {"text/markdown": self._render_markdown(), "text/plain": self._render_plain()}

    def _render_markdown(self) -> str:
        parts: list[str] = []
        for section in self._sections:
            completion = section.builder.build(strict=False)
            choices = completion.choices or [
                Choice(0, completion.text, completion.reasoning, completion.refusal)
            ]
            several = len(choices) > 1
            for choice in choices:
                body: list[str] = []
                reasoning, text, refusal = choice.reasoning, choice.text, choice.refusal
                if several:
                    body.append(f"**choice {choice.index}**")
                if reasoning:
                    body.append(_quote(reasoning, "💭"))
                if text:
                    body.append(_close_fences(text))
                if refusal:
                    body.append(_quote(refusal, "🚫"))
                if body:
                    parts.append("\n\n".join(body))
            if self._show_tools and section.events:
                parts.append("\n".join(f"- {event.markdown()}" for event in section.events))
        if self._show_status:
            parts.append("---\n" + self._status_markdown())
        return "\n\n".join(parts)

    def _render_plain(self) -> str:
        parts: list[str] = []
        for section in self._sections:
            completion = section.builder.build(strict=False)
            if completion.reasoning:
                parts.append("[reasoning] " + completion.reasoning)
            if completion.text:
                parts.append(completion.text)
            if completion.refusal:
                parts.append("[refusal] " + completion.refusal)
            for choice in completion.choices[1:]:
                parts.append(f"[choice {choice.index}] {choice.text}")
            if self._show_tools:
                parts.extend(event.plain() for event in section.events)
        if self._show_status:
            parts.append(self._status_text())
        return "\n\n".join(parts)

    def _status_fields(self) -> list[str]:
        fields: list[str] = []
        usages = [
            section.usage
            for section in self._sections
            if section.usage is not None and section.usage.output_tokens is not None
        ]
        if usages:  # provider-reported, summed over the responses
            tokens = sum(usage.output_tokens or 0 for usage in usages)
            estimated = any(usage.estimated for usage in usages)
            fields.append(f"{tokens} tokens" + (" (estimated)" if estimated else ""))
        else:
            tokens = self._content
            fields.append(f"{tokens} tokens" if self._content else "no tokens yet")
        if self._first is not None:
            fields.append(f"first token {_fmt_seconds(self._first - self._start)}")
            if self._last is not None and self._last > self._first and tokens > 1:
                fields.append(f"{tokens / (self._last - self._first):.1f} tokens/s")
        end = self._end if self._end is not None else self._clock()
        fields.append(f"{_fmt_seconds(max(0.0, end - self._start))} total")
        return fields

    def _headline(self) -> tuple[str, str]:
        state = self._state
        if state == "completed":
            reason = self._finish
            return "✅", "finished" + (f": {reason}" if reason else "")
        if state == "error":
            error = self._error
            name = type(error).__name__
            message = str(error).splitlines()[0] if str(error) else ""
            received = " (partial text above)" if self._content else ""
            return "❌", f"{name}: {message}{received}"
        if state == "cancelled":
            return "⏹️", "cancelled"
        if state == "streaming":
            return "⏳", "streaming"
        return "⏳", "waiting for the first token"

    def _status_text(self) -> str:
        _, headline = self._headline()
        return " · ".join([headline, *self._status_fields()])

    def _status_markdown(self) -> str:
        icon, headline = self._headline()
        fields = " · ".join(self._status_fields())
        return f"{icon} **{html.escape(headline)}** · {fields}"


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def display_stream(
    source: Observable[Any] | Broadcast[Any],
    *,
    fps: float = 15,
    show_status: bool = True,
    show_tools: bool = True,
    scheduler: abc.SchedulerBase | None = None,
) -> StreamDisplay:
    """Render a token stream live in the cell output; await the handle for the `Completion`.

    Subscribes at once and shows the text as Markdown, updated in place. Tokens
    are coalesced into frames: the output is published at most `fps` times per
    second (the first display included), and the final frame (the complete
    text with the finish reason, or the partial text with the error) always
    follows the end of the stream, at the next free slot.

    With a loop running in the calling thread (any notebook cell), notifications
    from worker threads are handed over to it, so llama.cpp and other threaded
    sources are safe. ``await`` the handle to wait for the end; without ``await``
    the cell finishes at once and the output keeps updating while the stream
    runs on the kernel's loop. Without a loop (a plain script), use
    ``handle.result()``; without an IPython shell the final frame is printed.

    Args:
        source: a token Observable (subscribed once) or a `Broadcast` (one more subscriber).
        fps: most output updates per second (> 0).
        show_status: show the status line (tokens, time to first token,
            tokens/s, finish reason or error).
        show_tools: show tool calls (as their arguments stream in) and inflight
            events (intents, tool results, action results, agent steps).
        scheduler: frame timers and the clock (default: the running loop, else
            timer threads; a ``TestScheduler`` in tests).

    Returns:
        The `StreamDisplay` handle (awaitable; `StreamDisplay.cancel` stops the stream).

    Raises:
        ConfigError: an invalid `fps` or `source`.
        ProviderNotInstalledError: IPython is missing (``pip install 'rxtokens[notebook]'``).

    Example:
        >>> completion = await display_stream(stream("testing:demo", "Hi"))  # doctest: +SKIP
    """
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not fps > 0:
        raise ConfigError(f"fps must be a number > 0, got {fps!r}")
    if math.isinf(fps):
        raise ConfigError("fps must be finite; use a large value such as 1000 for no limit")
    if isinstance(source, Broadcast):
        observable: Observable[Any] = source.observable
    elif isinstance(source, abc.ObservableBase):
        observable = source
    else:
        raise ConfigError(
            f"display_stream() needs a token Observable or a Broadcast, got {type(source).__name__}"
        )
    _import_ipython_display()
    handle = StreamDisplay(
        fps=float(fps),
        show_status=show_status,
        show_tools=show_tools,
        scheduler=scheduler,
        loop=_get_running_loop(),
    )
    handle._start_display()
    handle._subscribe(observable)
    return handle


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


with contextlib.suppress(Exception):
    register_formatters()
