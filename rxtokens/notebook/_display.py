"""`StreamDisplay`: the live display of one stream in a cell (see `rxtokens.notebook`)."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import math
import sys
import threading
from collections.abc import Generator
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, SingleAssignmentDisposable

from ..aio import ThreadSafeObserver
from ..completion import CompletionBuilder, attach_partial
from ..errors import ConfigError
from ..operators._scheduling import clock_of, default_scheduler, schedule_at
from ..tokens import (
    Choice,
    Completion,
    Finish,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._events import (
    _CONTENT_KINDS,
    _close_fences,
    _Event,
    _event_for,
    _fmt_seconds,
    _import_ipython_display,
    _quote,
    _Section,
    _shell_active,
)

log = logging.getLogger("rxtokens.notebook")

_get_running_loop = asyncio._get_running_loop


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
