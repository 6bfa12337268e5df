"""Adaptive flow control: a slow consumer's measured pace pauses a pull-based producer.

`AdaptiveFlowController` sizes the in-flight window from measured processing
times and pauses the *producer* (``FlowControl.pause()``, `rxtokens.aio`), so
socket reads slow down instead of memory filling up.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reactivex import Observable, abc
from reactivex.subject import BehaviorSubject

from ..aio import FlowControl, ObservableAsyncIterator, flow_control_scope
from ..errors import ConfigError
from ._backpressure import check_capacity

__all__ = ["AdaptiveFlowController", "AdaptiveIterator", "FlowSnapshot", "adaptive_operator"]


@dataclass(frozen=True, slots=True)
class FlowSnapshot:
    """The state of an `AdaptiveFlowController` at one moment.

    Attributes:
        window: items allowed in flight before the producer is paused.
        in_flight: items delivered to the consumer and not yet acknowledged
            (the queue depth, including the item being processed).
        avg_processing_time: smoothed seconds per item (EWMA), None before the first ack.
        paused: the producer is paused.
        pauses: how many times the producer was paused.
        delivered: items delivered so far.
        acked: items acknowledged so far.

    Example:
        >>> AdaptiveFlowController(min_window=4).snapshot().paused
        False
    """

    window: int
    in_flight: int
    avg_processing_time: float | None
    paused: bool
    pauses: int
    delivered: int
    acked: int


class AdaptiveFlowController:
    """Sizes the in-flight window of a slow consumer and pauses a pull-based producer.

    The "BackpressureController": items *delivered* to the consumer and not
    yet *acknowledged* are in flight. When they reach the window the
    controller's `FlowControl` pauses, so pull-based sources
    (`rxtokens.aio.from_async_iterable`, hence the HTTP providers) stop
    reading the socket; it resumes when half the window has drained. Memory
    in the pipeline is then bounded by the window (plus what one network read
    expands into), whatever the speed difference.

    The window adapts by AIMD, from the measured processing time per item
    (an EWMA with weight `smoothing` of the time between acknowledgements
    while the consumer is busy) and the queue depth:

    * the expected wait of a new item, ``in_flight * avg_processing_time``,
      is at most `target_latency`: the consumer keeps up, the window grows by
      `increase` (additive increase), up to `max_window`;
    * otherwise the window is multiplied by `decrease` (multiplicative
      decrease), down to `min_window`, at most once per window's worth of
      acknowledgements (so one slow burst does not collapse it).

    Two ways to use it:

    * ``async for`` (acknowledgement is automatic: asking for the next item
      acknowledges the previous one)::

          async with controller.iterate(pipeline) as tokens:
              async for token in tokens:
                  await slow_render(token)

    * as an operator, ``pipeline.pipe(adaptive_backpressure(controller))``,
      with the consumer calling ``controller.ack()`` (any thread) after each item.

    `state` is an Observable of `FlowSnapshot` (current value first, then one
    per change of window or paused flag); `snapshot()` reads it on demand.

    Args:
        min_window: smallest window (>= 1).
        max_window: largest window (>= min_window).
        initial_window: starting window (default: `min_window`).
        target_latency: seconds an item may wait before the window shrinks.
        increase: additive increase per acknowledgement that met the target.
        decrease: multiplicative decrease factor (0 < decrease < 1).
        smoothing: EWMA weight of the newest processing time (0 < smoothing <= 1).
        clock: time source in seconds (default `time.monotonic`; tests pass a fake).

    Example:
        >>> controller = AdaptiveFlowController(min_window=2, max_window=8)
        >>> controller.snapshot().window
        2
    """

    def __init__(
        self,
        min_window: int = 4,
        max_window: int = 256,
        *,
        initial_window: int | None = None,
        target_latency: float = 0.1,
        increase: int = 1,
        decrease: float = 0.5,
        smoothing: float = 0.2,
        clock: Callable[[], float] | None = None,
    ) -> None:
        check_capacity("min_window", min_window)
        check_capacity("max_window", max_window)
        if max_window < min_window:
            raise ConfigError(f"max_window ({max_window}) must be >= min_window ({min_window})")
        window = min_window if initial_window is None else initial_window
        check_capacity("initial_window", window)
        if not min_window <= window <= max_window:
            raise ConfigError(
                f"initial_window must be within [{min_window}, {max_window}], got {window!r}"
            )
        if not isinstance(target_latency, int | float) or not 0 < target_latency < math.inf:
            raise ConfigError(f"target_latency must be a positive number, got {target_latency!r}")
        check_capacity("increase", increase)
        if not isinstance(decrease, int | float) or not 0 < decrease < 1:
            raise ConfigError(f"decrease must be a number in (0, 1), got {decrease!r}")
        if not isinstance(smoothing, int | float) or not 0 < smoothing <= 1:
            raise ConfigError(f"smoothing must be a number in (0, 1], got {smoothing!r}")
        if clock is not None and not callable(clock):
            raise ConfigError(f"clock must be callable, got {clock!r}")
        self.min_window = min_window
        self.max_window = max_window
        self.target_latency = float(target_latency)
        self.increase = increase
        self.decrease = float(decrease)
        self.smoothing = float(smoothing)
        self._clock = clock or time.monotonic
        self._lock = threading.RLock()
        self._window = window
        self._in_flight = 0
        self._delivered = 0
        self._acked = 0
        self._avg: float | None = None
        self._busy_since = 0.0
        self._hold_decrease = 0  # acks to wait before the next multiplicative decrease
        self.flow = FlowControl(high_water=window, low_water=window // 2)
        self._state = BehaviorSubject(self._snapshot())

    # -- reading -----------------------------------------------------------------------------

    @property
    def window(self) -> int:
        """The current window."""
        return self._window

    @property
    def in_flight(self) -> int:
        """Items delivered and not yet acknowledged."""
        return self._in_flight

    @property
    def state(self) -> Observable[FlowSnapshot]:
        """`FlowSnapshot` now, then one per change of window or paused flag."""
        return self._state

    def _snapshot(self) -> FlowSnapshot:
        return FlowSnapshot(
            window=self._window,
            in_flight=self._in_flight,
            avg_processing_time=self._avg,
            paused=self.flow.paused,
            pauses=self.flow.pauses,
            delivered=self._delivered,
            acked=self._acked,
        )

    def snapshot(self) -> FlowSnapshot:
        """The state now."""
        with self._lock:
            return self._snapshot()

    def __repr__(self) -> str:
        s = self.snapshot()
        return (
            f"AdaptiveFlowController(window={s.window}, in_flight={s.in_flight}, "
            f"paused={s.paused}, min_window={self.min_window}, max_window={self.max_window})"
        )

    # -- events ------------------------------------------------------------------------------

    def delivered(self, n: int = 1) -> None:
        """`n` items were handed to the consumer (the operator calls this)."""
        with self._lock:
            if self._in_flight == 0:
                self._busy_since = self._clock()
            self._in_flight += n
            self._delivered += n
            changed = self._apply()
        if changed:
            self._publish()

    def ack(self, n: int = 1) -> None:
        """The consumer finished `n` items (thread-safe)."""
        with self._lock:
            n = min(n, self._in_flight)
            if n <= 0:
                return
            now = self._clock()
            per_item = max(0.0, now - self._busy_since) / n
            self._busy_since = now
            avg = self._avg
            self._avg = per_item if avg is None else avg + self.smoothing * (per_item - avg)
            self._in_flight -= n
            self._acked += n
            window = self._window
            if self._hold_decrease > 0:
                self._hold_decrease -= n
            if self._in_flight * self._avg <= self.target_latency:
                window = min(self.max_window, window + self.increase)
            elif self._hold_decrease <= 0:
                window = max(self.min_window, int(window * self.decrease))
                self._hold_decrease = window
            resized = window != self._window
            self._window = window
            changed = self._apply() or resized
        if changed:
            self._publish()

    def _apply(self) -> bool:
        """Push window and backlog into the gate; returns whether `paused` changed."""
        flow = self.flow
        window = self._window
        if flow.high_water != window:
            flow.set_water_marks(window, window // 2)
        before = flow.paused
        flow.update(self._in_flight)
        return flow.paused != before

    def _publish(self) -> None:
        self._state.on_next(self.snapshot())

    # -- use ---------------------------------------------------------------------------------

    def operator(self) -> Callable[[Observable[Any]], Observable[Any]]:
        """The operator form (see `rxtokens.operators.adaptive_backpressure`)."""
        return adaptive_operator(self)

    def iterate(self, observable: Observable[Any]) -> AdaptiveIterator:
        """``async for`` over `observable`, acknowledging each item when the next is requested."""
        return AdaptiveIterator(self, observable)


def adaptive_operator(
    controller: AdaptiveFlowController,
) -> Callable[[Observable[Any]], Observable[Any]]:
    """Implementation of `rxtokens.operators.adaptive_backpressure` (see there)."""
    if not isinstance(controller, AdaptiveFlowController):
        raise ConfigError(f"expected an AdaptiveFlowController, got {controller!r}")

    def operator(source: Observable[Any]) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            delivered = controller.delivered

            def on_next(item: Any) -> None:
                delivered()
                observer.on_next(item)

            with flow_control_scope(controller.flow):
                return source.subscribe(
                    on_next, observer.on_error, observer.on_completed, scheduler=scheduler_
                )

        return Observable(subscribe)

    return operator


class AdaptiveIterator(ObservableAsyncIterator[Any]):
    """``async for`` through an `AdaptiveFlowController` (see `AdaptiveFlowController.iterate`).

    The one bounded sink of `rxtokens.aio` (`ObservableAsyncIterator`) with an
    unbounded queue (the controller's window bounds it); requesting the next
    item acknowledges the previous one. Use it as an async context manager (or
    call `aclose`) to dispose the subscription when leaving the loop early.
    """

    __slots__ = ("_controller", "_holding")

    def __init__(self, controller: AdaptiveFlowController, observable: Observable[Any]) -> None:
        super().__init__(observable.pipe(adaptive_operator(controller)), max_pending=0)
        self._controller = controller
        self._holding = False

    async def __anext__(self) -> Any:
        if self._holding:
            self._holding = False
            self._controller.ack()
        item = await super().__anext__()
        self._holding = True
        return item
