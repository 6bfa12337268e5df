"""Shared helpers of the reliability suite (not collected: no ``test_`` prefix)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import aiohttp
from reactivex import Observable, abc
from reactivex.abc.scheduler import ScheduledAction
from reactivex.disposable import SingleAssignmentDisposable
from reactivex.scheduler.scheduler import Scheduler

from rxtokens import (
    StreamToken,
    TruncatedStreamError,
)
from rxtokens.providers import anthropic, gemini, openai_chat, openai_responses
from rxtokens.providers._http import acquire_session
from rxtokens.testing import ProviderServer

# provider name (for base_url_for) -> (factory, wire format)
PROVIDERS: dict[str, tuple[Callable[..., Observable[StreamToken]], str]] = {
    "openai": (openai_chat, "openai_chat"),
    "openai_responses": (openai_responses, "openai_responses"),
    "anthropic": (anthropic, "anthropic"),
    "gemini": (gemini, "gemini"),
}

DROPPED = TruncatedStreamError
"""What a connection dropped mid-stream fails with: an aborted chunked body (aiohttp's
``ClientPayloadError``) and a body that ends cleanly without the terminal event alike."""


def open_stream(
    srv: ProviderServer, name: str, prompt: Any = "Hello?", **kw: Any
) -> Observable[StreamToken]:
    """The provider `name`'s stream against `srv` (a key is set: none is checked)."""
    factory, _ = PROVIDERS[name]
    kw.setdefault("api_key", "sk-reliability-test-key")
    return factory("test-model", prompt, base_url=srv.base_url_for(name), **kw)


def text_deltas(count: int, start: int = 0) -> list[str]:
    """Unique, numbered deltas with 2- and 3-byte UTF-8 characters in each."""
    return [f" wö{i:04d}€" for i in range(start, start + count)]


def complete_prefix(events: Sequence[bytes], cut: int) -> bytes:
    """The events of `events` a WHATWG parser has dispatched once `cut` body bytes arrived.

    An event ends with a blank line; with CRLF framing (Gemini) the CR of the last CRLF
    already ends the blank line (a lone CR is a line ending), so the final LF is not needed.
    """
    done = b""
    pos = 0
    for event in events:
        end = pos + len(event)
        needed = end - 1 if event.endswith(b"\r\n") else end
        if cut >= needed:
            done += event
        pos = end
    return done


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def sent_text(events_bytes: bytes, deltas: Sequence[str]) -> str:
    """The deltas (in order) that appear in the JSON of the complete events `events_bytes`.

    Independent of the library: JSON payloads are read with ``json.loads`` and a delta
    counts as sent when a string of some payload contains it (deltas are unique).
    """
    strings: list[str] = []
    for line in events_bytes.replace(b"\r\n", b"\n").split(b"\n"):
        if line.startswith(b"data: "):
            try:
                strings.extend(_strings(json.loads(line[6:])))
            except ValueError:
                continue
    blob = "\x00".join(strings)
    return "".join(d for d in deltas if d in blob)


async def open_client_connections() -> int:
    """Connections the shared client session holds (in use or pooled for reuse).

    A dropped, timed-out or cancelled response must be closed, never returned to the
    pool. Reads aiohttp connector internals (``_acquired``, ``_conns``), stable since 3.x.
    """
    session = await acquire_session()
    connector = session.connector
    assert isinstance(connector, aiohttp.BaseConnector)
    acquired = len(connector._acquired)
    pooled = sum(len(conns) for conns in connector._conns.values())
    return acquired + pooled


class GateScheduler(Scheduler):
    """A scheduler whose actions wait until `open` runs them: an arbitrarily slow consumer.

    A queued subscriber (or an ``on_backpressure_*`` operator) on this scheduler receives
    nothing while the producer runs, the worst case of a slow consumer, and deterministic.
    (reactivex's virtual-time schedulers advance their clock after 100 actions at the same
    time, which a HistoricalScheduler gets wrong; this one has no clock to advance.)
    """

    def __init__(self) -> None:
        super().__init__()
        self._actions: deque[tuple[ScheduledAction[Any], Any, SingleAssignmentDisposable]] = deque()

    @property
    def waiting(self) -> int:
        """Actions scheduled and not run yet."""
        return len(self._actions)

    def schedule(self, action: ScheduledAction[Any], state: Any = None) -> abc.DisposableBase:
        slot = SingleAssignmentDisposable()
        self._actions.append((action, state, slot))
        return slot

    def schedule_relative(
        self, duetime: Any, action: ScheduledAction[Any], state: Any = None
    ) -> abc.DisposableBase:
        return self.schedule(action, state)

    def schedule_absolute(
        self, duetime: Any, action: ScheduledAction[Any], state: Any = None
    ) -> abc.DisposableBase:
        return self.schedule(action, state)

    def open(self) -> int:
        """Run every action, including those scheduled meanwhile; return how many ran."""
        ran = 0
        while self._actions:
            action, state, slot = self._actions.popleft()
            if not slot.is_disposed:
                slot.disposable = self.invoke_action(action, state)
                ran += 1
        return ran
