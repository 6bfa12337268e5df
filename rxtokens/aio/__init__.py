"""asyncio bridges: async iterables in, async iterators and awaitables out.

* `from_async_iterable` turns an async iterable (an aiohttp response body, an
  SDK stream, an async generator) into a *cold*, *pull-based* Observable: the
  next item is requested only after the previous one was delivered, and
  disposing the subscription cancels the iteration and closes the async
  generator (its ``finally`` runs, the HTTP connection is released).
* `to_async_iterator` goes the other way, ``async for token in ...``, through a
  bounded queue.
* `FlowControl` links the two: when the queue of `to_async_iterator` fills up,
  the pull-based sources of the same pipeline stop pulling (the socket is read
  more slowly) instead of memory filling up.
* `first`, `last`, `to_list`, `collect` await an Observable; `run` is the
  synchronous entry point for scripts.
* `observe_on_loop` / `ThreadSafeObserver` hand items produced on a worker
  thread (llama.cpp) over to the event loop thread, in order.

Which event loop? Subscriptions to `from_async_iterable` run their iteration
as a task on the loop given as ``loop=``, or else on the loop running in the
subscribing thread. Subscribing outside a running loop without ``loop=``
raises `ConfigError`: subscribe inside ``async`` code (``await collect(...)``,
``async for ... in to_async_iterator(...)``) or use `rxtokens.aio.run` in a script.

How flow control travels: `to_async_iterator` sets the context variable
`current_flow_control` around its synchronous ``observable.subscribe(...)``
call. Subscription travels synchronously down an ordinary ``pipe()`` chain to
the sources, and `from_async_iterable` captures the variable's value there
(its task also inherits it, so sources subscribed later from inside that task,
e.g. by ``concat``, see it too). Before pulling each item a source awaits
`FlowControl.wait_ready`. Limitation: operators that subscribe to their
source *later from elsewhere* (``subscribe_on``, ``delay_subscription``, a hot
`Broadcast` connected by another consumer, a scheduler on another thread)
break the link; the queue then cannot slow the source down and falls back to
its overflow policy (`BackpressureOverflowError` once it holds ``max_pending`` items).

Example:
    >>> async def words():
    ...     for w in ["Hel", "lo"]:
    ...         yield TextDelta(w)
    >>> run(from_async_iterable(words)).text  # doctest: +SKIP
    'Hello'
"""

from ..errors import EmptyStreamError
from ._await import collect, first, last, run, run_sync, to_list
from ._flow import FlowControl, current_flow_control, flow_control_scope
from ._sink import BoundedSink, ObservableAsyncIterator, to_async_iterator
from ._source import from_async_iterable
from ._threads import ThreadSafeObserver, observe_on_loop

__all__ = [
    "BoundedSink",
    "EmptyStreamError",
    "FlowControl",
    "ObservableAsyncIterator",
    "ThreadSafeObserver",
    "collect",
    "current_flow_control",
    "first",
    "flow_control_scope",
    "from_async_iterable",
    "last",
    "observe_on_loop",
    "run",
    "run_sync",
    "to_async_iterator",
    "to_list",
]
