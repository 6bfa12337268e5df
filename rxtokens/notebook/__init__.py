"""Jupyter display: a token stream rendered live in a cell, and rich reprs of results.

`display_stream` shows a stream as Markdown in the cell's output and updates it in
place (one ``display(..., display_id=True)``, then ``update``) at a bounded frame
rate: deltas that arrive between two frames are coalesced into the next one, so a
fast stream costs at most `fps` updates per second however many tokens it has. Under
the text: the tool calls and other inflight events (intents, tool results) as they
arrive, and a status line (tokens, time to first token, tokens per second, the
finish reason or the error). The handle it returns is awaitable::

    completion = await display_stream(stream("testing:demo", "Hi"))

Threads: when a loop is running in the calling thread (a notebook cell always has
one), every notification is handed over to that loop's thread
(`rxtokens.aio.ThreadSafeObserver`) and the frame timer runs on it too, so
sources that emit on worker threads (llama.cpp) are displayed safely.

Rich reprs: importing this module inside IPython registers HTML / Markdown
formatters for `Completion` and HTML chips for every token kind
(`register_formatters`; also ``%load_ext rxtokens.notebook``). `token_html`,
`tokens_html`, `completion_html` and `completion_markdown` are the plain functions.

IPython is an optional dependency (``pip install 'rxtokens[notebook]'``); without an
IPython shell, `display_stream` prints the final text once instead of updating.

Example:
    >>> from rxtokens.notebook import display_stream  # doctest: +SKIP
    >>> completion = await display_stream(tokens, fps=15)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

from reactivex import Observable, abc

from ..broadcast import Broadcast
from ..errors import ConfigError
from ._display import StreamDisplay
from ._events import _import_ipython_display
from ._reprs import (
    completion_html,
    completion_markdown,
    register_formatters,
    token_html,
    tokens_html,
)

__all__ = [
    "StreamDisplay",
    "completion_html",
    "completion_markdown",
    "display_stream",
    "load_ipython_extension",
    "register_formatters",
    "token_html",
    "tokens_html",
]

_get_running_loop = asyncio._get_running_loop


def display_stream(
    source: Observable[Any] | Broadcast[Any],
    *,
    fps: float = 15,
    show_status: bool = True,
    show_tools: bool = True,
    scheduler: abc.SchedulerBase | None = None,
) -> StreamDisplay:
    """Render a token stream live in the cell output; await the handle for the `Completion`.

    Subscribes at once and shows the text as Markdown, updated in place. Tokens
    are coalesced into frames: the output is published at most `fps` times per
    second (the first display included), and the final frame (the complete
    text with the finish reason, or the partial text with the error) always
    follows the end of the stream, at the next free slot.

    With a loop running in the calling thread (any notebook cell), notifications
    from worker threads are handed over to it, so llama.cpp and other threaded
    sources are safe. ``await`` the handle to wait for the end; without ``await``
    the cell finishes at once and the output keeps updating while the stream
    runs on the kernel's loop. Without a loop (a plain script), use
    ``handle.result()``; without an IPython shell the final frame is printed.

    Args:
        source: a token Observable (subscribed once) or a `Broadcast` (one more subscriber).
        fps: most output updates per second (> 0).
        show_status: show the status line (tokens, time to first token,
            tokens/s, finish reason or error).
        show_tools: show tool calls (as their arguments stream in) and inflight
            events (intents, tool results, action results, agent steps).
        scheduler: frame timers and the clock (default: the running loop, else
            timer threads; a ``TestScheduler`` in tests).

    Returns:
        The `StreamDisplay` handle (awaitable; `StreamDisplay.cancel` stops the stream).

    Raises:
        ConfigError: an invalid `fps` or `source`.
        ProviderNotInstalledError: IPython is missing (``pip install 'rxtokens[notebook]'``).

    Example:
        >>> completion = await display_stream(stream("testing:demo", "Hi"))  # doctest: +SKIP
    """
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not fps > 0:
        raise ConfigError(f"fps must be a number > 0, got {fps!r}")
    if math.isinf(fps):
        raise ConfigError("fps must be finite; use a large value such as 1000 for no limit")
    if isinstance(source, Broadcast):
        observable: Observable[Any] = source.observable
    elif isinstance(source, abc.ObservableBase):
        observable = source
    else:
        raise ConfigError(
            f"display_stream() needs a token Observable or a Broadcast, got {type(source).__name__}"
        )
    _import_ipython_display()
    handle = StreamDisplay(
        fps=float(fps),
        show_status=show_status,
        show_tools=show_tools,
        scheduler=scheduler,
        loop=_get_running_loop(),
    )
    handle._start_display()
    handle._subscribe(observable)
    return handle


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext rxtokens.notebook``: register the rich reprs."""
    register_formatters(ipython)


with contextlib.suppress(Exception):
    register_formatters()
