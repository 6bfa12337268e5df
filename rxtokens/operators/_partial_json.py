"""Partial tool-call arguments: the parsed-so-far dict of each call as its fragments arrive.

Parsing is pydantic-core's tolerant JSON parser (``from_json(...,
allow_partial=...)``, the Rust ``jiter``): no home-made JSON parser. One guard
is added on top: a buffer that ends in a digit may end inside a number
(``{"n": 12`` of ``{"n": 123}``), which jiter would report as complete, so
the trailing number characters are left out until more text arrives. That
keeps every emission *consistent* with the final arguments: keys only appear
once their value started, strings only grow, numbers never change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import reactivex
from pydantic_core import from_json
from reactivex import Observable, abc

from ..tokens import PartialToolCall, ToolCall, ToolCallDelta

__all__ = ["PartialToolCall", "parse_partial_arguments", "partial_tool_arguments_operator"]

_NUMBER_CHARS = "0123456789.eE+-"


def parse_partial_arguments(text: str, *, strings: bool = True) -> dict[str, Any] | None:
    """The arguments dict that the JSON prefix `text` is known to start with.

    Returns None when `text` is not (the start of) a JSON object. With
    `strings` False, unfinished string values are left out instead of shown
    as far as they go.

    Example:
        >>> parse_partial_arguments('{"city": "Par')
        {'city': 'Par'}
        >>> parse_partial_arguments('{"city": "Paris", "days": 1')
        {'city': 'Paris'}
        >>> parse_partial_arguments('')
        {}
    """
    if text and text[-1].isdigit():  # maybe inside a number: wait for its end
        text = text.rstrip(_NUMBER_CHARS)
    if not text.strip():
        return {}
    mode: bool | Literal["trailing-strings"] = "trailing-strings" if strings else True
    try:
        value = from_json(text, allow_partial=mode)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class _CallState:
    __slots__ = ("complete", "id", "last", "name", "text")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.text = ""
        self.last: dict[str, Any] | None = None
        self.complete = False


def partial_tool_arguments_operator(
    *, strings: bool = True
) -> Callable[[Observable[Any]], Observable[PartialToolCall]]:
    """Implementation of `rxtokens.operators.partial_tool_arguments` (see there)."""

    def _partial(source: Observable[Any]) -> Observable[PartialToolCall]:
        def subscribe(
            observer: abc.ObserverBase[PartialToolCall], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            calls: dict[tuple[int, int], _CallState] = {}

            def state(choice: int, index: int) -> _CallState:
                key = (choice, index)
                found = calls.get(key)
                if found is None:
                    found = calls[key] = _CallState()
                return found

            def on_next(token: Any) -> None:
                kind = type(token)
                if kind is ToolCallDelta:
                    try:
                        call = state(token.choice, token.index)
                        if call.complete:
                            return
                        if call.id is None and token.id:
                            call.id = token.id
                        if call.name is None and token.name:
                            call.name = token.name
                        if token.arguments:
                            call.text += token.arguments
                        value = parse_partial_arguments(call.text, strings=strings)
                    except Exception as exc:  # a malformed token
                        observer.on_error(exc)
                        return
                    if value is None or value == call.last:
                        return
                    call.last = value
                    observer.on_next(
                        PartialToolCall(token.index, call.id, call.name, value, token.choice)
                    )
                elif kind is ToolCall:
                    call = state(token.choice, token.index)
                    if call.complete:
                        return
                    call.complete = True
                    call.last = token.arguments
                    observer.on_next(
                        PartialToolCall(
                            token.index,
                            token.id if token.id is not None else call.id,
                            token.name,
                            token.arguments,
                            token.choice,
                            True,
                        )
                    )

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return reactivex.create(subscribe)

    return _partial
