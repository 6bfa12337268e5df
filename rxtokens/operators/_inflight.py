"""Inflight analysis: act on a token stream while it is still streaming.

Three operators share one per-subscription engine, `_Session`:

- ``on_match``: a regex (or predicate) over each choice's text, across token
  boundaries; an action per match, its result as an `ActionResult` token;
- ``detect_intents``: a throttled classifier over the running text, `Intent` tokens;
- ``dispatch_tools``: every complete `ToolCall` runs at once, its result as a
  `ToolResult` token.

The engine passes the tokens through unchanged and without delay, runs the
work (inline, as a task on the event loop, or in a thread), emits the result
tokens when the work is done, and holds back the completion of the stream until
no work is pending. All observer calls go through one re-entrant lock, so results
finished on other threads never interleave with tokens. Disposal cancels pending tasks.

Which event loop: the one running in the subscribing thread. Without one
(a synchronous ``reactivex.of(...)`` pipeline), background work runs on a
per-subscription thread pool (coroutines with `asyncio.run` there), and its
results are delivered on a worker thread.

The regex matching reuses `rxtokens.operators._redact.compile_pattern`: a match
is reported once it is *final*, i.e. no text that may still arrive could change
it (``regex`` partial matching; see that module).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import reactivex
from pydantic_core import to_jsonable_python
from reactivex import Observable, abc
from reactivex.disposable import Disposable, SingleAssignmentDisposable

from ..errors import ConfigError
from ..tokens import (
    ActionResult,
    Finish,
    Intent,
    StepBoundary,
    TextDelta,
    ToolCall,
    ToolResult,
)
from ._redact import PatternSpec, compile_pattern
from ._tools import ToolArgumentsError, ToolRegistry

__all__ = [
    "ActionResult",
    "Intent",
    "KeywordClassifier",
    "KeywordSession",
    "StepBoundary",
    "TextMatch",
    "ToolResult",
    "describe_error",
    "detect_intents_operator",
    "dispatch_tools_operator",
    "jsonable",
    "on_match_operator",
]

# --------------------------------------------------------------------------- helpers


def jsonable(value: Any) -> Any:
    """`value` as JSON-ready data (pydantic models, dataclasses, dates ...; else its str)."""
    try:
        return to_jsonable_python(value, fallback=str)
    except Exception:
        return repr(value)


def describe_error(error: BaseException) -> str:
    """``"TypeName: message"`` (or the type name alone) for error strings in tokens."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _discard(work: Any) -> None:
    """Close a coroutine that will never run (no 'never awaited' warning)."""
    if inspect.iscoroutine(work):
        work.close()


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class _Expired(Exception):
    """Raised into a job's completion when its timeout expired."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"timed out after {timeout:g} s")
        self.timeout = timeout


OnDone: TypeAlias = Callable[[Any, BaseException | None, float], None]
"""Called (under the session lock) with (value, error, elapsed) when a job ends."""

# --------------------------------------------------------------------------- the engine


class _Session:
    """One subscription of an inflight operator: observer, lock, pending work."""

    def __init__(
        self, observer: abc.ObserverBase[Any], *, max_concurrency: int | None = None
    ) -> None:
        self.observer = observer
        self.lock = threading.RLock()
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None
        self.pending = 0
        self.source_done = False
        self.stopped = False
        self.upstream = SingleAssignmentDisposable()
        self.max_concurrency = max_concurrency
        # running tasks -> [started, job]: a job whose task never started is closed on cancel
        self._tasks: dict[asyncio.Task[None], list[Any]] = {}
        self._semaphore: asyncio.Semaphore | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._timers: set[threading.Timer] = set()

    # -- delivery (every observer call holds the lock)

    def emit(self, token: Any) -> None:
        with self.lock:
            if not self.stopped:
                self.observer.on_next(token)

    def fail(self, error: Exception) -> None:
        with self.lock:
            if self.stopped:
                return
            self.stopped = True
            self._cancel()
            self.observer.on_error(error)

    def finish_source(self) -> None:
        with self.lock:
            self.source_done = True
            self._maybe_complete()

    def _maybe_complete(self) -> None:
        if self.source_done and self.pending == 0 and not self.stopped:
            self.stopped = True
            self._cancel()
            self.observer.on_completed()

    def dispose(self) -> None:
        with self.lock:
            self.stopped = True
            self._cancel()

    def _cancel(self) -> None:
        self.upstream.dispose()
        tasks, self._tasks = self._tasks, {}
        loop = self.loop
        for task, (started, job) in tasks.items():
            if not started:
                _discard(job)
            if loop is None or loop.is_closed():
                continue
            if _running_loop() is loop:
                task.cancel()
            else:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(task.cancel)
        timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    # -- background work

    def submit(
        self,
        job: Callable[[], Any] | Awaitable[Any],
        on_done: OnDone,
        *,
        in_thread: bool = False,
        timeout: float | None = None,
        bounded: bool = False,
    ) -> None:
        """Run `job` in the background; `on_done(value, error, elapsed)` when it ends.

        `job` is an awaitable, or a callable: run in a thread executor when
        `in_thread`, else called on the loop (its result awaited if awaitable).
        `bounded` jobs share the session's `max_concurrency` slots; `timeout`
        counts from the job's start. The stream completes only after `on_done`.
        """
        with self.lock:
            if self.stopped:
                _discard(job)
                return
            self.pending += 1
        if self.loop is not None and not self.loop.is_closed():
            self._submit_on_loop(self.loop, job, on_done, in_thread, timeout, bounded)
        else:
            self._submit_in_thread(job, on_done, in_thread, timeout)

    def _settle(
        self, on_done: OnDone, value: Any, error: BaseException | None, elapsed: float
    ) -> None:
        with self.lock:
            self.pending -= 1
            if self.stopped:
                return
            try:
                on_done(value, error, elapsed)
            except Exception as exc:
                self.fail(exc)
                return
            self._maybe_complete()

    def _submit_on_loop(
        self,
        loop: asyncio.AbstractEventLoop,
        job: Callable[[], Any] | Awaitable[Any],
        on_done: OnDone,
        in_thread: bool,
        timeout: float | None,
        bounded: bool,
    ) -> None:
        state: list[Any] = [False, job]  # [started, job]

        async def runner() -> None:
            started = False
            semaphore = self._get_semaphore() if bounded else None
            try:
                if semaphore is not None:
                    await semaphore.acquire()
                try:
                    began = time.perf_counter()
                    error: BaseException | None = None
                    value: Any = None
                    try:
                        async with asyncio.timeout(timeout) as scope:
                            started = state[0] = True
                            if in_thread:
                                assert callable(job)
                                value = await loop.run_in_executor(None, job)
                            elif inspect.isawaitable(job):
                                value = await job
                            else:
                                value = job()
                            if inspect.isawaitable(value):
                                value = await value
                    except TimeoutError as exc:
                        error = _Expired(timeout or 0.0) if scope.expired() else exc
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        error = exc
                    elapsed = time.perf_counter() - began
                finally:
                    if semaphore is not None:
                        semaphore.release()
            finally:
                if not started:
                    _discard(job)
            self._settle(on_done, value, error, elapsed)

        def start() -> None:
            with self.lock:
                if self.stopped:
                    self.pending -= 1
                    _discard(job)
                    return
                task = loop.create_task(runner())
                self._tasks[task] = state
                task.add_done_callback(self._forget)

        if _running_loop() is loop:
            start()
        else:
            try:
                loop.call_soon_threadsafe(start)
            except RuntimeError:  # the loop was closed meanwhile
                self._submit_in_thread(job, on_done, in_thread, timeout)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    def _get_semaphore(self) -> asyncio.Semaphore | None:
        if self.max_concurrency is None:
            return None
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        return self._semaphore

    def _submit_in_thread(
        self,
        job: Callable[[], Any] | Awaitable[Any],
        on_done: OnDone,
        in_thread: bool,
        timeout: float | None,
    ) -> None:
        settled = False
        lock = threading.Lock()

        def settle_once(value: Any, error: BaseException | None, elapsed: float) -> None:
            nonlocal settled
            with lock:
                if settled:
                    return
                settled = True
            self._settle(on_done, value, error, elapsed)

        def work() -> None:
            began = time.perf_counter()
            timer: threading.Timer | None = None
            if timeout is not None:
                timer = threading.Timer(
                    timeout, settle_once, (None, _Expired(timeout), float(timeout))
                )
                timer.daemon = True
                with self.lock:
                    self._timers.add(timer)
                timer.start()
            value: Any = None
            error: BaseException | None = None
            try:
                if inspect.isawaitable(job):
                    value = asyncio.run(_await(job))
                else:
                    assert callable(job)
                    value = job()
                if inspect.isawaitable(value):
                    value = asyncio.run(_await(value))
            except Exception as exc:
                error = exc
            finally:
                if timer is not None:
                    timer.cancel()
                    with self.lock:
                        self._timers.discard(timer)
            settle_once(value, error, time.perf_counter() - began)

        def dropped(future: Future[None]) -> None:
            if future.cancelled():  # disposed before it started
                _discard(job)

        with self.lock:
            if self.stopped:
                self.pending -= 1
                _discard(job)
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.max_concurrency or 8, thread_name_prefix="rxtokens-inflight"
                )
            future = self._executor.submit(work)
        future.add_done_callback(dropped)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Handler:
    """What an inflight operator does with each token (called under the session lock)."""

    def on_token(self, session: _Session, token: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def on_end(self, session: _Session) -> None:
        """The source completed: flush (may submit more work)."""


def _inflight_operator(
    make_handler: Callable[[], _Handler], max_concurrency: int | None = None
) -> Callable[[Observable[Any]], Observable[Any]]:
    """An operator running one `make_handler()` per subscription on a `_Session`."""

    def _operator(source: Observable[Any]) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            handler = make_handler()
            session = _Session(observer, max_concurrency=max_concurrency)

            def on_next(token: Any) -> None:
                with session.lock:
                    if session.stopped or session.source_done:
                        return
                    try:
                        handler.on_token(session, token)
                    except Exception as exc:
                        session.fail(exc)

            def on_error(error: Exception) -> None:
                session.fail(error)

            def on_completed() -> None:
                with session.lock:
                    if session.stopped or session.source_done:
                        return
                    try:
                        handler.on_end(session)
                    except Exception as exc:
                        session.fail(exc)
                        return
                    session.finish_source()

            session.upstream.disposable = source.subscribe(
                on_next, on_error, on_completed, scheduler=scheduler
            )
            return Disposable(session.dispose)

        return reactivex.create(subscribe)

    return _operator


# --------------------------------------------------------------------------- on_match


@dataclass(frozen=True, slots=True)
class TextMatch:
    """One match of `on_match` (what the action receives).

    Attributes:
        text: the matched text.
        start: where it starts in the choice's text (characters from its beginning).
        end: where it ends there.
        groups: the pattern's groups (None for a group that did not take part).
        named: the named groups.
        index: the choice.
    """

    text: str
    start: int
    end: int
    groups: tuple[str | None, ...] = ()
    named: dict[str, str | None] = field(default_factory=dict)
    index: int = 0

    def group(self, key: int | str = 0) -> str | None:
        """Group `key` like `re.Match.group` (0: the whole match)."""
        if key == 0:
            return self.text
        if isinstance(key, str):
            return self.named[key]
        return self.groups[key - 1]


class _MatchFinder:
    """One choice's text: the matches that became final (see `_redact._Scanner`)."""

    __slots__ = ("_base", "_buf", "_index", "_pos", "_spec")

    def __init__(self, spec: PatternSpec, index: int) -> None:
        self._spec = spec
        self._index = index
        self._buf = ""  # context (already decided) + undecided text
        self._pos = 0  # where the undecided text starts in _buf
        self._base = 0  # offset of _buf[0] in the whole text

    def _keep(self, buf: str, pos: int) -> None:
        start = pos - self._spec.context
        if start > 0:
            self._buf = buf[start:]
            self._pos = pos - start
            self._base += start
        else:
            self._buf = buf
            self._pos = pos

    def _match(self, match: Any) -> TextMatch:
        base = self._base
        return TextMatch(
            match.group(0),
            base + match.start(),
            base + match.end(),
            match.groups(),
            match.groupdict(),
            self._index,
        )

    def feed(self, text: str) -> list[TextMatch]:
        """Add `text`; return the matches that are final now."""
        spec = self._spec
        pos = self._pos
        if (
            pos == len(self._buf)
            and spec.prefilter is not None
            and len(text) >= spec.context
            and spec.prefilter.search(text) is None
        ):
            # Nothing pending and no character of `text` can start a match.
            self._base += len(self._buf)
            self._buf = text
            self._pos = len(text)
            return []
        buf = self._buf + text
        end = len(buf)
        quick = spec.exposed.search(buf, pos, partial=True)
        if quick is None or (quick.partial and quick.start() >= end):
            self._keep(buf, end)
            return []
        found: list[TextMatch] = []
        probe = spec.probe
        pattern = spec.pattern
        window = spec.window
        while pos < end:
            undecided = probe.search(buf, pos, partial=True)
            at = end if undecided is None else undecided.start()
            match = pattern.search(buf, pos)
            forced = False
            if (match is None or match.start() >= at) and end - at >= window:
                # Decide at `at` now, the window end counting as the end of the text.
                match = pattern.match(buf, at, at + window)
                forced = True
            if match is not None and (forced or match.start() < at):
                found.append(self._match(match))
                pos = match.end()
                continue
            if forced:  # no match can start at `at`
                pos = at + 1
                continue
            pos = at
            break
        self._keep(buf, pos)
        return found

    def flush(self) -> list[TextMatch]:
        """The end of the text: every remaining match."""
        buf, pos = self._buf, self._pos
        found: list[TextMatch] = []
        while True:
            match = self._spec.pattern.search(buf, pos)
            if match is None:
                break
            found.append(self._match(match))
            pos = match.end()
        self._base += len(buf)
        self._buf, self._pos = "", 0
        return found


def _callable_name(function: Any) -> str:
    name = getattr(function, "__name__", None)
    return name if isinstance(name, str) else type(function).__name__


class _MatchHandler(_Handler):
    def __init__(
        self,
        spec: PatternSpec | None,
        predicate: Callable[[str], object] | None,
        action: Callable[[TextMatch], Any],
        name: str,
    ) -> None:
        self._spec = spec
        self._predicate = predicate
        self._action = action
        self._name = name
        self._finders: dict[int, _MatchFinder] = {}
        self._texts: dict[int, str] = {}  # predicate mode: the text so far
        self._fired: set[int] = set()  # predicate mode: choices whose action fired

    def _finder(self, index: int) -> _MatchFinder:
        finder = self._finders.get(index)
        if finder is None:
            assert self._spec is not None
            finder = self._finders[index] = _MatchFinder(self._spec, index)
        return finder

    def on_token(self, session: _Session, token: Any) -> None:
        kind = type(token)
        if kind is TextDelta:
            session.emit(token)
            if self._spec is not None:
                for match in self._finder(token.index).feed(token.text):
                    self._fire(session, match)
            elif token.index not in self._fired:
                index = token.index
                text = self._texts[index] = self._texts.get(index, "") + token.text
                assert self._predicate is not None
                if self._predicate(text):
                    self._fired.add(index)
                    self._texts.pop(index, None)
                    self._fire(session, TextMatch(text, 0, len(text), index=index))
            return
        if kind is Finish and token.index in self._finders:
            # a match decided by the end of the text is reported before the Finish
            for match in self._finders.pop(token.index).flush():
                self._fire(session, match)
        session.emit(token)

    def on_end(self, session: _Session) -> None:
        finders, self._finders = self._finders, {}
        for finder in finders.values():
            for match in finder.flush():
                self._fire(session, match)

    def _fire(self, session: _Session, match: TextMatch) -> None:
        name = self._name
        try:
            result = self._action(match)
        except Exception as exc:  # isolated: the stream goes on
            session.emit(ActionResult(name, match.text, None, describe_error(exc), match.index))
            return
        if not inspect.isawaitable(result):
            session.emit(ActionResult(name, match.text, jsonable(result), None, match.index))
            return

        def done(value: Any, error: BaseException | None, _elapsed: float) -> None:
            if error is not None:
                session.emit(
                    ActionResult(name, match.text, None, describe_error(error), match.index)
                )
            else:
                session.emit(ActionResult(name, match.text, jsonable(value), None, match.index))

        session.submit(result, done)


def on_match_operator(
    pattern_or_predicate: str | re.Pattern[str] | Any | Callable[[str], object],
    action: Callable[[TextMatch], Any],
    *,
    max_match: int | None = None,
    name: str | None = None,
) -> Callable[[Observable[Any]], Observable[Any]]:
    """Implementation of `rxtokens.operators.on_match` (see there)."""
    if not callable(action):
        raise ConfigError(f"on_match: action must be callable, got {action!r}")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"on_match: name must be a str, got {name!r}")
    action_name = name if name is not None else _callable_name(action)
    spec: PatternSpec | None = None
    predicate: Callable[[str], object] | None = None
    if isinstance(pattern_or_predicate, str | re.Pattern) or hasattr(
        pattern_or_predicate, "pattern"
    ):
        spec = compile_pattern(pattern_or_predicate, max_match=max_match, what="on_match")
    elif callable(pattern_or_predicate):
        if max_match is not None:
            raise ConfigError("on_match: max_match applies to patterns, not to predicates")
        predicate = pattern_or_predicate
    else:
        raise ConfigError(
            f"on_match: expected a regex (str or compiled) or a predicate over the text, "
            f"got {pattern_or_predicate!r}"
        )
    return _inflight_operator(lambda: _MatchHandler(spec, predicate, action, action_name))


# --------------------------------------------------------------------------- detect_intents

Throttle: TypeAlias = Literal["word", "sentence", "token"] | int
"""When `detect_intents` calls its classifier (see there)."""

_CUTS: dict[str, re.Pattern[str]] = {
    "word": re.compile(r"\W"),
    "sentence": re.compile(r"[.!?;:\n]"),
}


class KeywordClassifier:
    """A keyword / regex intent classifier (the built-in one of `detect_intents`).

    An intent is present when at least one of its patterns matches the text
    (``re.search``, case-insensitive by default); its confidence is the
    fraction of its patterns that match, its evidence the first matched text.

    Args:
        intents: intent name -> a pattern or a list of patterns (str or compiled).
        flags: `re` flags for str patterns.

    Raises:
        ConfigError: no intents, or an invalid pattern.

    Example:
        >>> classify = KeywordClassifier({"book_meeting": [r"\\bschedule\\b", r"\\bmeeting\\b"],
        ...                               "weather": r"\\b(rain|sunny|forecast)\\b"})
        >>> classify("Can you schedule a meeting?")
        [('book_meeting', 1.0, 'schedule')]
    """

    __slots__ = ("_intents", "lookback")

    def __init__(
        self,
        intents: Mapping[str, str | re.Pattern[str] | Iterable[str | re.Pattern[str]]],
        *,
        flags: int = re.IGNORECASE,
        lookback: int = 256,
    ) -> None:
        if not isinstance(intents, Mapping) or not intents:
            raise ConfigError(
                f"KeywordClassifier needs a non-empty {{intent: [patterns]}} mapping, "
                f"got {intents!r}"
            )
        compiled: dict[str, list[re.Pattern[str]]] = {}
        for intent, patterns in intents.items():
            if not isinstance(intent, str) or not intent:
                raise ConfigError(f"KeywordClassifier: intent names must be strings: {intent!r}")
            items = [patterns] if isinstance(patterns, str | re.Pattern) else list(patterns)
            if not items:
                raise ConfigError(f"KeywordClassifier: intent {intent!r} has no patterns")
            compiled[intent] = []
            for pattern in items:
                try:
                    compiled[intent].append(
                        pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, flags)
                    )
                except (re.error, TypeError) as exc:
                    raise ConfigError(
                        f"KeywordClassifier: invalid pattern {pattern!r} for {intent!r}: {exc}"
                    ) from None
        if isinstance(lookback, bool) or not isinstance(lookback, int) or lookback < 1:
            raise ConfigError(f"KeywordClassifier: lookback must be an int >= 1, got {lookback!r}")
        self._intents = compiled
        self.lookback = lookback

    def session(self) -> KeywordSession:
        """An incremental classifier of one growing text (`detect_intents` makes one per choice).

        ``session.feed(new_text)`` returns the intents found in all the text
        fed so far; only the new text (plus `lookback` characters before it,
        for matches that straddle) is searched, so a long stream costs
        O(length) in all instead of O(length²). Matches longer than
        `lookback` characters may be missed.

        Example:
            >>> session = KeywordClassifier({"book": r"\\bschedule\\b"}).session()
            >>> session.feed("let us sched"), session.feed("ule it"), session.feed("schedule")
            ([], [('book', 1.0, 'schedule')], [])
        """
        return KeywordSession(self._intents, self.lookback)

    def __call__(self, text: str) -> list[tuple[str, float, str]]:
        """The intents present in `text`: ``(name, confidence, evidence)``."""
        found: list[tuple[str, float, str]] = []
        for intent, patterns in self._intents.items():
            hits = [m for m in (p.search(text) for p in patterns) if m is not None]
            if hits:
                found.append((intent, len(hits) / len(patterns), hits[0].group(0)))
        return found

    def __repr__(self) -> str:
        return (
            f"KeywordClassifier({ {k: [p.pattern for p in v] for k, v in self._intents.items()} })"
        )


class KeywordSession:
    """`KeywordClassifier.session`: the patterns already found in one growing text."""

    __slots__ = ("_context", "_counts", "_hits", "_intents", "_lookback", "_started")

    def __init__(self, intents: dict[str, list[re.Pattern[str]]], lookback: int) -> None:
        self._intents = intents
        self._lookback = lookback
        self._hits: dict[tuple[str, int], str] = {}
        self._counts: dict[str, int] = {}  # intent -> patterns found so far
        self._context = ""  # the end of the text fed so far (at most `lookback` characters)
        self._started = False  # whether text was cut from the front of the context

    def feed(self, text: str) -> list[tuple[str, float, str]]:
        """Add `text`; return ``(name, confidence, evidence)`` of the intents it revealed.

        An intent is returned when this text made it appear or raised its
        confidence (another of its patterns matched), with the evidence of its
        first matched pattern.
        """
        buffer = self._context + text
        # a match at the very start of a cut context could be the tail of a longer word
        start = 1 if self._started and buffer else 0
        hits = self._hits
        counts = self._counts
        found: list[tuple[str, float, str]] = []
        for intent, patterns in self._intents.items():
            if counts.get(intent, 0) == len(patterns):
                continue  # every pattern of it was found already
            evidence = None
            count = 0
            for i, pattern in enumerate(patterns):
                hit = hits.get((intent, i))
                if hit is None:
                    match = pattern.search(buffer, start)
                    if match is not None:
                        hit = hits[(intent, i)] = match.group(0)
                if hit is not None:
                    count += 1
                    if evidence is None:
                        evidence = hit
            if evidence is not None and count > counts.get(intent, 0):
                counts[intent] = count
                found.append((intent, count / len(patterns), evidence))
        if len(buffer) > self._lookback:
            self._context = buffer[-self._lookback :]
            self._started = True
        else:
            self._context = buffer
        return found


class _ChoiceText:
    """One choice's text as `detect_intents` sees it."""

    __slots__ = ("dirty", "emitted", "feed", "final", "head", "inflight", "pending")

    def __init__(self, feed: Callable[[str], Any] | None) -> None:
        self.feed = feed  # a classifier session's feed(), or None: whole-text calls
        self.head = ""  # the text already classified (whole-text classifiers only)
        self.pending = ""  # the text after it
        self.emitted: set[str] = set()
        self.inflight = False
        self.dirty = False  # text became ready while a call was in flight
        self.final = False  # the choice's text ended


def _intents_of(result: Any, index: int) -> list[Intent]:
    if result is None:
        return []
    if isinstance(result, Mapping):
        return [Intent(str(k), float(v), "", index) for k, v in result.items()]
    out: list[Intent] = []
    for item in result:
        if isinstance(item, Intent):
            out.append(item._replace(index=index))
        elif isinstance(item, str):
            out.append(Intent(item, 1.0, "", index))
        elif isinstance(item, tuple | list) and len(item) in (2, 3):
            evidence = str(item[2]) if len(item) == 3 and item[2] is not None else ""
            out.append(Intent(str(item[0]), float(item[1]), evidence, index))
        else:
            raise TypeError(
                f"detect_intents: the classifier returned {item!r}; expected (name, confidence) "
                f"or (name, confidence, evidence) items, or a {{name: confidence}} mapping"
            )
    return out


class _IntentHandler(_Handler):
    def __init__(
        self,
        classifier: Callable[[str], Any],
        throttle: Throttle,
        min_confidence: float,
        errors: str,
    ) -> None:
        self._classifier = classifier
        self._throttle = throttle
        self._min_confidence = min_confidence
        self._errors = errors
        self._choices: dict[int, _ChoiceText] = {}

    def _state(self, index: int) -> _ChoiceText:
        state = self._choices.get(index)
        if state is None:
            make_session = getattr(self._classifier, "session", None)
            feed = make_session().feed if callable(make_session) else None
            state = self._choices[index] = _ChoiceText(feed)
        return state

    def _ready(self, state: _ChoiceText, tail: int) -> int:
        """How much of the pending text the classifier may see now (0: nothing).

        `tail`: how many characters at the end of the pending text are new.
        """
        throttle = self._throttle
        pending = state.pending
        if throttle == "token":
            return len(pending)
        if isinstance(throttle, int):
            return len(pending) if len(pending) >= throttle else 0
        cut = _CUTS[throttle]
        for i in range(len(pending) - 1, len(pending) - tail - 1, -1):
            if cut.match(pending, i):
                return i + 1
        return 0

    def on_token(self, session: _Session, token: Any) -> None:
        kind = type(token)
        if kind is TextDelta:
            session.emit(token)
            state = self._state(token.index)
            if state.final:
                return
            text = token.text
            state.pending += text
            ready = self._ready(state, len(text))
            if ready:
                self._classify(session, token.index, state, ready)
            return
        if kind is Finish:
            ended = self._choices.get(token.index)
            if ended is not None:
                self._end(session, token.index, ended)
        session.emit(token)

    def on_end(self, session: _Session) -> None:
        for index, state in list(self._choices.items()):
            self._end(session, index, state)

    def _end(self, session: _Session, index: int, state: _ChoiceText) -> None:
        if state.final:
            return
        state.final = True
        if state.pending:
            self._classify(session, index, state, len(state.pending))

    def _classify(self, session: _Session, index: int, state: _ChoiceText, ready: int) -> None:
        if state.inflight:
            state.dirty = True
            return
        segment, state.pending = state.pending[:ready], state.pending[ready:]
        try:
            if state.feed is not None:
                result = state.feed(segment)
            else:
                state.head += segment
                result = self._classifier(state.head)
        except Exception as exc:
            self._failed(session, exc)
            return
        if not inspect.isawaitable(result):
            self._emit(session, index, state, result)
            return
        state.inflight = True

        def done(value: Any, error: BaseException | None, _elapsed: float) -> None:
            state.inflight = False
            if error is not None:
                self._failed(session, error)
            else:
                self._emit(session, index, state, value)
            if state.dirty and not session.stopped:
                state.dirty = False
                ready = (
                    len(state.pending) if state.final else self._ready(state, len(state.pending))
                )
                if ready:
                    self._classify(session, index, state, ready)

        session.submit(result, done)

    def _failed(self, session: _Session, error: BaseException) -> None:
        if self._errors == "ignore":
            return
        session.fail(error if isinstance(error, Exception) else RuntimeError(str(error)))

    def _emit(self, session: _Session, index: int, state: _ChoiceText, result: Any) -> None:
        for intent in _intents_of(result, index):
            if intent.name in state.emitted or intent.confidence < self._min_confidence:
                continue
            state.emitted.add(intent.name)
            session.emit(intent)


def detect_intents_operator(
    classifier: Callable[[str], Any] | Mapping[str, Any],
    *,
    throttle: Throttle = "word",
    min_confidence: float = 0.0,
    errors: Literal["raise", "ignore"] = "raise",
) -> Callable[[Observable[Any]], Observable[Any]]:
    """Implementation of `rxtokens.operators.detect_intents` (see there)."""
    if isinstance(classifier, Mapping):
        classifier = KeywordClassifier(classifier)
    if not callable(classifier):
        raise ConfigError(f"detect_intents: classifier must be callable, got {classifier!r}")
    if isinstance(throttle, bool) or not (
        throttle in ("word", "sentence", "token") or (isinstance(throttle, int) and throttle >= 1)
    ):
        raise ConfigError(
            f"detect_intents: throttle must be 'word', 'sentence', 'token' or an int >= 1 "
            f"(characters), got {throttle!r}"
        )
    if isinstance(min_confidence, bool) or not isinstance(min_confidence, int | float):
        raise ConfigError(
            f"detect_intents: min_confidence must be a number, got {min_confidence!r}"
        )
    if errors not in ("raise", "ignore"):
        raise ConfigError(f"detect_intents: errors must be 'raise' or 'ignore', got {errors!r}")
    function = classifier
    return _inflight_operator(
        lambda: _IntentHandler(function, throttle, float(min_confidence), errors)
    )


# --------------------------------------------------------------------------- dispatch_tools


class _ToolHandler(_Handler):
    def __init__(self, registry: ToolRegistry, timeout: float | None) -> None:
        self._registry = registry
        self._timeout = timeout
        self._seen: set[tuple[int, int]] = set()

    def on_token(self, session: _Session, token: Any) -> None:
        session.emit(token)
        if type(token) is ToolCall:
            key = (token.choice, token.index)
            if key not in self._seen:
                self._seen.add(key)
                self._start(session, token)

    def _start(self, session: _Session, call: ToolCall) -> None:
        tool = self._registry.get(call.name)

        def result(value: Any, error: str | None, elapsed: float) -> ToolResult:
            return ToolResult(call.id, call.name, value, error, call.index, elapsed, call.choice)

        if tool is None:
            known = ", ".join(repr(n) for n in self._registry.names) or "none"
            session.emit(result(None, f"unknown tool {call.name!r}; known tools: {known}", 0.0))
            return
        try:
            args, kwargs = tool.bind(call.arguments)
        except ToolArgumentsError as exc:
            session.emit(result(None, str(exc), 0.0))
            return
        function = tool.function
        timeout = tool.timeout if tool.timeout is not None else self._timeout

        def job() -> Any:
            return function(*args, **kwargs)

        def done(value: Any, error: BaseException | None, elapsed: float) -> None:
            if isinstance(error, _Expired):
                message = f"tool {call.name!r} timed out after {error.timeout:g} s"
                session.emit(result(None, message, elapsed))
            elif error is not None:
                message = f"tool {call.name!r} failed: {describe_error(error)}"
                session.emit(result(None, message, elapsed))
            else:
                session.emit(result(jsonable(value), None, elapsed))

        session.submit(job, done, in_thread=not tool.is_async, timeout=timeout, bounded=True)


def dispatch_tools_operator(
    tools: Any,
    *,
    timeout: float | None = 30.0,
    max_concurrency: int | None = 4,
) -> Callable[[Observable[Any]], Observable[Any]]:
    """Implementation of `rxtokens.operators.dispatch_tools` (see there)."""
    registry = ToolRegistry.coerce(tools)
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise ConfigError(f"dispatch_tools: timeout must be > 0 seconds or None, got {timeout!r}")
    if max_concurrency is not None and (
        isinstance(max_concurrency, bool)
        or not isinstance(max_concurrency, int)
        or max_concurrency < 1
    ):
        raise ConfigError(
            f"dispatch_tools: max_concurrency must be an int >= 1 or None, got {max_concurrency!r}"
        )
    seconds = None if timeout is None else float(timeout)
    return _inflight_operator(lambda: _ToolHandler(registry, seconds), max_concurrency)
