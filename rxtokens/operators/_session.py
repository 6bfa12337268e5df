"""The engine of the inflight operators: act on a token stream while it is still streaming.

`on_match` (``_match.py``), `detect_intents` (``_intents.py``) and
`dispatch_tools` (``_dispatch.py``) are each a `Handler` run by
`inflight_operator` on one `Session` per subscription. The session passes the
tokens through unchanged and without delay, runs the work the handler submits
(inline, as a task on the event loop, or in a thread), emits the result
tokens when the work is done, and holds back the completion of the stream until
no work is pending. All observer calls go through one re-entrant lock, so results
finished on other threads never interleave with tokens. Disposal cancels pending tasks.

Which event loop: the one running in the subscribing thread. Without one
(a synchronous ``reactivex.of(...)`` pipeline), background work runs on a
per-subscription thread pool (coroutines with `asyncio.run` there), and its
results are delivered on a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeAlias

import reactivex
from pydantic_core import to_jsonable_python
from reactivex import Observable, abc
from reactivex.disposable import Disposable, SingleAssignmentDisposable

__all__ = [
    "Expired",
    "Handler",
    "OnDone",
    "Session",
    "describe_error",
    "inflight_operator",
    "jsonable",
]


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


class Expired(Exception):
    """Raised into a job's completion when its timeout expired."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"timed out after {timeout:g} s")
        self.timeout = timeout


OnDone: TypeAlias = Callable[[Any, BaseException | None, float], None]
"""Called (under the session lock) with (value, error, elapsed) when a job ends."""


class Session:
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
                        error = Expired(timeout or 0.0) if scope.expired() else exc
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
                    timeout, settle_once, (None, Expired(timeout), float(timeout))
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


class Handler:
    """What an inflight operator does with each token (called under the session lock)."""

    def on_token(self, session: Session, token: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def on_end(self, session: Session) -> None:
        """The source completed: flush (may submit more work)."""


def inflight_operator(
    make_handler: Callable[[], Handler], max_concurrency: int | None = None
) -> Callable[[Observable[Any]], Observable[Any]]:
    """An operator running one `make_handler()` per subscription on a `Session`."""

    def _operator(source: Observable[Any]) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            handler = make_handler()
            session = Session(observer, max_concurrency=max_concurrency)

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
