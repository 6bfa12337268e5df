"""`dispatch_tools`: every complete `ToolCall` runs at once, its result as a `ToolResult` token.

The tools come from a `rxtokens.tools.ToolRegistry` (arguments validated with
pydantic); sync tools run in a thread, async ones on the event loop, with
timeouts and bounded concurrency (``_session.py`` runs them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reactivex import Observable

from ..errors import ConfigError, ToolArgumentsError
from ..tokens import ToolCall, ToolResult
from ..tools import ToolRegistry
from ._session import Expired, Handler, Session, describe_error, inflight_operator, jsonable

__all__ = ["dispatch_tools_operator"]


class _ToolHandler(Handler):
    def __init__(self, registry: ToolRegistry, timeout: float | None) -> None:
        self._registry = registry
        self._timeout = timeout
        self._seen: set[tuple[int, int]] = set()

    def on_token(self, session: Session, token: Any) -> None:
        session.emit(token)
        if type(token) is ToolCall:
            key = (token.choice, token.index)
            if key not in self._seen:
                self._seen.add(key)
                self._start(session, token)

    def _start(self, session: Session, call: ToolCall) -> None:
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
            if isinstance(error, Expired):
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
    return inflight_operator(lambda: _ToolHandler(registry, seconds), max_concurrency)
