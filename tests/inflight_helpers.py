"""Helpers shared by the tests of the inflight operators (on_match, detect_intents, tools)."""

from __future__ import annotations

import asyncio
from typing import Any

import reactivex
from hypothesis import strategies as st
from reactivex import operators as ops


def run_sync(tokens: list[Any], *operators: Any) -> list[Any]:
    """Every item of ``from_iterable(tokens).pipe(*operators)`` (synchronous sources)."""
    result: list[Any] = reactivex.from_iterable(tokens).pipe(*operators, ops.to_list()).run()
    return result


class Recorder:
    """An observer recording every notification in one ordered log."""

    def __init__(self, log: list[Any] | None = None) -> None:
        self.log: list[Any] = [] if log is None else log
        self.items: list[Any] = []
        self.error: Exception | None = None
        self.done = asyncio.Event()

    def on_next(self, item: Any) -> None:
        self.items.append(item)
        self.log.append(("token", item))

    def on_error(self, error: Exception) -> None:
        self.error = error
        self.log.append(("error", error))
        self.done.set()

    def on_completed(self) -> None:
        self.log.append(("completed",))
        self.done.set()


async def spin(predicate: Any, rounds: int = 200) -> None:
    """Give the event loop turns until `predicate()` holds (scheduling, not timing)."""
    for _ in range(rounds):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


async def turns(count: int) -> None:
    """Give the event loop `count` turns."""
    for _ in range(count):
        await asyncio.sleep(0)


@st.composite
def texts_and_cuts(draw: st.DrawFn) -> tuple[str, list[str]]:
    pieces = draw(
        st.lists(
            st.one_of(
                st.sampled_from(["555-1234", "12-3456", "999-99999", "0-", "-", " ", "\n"]),
                st.text(alphabet="0123456789- ab", max_size=6),
            ),
            max_size=12,
        )
    )
    text = "".join(pieces)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=len(text) + 1)))
    deltas = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    return text, [d for d in deltas if d]
