"""Scheduling helpers of the time-based operators: which clock, which default scheduler, when.

Shared by pacing (`smooth`, `rate_limit`, `frames`), `metrics`, retries and
`rxtokens.notebook`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from reactivex import abc
from reactivex.scheduler import TimeoutScheduler, VirtualTimeScheduler
from reactivex.scheduler.eventloop import AsyncIOThreadSafeScheduler

__all__ = ["clock_of", "default_scheduler", "schedule_at"]


def clock_of(scheduler: abc.SchedulerBase) -> Callable[[], float]:
    """The time source, in seconds, that the operators of this family use for `scheduler`.

    A `VirtualTimeScheduler` (``TestScheduler``, ``HistoricalScheduler``) is read
    through its virtual clock, so tests are deterministic. Every other
    scheduler runs in real time, measured with `time.monotonic` (the
    schedulers' ``now`` is wall-clock time, which can jump).
    """
    if isinstance(scheduler, VirtualTimeScheduler):
        virtual = scheduler
        to_seconds = virtual.to_seconds

        def read() -> float:
            value = virtual.clock
            if type(value) is float:
                return value
            if isinstance(value, int):
                return float(value)
            return float(to_seconds(value))

        return read
    return time.monotonic


def default_scheduler() -> abc.SchedulerBase:
    """The scheduler of a time-based operator given none (neither as argument nor at subscription).

    Inside a running asyncio event loop: that loop (``AsyncIOThreadSafeScheduler``,
    so timers fire on the loop thread, whatever thread the tokens come from);
    otherwise ``TimeoutScheduler`` (timer threads).
    """
    loop = asyncio._get_running_loop()
    if loop is not None:
        return AsyncIOThreadSafeScheduler(loop)
    return TimeoutScheduler.singleton()


def schedule_at(
    scheduler: abc.SchedulerBase,
    due: float,
    now: float,
    action: Callable[[float], None],
) -> abc.DisposableBase:
    """Run ``action(due)`` at time `due` (in the `clock_of` time base).

    On a `VirtualTimeScheduler` (``TestScheduler``, ``HistoricalScheduler``) the
    action is scheduled at exactly `due` on its clock (no float drift from
    relative arithmetic); elsewhere `due - now` seconds from now.
    """

    def run(_scheduler: abc.SchedulerBase, _state: Any = None) -> None:
        action(due)

    if isinstance(scheduler, VirtualTimeScheduler):
        return scheduler.schedule_absolute(due, run)
    return scheduler.schedule_relative(max(0.0, due - now), run)
