"""The timeouts of a streaming request: `Timeouts`, and the per-stream `Watchdog` of body reads.

`Timeouts` is re-exported by ``rxtokens.providers`` (and ``providers._http``, where it lived).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from ..errors import ConfigError

__all__ = ["Expired", "Timeouts", "Watchdog"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The timeouts of a streaming request, in seconds (None disables one).

    Attributes:
        connect: establishing the TCP (and TLS) connection.
        first_token: from sending the request until the first bytes of the body
            (covers the response headers too; a slow model's time to first token).
        idle: the longest silence between two chunks of the body. Any bytes count,
            including SSE comments and ping events.
        progress: the longest time without a token (text, tool call, usage, finish ...)
            once the request is sent. Pings, comments and events that carry no token do
            not count: an upstream that only pings ends with a `StreamTimeoutError`
            (``phase="progress"``). Off by default (a model may think silently for long);
            the server sets one.
        total: the deadline of the whole stream, from the request to the last token
            (``phase="total"``). Off by default.

    Example:
        >>> Timeouts.coerce(5.0)
        Timeouts(connect=5.0, first_token=5.0, idle=5.0, progress=None, total=None)
    """

    connect: float | None = 10.0
    first_token: float | None = 120.0
    idle: float | None = 60.0
    progress: float | None = None
    total: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "first_token", "idle", "progress", "total"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
            ):
                raise ConfigError(f"timeout {name} must be a number > 0 or None, got {value!r}")

    @classmethod
    def coerce(cls, value: Timeouts | float | None) -> Timeouts:
        """A `Timeouts` from a `Timeouts`, one number for connect, first_token and idle, or
        None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"timeout must be a Timeouts, a number or None, got {value!r}")
        return cls(float(value), float(value), float(value))


class Expired(Exception):
    """Set on the response body by `_Watchdog` to end the read that waited too long."""


class Watchdog:
    """One timer per stream for the first-token and idle timeouts of the body reads.

    `wait_until` (before each read) moves the due time; the timer is armed once and, when
    it fires early (bytes came since), re-arms itself at the current due time. So a fast
    stream costs one timer per timeout period, not one per chunk (``asyncio.timeout``
    around each read made and cancelled a timer handle every chunk, ~11 us). Time spent
    outside a read (a slow consumer) does not count: the timer only fires on a read in
    progress, by failing it through ``StreamReader.set_exception``.
    """

    __slots__ = ("_armed", "_content", "_handle", "_loop", "due", "reading")

    def __init__(self, loop: asyncio.AbstractEventLoop, content: aiohttp.StreamReader) -> None:
        self._loop = loop
        self._content = content
        self._handle: asyncio.TimerHandle | None = None
        self._armed = 0.0  # when the timer fires
        self.due = 0.0
        self.reading = False

    def wait_until(self, due: float) -> None:
        """A read starts now and must see bytes by `due` (loop time)."""
        self.due = due
        self.reading = True
        if self._handle is None or due < self._armed:  # none, or armed too late
            self._arm(due)

    def _arm(self, due: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed = due
        self._handle = self._loop.call_at(due, self._check)

    def _check(self) -> None:
        self._handle = None
        if not self.reading:
            return  # re-armed by the next read
        if self._loop.time() < self.due:
            self._arm(self.due)
            return
        self._content.set_exception(Expired())

    def cancel(self) -> None:
        """Stop the timer (end of stream)."""
        self.reading = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
