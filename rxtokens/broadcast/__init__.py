"""`Broadcast`: one live token stream, many subscribers, and the final answer.

A provider observable is *cold*: every subscription makes its own request.
`Broadcast` makes it *hot*: one upstream subscription (one request) is shared
by any number of subscribers, and a `CompletionBuilder` assembles the final
`Completion` of the same request ("dual output": live chunks AND the answer).

Built from parts, one module each:
    * the token log (`rxtokens.token_log`): the only thing a broadcast stores
      (numbered tokens, retention, the end marker);
    * per-subscriber delivery (``_delivery``): inline, or a bounded queue with
      the overflow policies of the ``on_backpressure_*`` operators and the one
      coalescer (`rxtokens.coalesce`);
    * the final answer (``_answer``): built from the log only when asked;
    * the lifecycle (``_core``: refcount, cancellation, the end) and the
      public API (``_hub``); `stream_to` (``_stream_to``) on top.

Lifecycle:
    * The upstream is subscribed on the first subscription (to the tokens, to
      `Broadcast.completion`, or an explicit `Broadcast.connect`).
    * It is disposed (the request is cancelled) when the last of them leaves,
      unless ``keep_alive=True``: then it runs to completion, so that
      `Broadcast.final` still resolves. A cancelled broadcast ends with
      `BroadcastCancelledError` (its ``.partial`` holds what arrived).
    * A broadcast wraps exactly one request: it never re-subscribes upstream.
      Subscribers that arrive after the end get the replay and the end.

Replay and sequence numbers:
    Every token gets a sequence number ``seq``: 1 for the first token, then
    +1 per token. ``replay`` says what a late subscriber receives before it
    continues live: ``"all"`` (every token so far), an int ``N`` (the last N)
    or ``"none"``. Replay and live delivery are atomic with respect to each
    other (one lock around "record + fan out" and "replay + join"), so a late
    subscriber sees no gap and no duplicate, even when it joins from another
    thread while tokens are being emitted.

    Plain subscribers (`Broadcast.subscribe`, `Broadcast.observable`) receive
    the tokens themselves. `Broadcast.sequenced` gives ``Sequenced(seq,
    token)`` pairs and resumes strictly after a given ``seq`` (for instance an
    SSE ``Last-Event-ID``); if that point is older than the retained history
    it fails with `ReplayGapError` (``on_gap="error"``, the default) or starts
    at the oldest retained token (``on_gap="oldest"``).

Isolation:
    A subscriber whose ``on_next`` raises is removed; the others continue
    undisturbed. The failure is logged on the ``rxtokens.broadcast`` logger and
    reported on `Broadcast.errors` as ``(subscriber_name, exception)``.

Slow subscribers (per-subscriber overflow policy):
    ``policy="block"`` (the default) calls the subscriber inline on the
    producer's thread, like a `reactivex.subject.Subject`: a slow subscriber
    slows everyone. The other policies give the subscriber a bounded queue
    that is drained on its own ``scheduler`` (or by its async iterator, see
    `Broadcast.to_async_iterator`), so it never slows the upstream or the other
    subscribers:

    * ``"coalesce"``: pending deltas are merged by the rules of
      `rxtokens.coalesce` (with `Usage` merged field by field); nothing is lost
      and the number of pending items stays bounded.
    * ``"drop_newest"`` (formerly ``"drop_latest"``, still accepted): when
      ``max_pending`` items wait, incoming deltas are dropped (`Finish`,
      `ToolCall` and `Usage` are always kept).
    * ``"error"``: when ``max_pending`` items wait, the subscriber receives
      what was pending and then `BackpressureOverflowError`, and is removed.

    A replay is queued separately from the live tokens (it is already in
    memory), so ``max_pending`` bounds what piles up live.

Threads:
    Tokens may arrive on any thread (a llama.cpp worker, an event loop).
    Inline ("block") subscribers are called on that thread while the
    broadcast's re-entrant lock is held: they may subscribe, unsubscribe or
    read `Broadcast.completion_so_far` from their callback, but must not wait
    for another thread that does so. Queued subscribers run on their scheduler,
    outside the lock. `Broadcast.final` is completed on its own event loop.

Example:
    >>> import reactivex
    >>> from rxtokens.tokens import TextDelta
    >>> b = Broadcast(reactivex.of(TextDelta("Hel"), TextDelta("lo")))
    >>> seen = []
    >>> _ = b.subscribe(lambda t: seen.append(t.text))
    >>> _ = b.subscribe(lambda t: seen.append(t.text.upper()))  # late: full replay
    >>> seen
    ['Hel', 'lo', 'HEL', 'LO']
    >>> b.completion_so_far().text
    'Hello'
"""

from ..errors import BroadcastCancelledError, ReplayGapError
from ..token_log import Sequenced
from ._core import OnGap
from ._delivery import BroadcastIterator, OverflowPolicy
from ._hub import Broadcast, Replay
from ._stream_to import Sink, stream_to, stream_to_sync

__all__ = [
    "Broadcast",
    "BroadcastCancelledError",
    "BroadcastIterator",
    "OnGap",
    "OverflowPolicy",
    "Replay",
    "ReplayGapError",
    "Sequenced",
    "Sink",
    "stream_to",
    "stream_to_sync",
]
