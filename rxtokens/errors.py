"""The exception hierarchy. Every error rxtokens raises derives from `RxTokensError`.

::

    RxTokensError
    ├── ConfigError (ValueError)                 bad arguments, unknown ids, invalid specs
    │   ├── SpecError                            an invalid pipeline spec, one line per problem
    │   └── LaunchSyntaxError                    a launch string that breaks the grammar
    ├── ParamError (ValueError)                  one invalid parameter of a registry entry
    ├── ToolArgumentsError (ValueError)          a tool call's arguments do not fit the tool
    ├── ProviderNotInstalledError (ImportError)  an optional extra is missing
    ├── EmptyStreamError (LookupError)           first() / last() of a stream that emitted nothing
    ├── ReplayGapError (LookupError)             resume after a seq the broadcast no longer holds
    ├── StreamError                              a stream failed after it started; carries .partial
    │   ├── ProviderHTTPError                    non-2xx response: status, body, headers, provider
    │   │   ├── AuthenticationError              401 / 403
    │   │   └── RateLimitError                   429, Anthropic 529 overloaded: .retry_after
    │   ├── ProviderError                        an error event inside a 200 stream
    │   ├── TruncatedStreamError                 no terminal event: EOF or dropped mid-stream
    │   ├── StreamDecodeError                    bytes or JSON that are not the provider's format
    │   ├── ConnectionLostError                  no connection: refused, reset, DNS failure
    │   ├── StreamTimeoutError (asyncio.TimeoutError)  connect/first token/idle/progress/total
    │   ├── BackpressureOverflowError            a bounded buffer overflowed (policy "error")
    │   ├── PatternTimeoutError                  a regex from a spec exceeded its time budget
    │   ├── BroadcastCancelledError              a broadcast stopped before its upstream ended
    │   ├── RemoteStreamError                    a stream read from a shared log ended in error
    │   │   └── ProducerLostError                the process writing a shared stream died
    │   └── StoreUnavailableError                the shared stream store (Redis) is unreachable

Every `StreamError` has ``.partial``: the `Completion` of everything received
before the failure, so no text is ever lost. Aggregating stages (`aggregate()`,
`collect()`, `Broadcast.final`) set it (empty when nothing had arrived); an error
caught straight from a provider without one of them has ``partial=None``.
Messages say what happened and what to do; API keys never appear in them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tokens import Completion

__all__ = [
    "AuthenticationError",
    "BackpressureOverflowError",
    "BroadcastCancelledError",
    "ConfigError",
    "ConnectionLostError",
    "EmptyStreamError",
    "LaunchSyntaxError",
    "ParamError",
    "PatternTimeoutError",
    "ProducerLostError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderNotInstalledError",
    "RateLimitError",
    "RemoteStreamError",
    "ReplayGapError",
    "RxTokensError",
    "SpecError",
    "StoreUnavailableError",
    "StreamDecodeError",
    "StreamError",
    "StreamTimeoutError",
    "ToolArgumentsError",
    "TruncatedStreamError",
]
# (`caret_excerpt`, the helper that draws a launch string's error position, is public
# through `rxtokens.launch`; `__all__` lists exceptions only)


class RxTokensError(Exception):
    """Root of every error rxtokens raises.

    Example:
        >>> try:
        ...     raise RxTokensError("boom")
        ... except RxTokensError as error:
        ...     print(error)
        boom
    """


class ConfigError(RxTokensError, ValueError):
    """Invalid configuration: bad operator arguments, unknown provider ids, invalid specs.

    Example:
        >>> isinstance(ConfigError("bad argument"), ValueError)
        True
    """


class SpecError(ConfigError):
    """An invalid pipeline spec; one line per problem: where, which entry, which field.

    Attributes:
        problems: ``(location, message)`` pairs, e.g.
            ``("operators[2]", "redact: pattern: not a valid regular expression: ...")``.
        errors: the same as dicts with ``loc`` (a tuple), ``entry``, ``field`` and ``msg``.

    Example:
        >>> error = SpecError([{"loc": ("operators", 2), "entry": "", "msg": "unknown operator"}])
        >>> error.problems
        [('operators[2]', 'unknown operator')]
    """

    def __init__(self, errors: list[dict[str, Any]], *, excerpt: str | None = None) -> None:
        self.errors = errors
        self.problems = [(_loc_label(e["loc"]), e["msg"]) for e in errors]
        lines = [_problem_line(e) for e in errors]
        text = "\n".join(lines)
        if excerpt:
            text += "\n" + excerpt
        super().__init__(text)


def _loc_label(loc: Sequence[Any]) -> str:
    label = ""
    for part in loc:
        label += f"[{part}]" if isinstance(part, int) else (f".{part}" if label else str(part))
    return label


def _problem_line(error: Mapping[str, Any]) -> str:
    where = _loc_label(error["loc"])
    if error.get("entry"):
        return f"{where} {error['msg']}" if where else error["msg"]
    return f"{where}: {error['msg']}" if where else error["msg"]


class LaunchSyntaxError(ConfigError):
    """A launch string that does not follow the grammar.

    Attributes:
        reason: what is wrong.
        text: the launch string.
        position: the offending index in `text`.

    Example:
        >>> error = LaunchSyntaxError("expected a value", "a b = c", 4)
        >>> error.position, error.reason
        (4, 'expected a value')
    """

    def __init__(self, reason: str, text: str, position: int) -> None:
        self.reason = reason
        self.text = text
        self.position = position
        super().__init__(f"{reason} (position {position})\n{caret_excerpt(text, position)}")


def caret_excerpt(text: str, position: int, *, width: int = 76) -> str:
    """The line of `text` holding `position`, and a caret under it (long lines are cut).

    Example:
        >>> print(caret_excerpt("a b = c", 4))
          a b = c
              ^
    """
    position = max(0, min(position, len(text)))
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    line = text[start : end if end != -1 else len(text)]
    column = position - start
    if len(line) > width:
        left = max(0, min(column - width // 2, len(line) - width))
        segment = line[left : left + width]
        column -= left
        if left:
            segment = "..." + segment[3:]
        if left + width < len(line):
            segment = segment[:-3] + "..."
        line = segment
    shown = line.replace("\t", " ").replace("\r", " ")
    return f"  {shown}\n  {' ' * column}^"


class ParamError(RxTokensError, ValueError):
    """One invalid parameter of a registry entry (``field`` None: the whole entry)."""

    def __init__(self, entry: str, field: str | None, message: str) -> None:
        self.entry = entry
        self.field = field
        self.message = message
        parts = [entry] if entry and not (field is None and message.startswith(entry)) else []
        if field:
            parts.append(field)
        parts.append(message)
        super().__init__(": ".join(parts))


class ToolArgumentsError(RxTokensError, ValueError):
    """The arguments of a tool call do not fit the tool's signature (message lists why)."""


class EmptyStreamError(RxTokensError, LookupError):
    """`first` or `last` awaited an Observable that completed without emitting anything.

    Example:
        >>> isinstance(EmptyStreamError("no tokens"), LookupError)
        True
    """


class ReplayGapError(RxTokensError, LookupError):
    """`Broadcast.sequenced` was asked to resume after a seq older than the retained history.

    Example:
        >>> error = ReplayGapError("seq 3 is gone", after=3, oldest=10)
        >>> error.after, error.oldest
        (3, 10)
    """

    def __init__(self, message: str, *, after: int, oldest: int) -> None:
        super().__init__(message)
        self.after = after
        self.oldest = oldest


class ProviderNotInstalledError(RxTokensError, ImportError):
    """An optional dependency is missing; the message names the install command.

    Example:
        >>> print(ProviderNotInstalledError("openai", "openai"))
        'openai' is not installed; install it with: pip install 'rxtokens[openai]'
    """

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{package!r} is not installed; install it with: pip install 'rxtokens[{extra}]'"
        )


class StreamError(RxTokensError):
    """A stream failed after it started. `partial` holds what arrived before the failure.

    Example:
        >>> error = StreamError("dropped", provider="openai")
        >>> error.provider, error.partial
        ('openai', None)
    """

    def __init__(
        self, message: str, *, provider: str | None = None, partial: Completion | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.partial = partial

    def with_partial(self, partial: Completion | None) -> StreamError:
        """Set `partial` (only if not already set) and return self, for re-raising."""
        if self.partial is None:
            self.partial = partial
        return self


class ProviderHTTPError(StreamError):
    """The provider answered with a non-2xx HTTP status.

    Example:
        >>> ProviderHTTPError("server error", status=500, provider="openai")
        ProviderHTTPError(status=500, provider='openai')
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: str = "",
        headers: Mapping[str, str] | None = None,
        provider: str | None = None,
        partial: Completion | None = None,
    ) -> None:
        super().__init__(message, provider=provider, partial=partial)
        self.status = status
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, provider={self.provider!r})"


class AuthenticationError(ProviderHTTPError):
    """401 / 403: the API key is missing, wrong, or lacks permission.

    Example:
        >>> error = AuthenticationError("bad key", status=401)
        >>> isinstance(error, ProviderHTTPError), error.status
        (True, 401)
    """


class RateLimitError(ProviderHTTPError):
    """429 (rate limited) or Anthropic's 529 (overloaded). `retry_after` is in seconds.

    Example:
        >>> RateLimitError("slow down", status=429, retry_after=2.0).retry_after
        2.0
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ProviderError(StreamError):
    """An error event inside a 200 stream (``{"error": ...}``, ``event: error``, ``failed``).

    Example:
        >>> ProviderError("overloaded", error_type="overloaded_error")
        ProviderError(error_type='overloaded_error', message='overloaded')
    """

    def __init__(
        self,
        message: str,
        *,
        error_type: str | None = None,
        provider: str | None = None,
        partial: Completion | None = None,
    ) -> None:
        super().__init__(message, provider=provider, partial=partial)
        self.error_type = error_type

    def __repr__(self) -> str:
        return f"ProviderError(error_type={self.error_type!r}, message={self.message!r})"


class TruncatedStreamError(StreamError):
    """The stream ended without the provider's terminal event (EOF or a mid-stream drop).

    Example:
        >>> isinstance(TruncatedStreamError("no [DONE]"), StreamError)
        True
    """


class StreamDecodeError(StreamError):
    """The bytes are not in the provider's format (invalid JSON, wrong content type ...).

    Example:
        >>> StreamDecodeError("not JSON", provider="anthropic").provider
        'anthropic'
    """


class ConnectionLostError(StreamError):
    """No response: the connection was refused, reset or not resolved (safe to retry).

    Example:
        >>> isinstance(ConnectionLostError("refused"), StreamError)
        True
    """


class StreamTimeoutError(StreamError, asyncio.TimeoutError):
    """A timeout fired; `phase` says which: ``connect``, ``first_token``, ``idle`` (no bytes),
    ``progress`` (no token; pings do not count) or ``total`` (the stream's deadline).

    Example:
        >>> error = StreamTimeoutError("idle", phase="idle", timeout=5.0)
        >>> error.phase, isinstance(error, asyncio.TimeoutError)
        ('idle', True)
    """

    def __init__(
        self,
        message: str,
        *,
        phase: str,
        timeout: float,
        provider: str | None = None,
        partial: Completion | None = None,
    ) -> None:
        super().__init__(message, provider=provider, partial=partial)
        self.phase = phase
        self.timeout = timeout


class BackpressureOverflowError(StreamError):
    """A bounded buffer in front of a slow consumer overflowed under the ``"error"`` policy.

    Example:
        >>> BackpressureOverflowError("buffer full", capacity=8).capacity
        8
    """

    def __init__(self, message: str, *, capacity: int, partial: Completion | None = None) -> None:
        super().__init__(message, partial=partial)
        self.capacity = capacity


class PatternTimeoutError(StreamError):
    """Matching a regex that came from a spec (data, not code) exceeded its time budget.

    The pattern backtracks too much on this text (``(a|aa)+b`` on ``aaaa...``); the
    stream that used it ends, the others go on.

    Example:
        >>> PatternTimeoutError("too slow", pattern="(a|aa)+b", timeout=0.1).timeout
        0.1
    """

    def __init__(
        self, message: str, *, pattern: str, timeout: float, partial: Completion | None = None
    ) -> None:
        super().__init__(message, partial=partial)
        self.pattern = pattern
        self.timeout = timeout


class BroadcastCancelledError(StreamError):
    """The broadcast stopped before its upstream ended (last subscriber left, or `cancel()`).

    Example:
        >>> isinstance(BroadcastCancelledError("cancelled"), StreamError)
        True
    """


class RemoteStreamError(StreamError):
    """A stream read from a shared token log ended with an error raised in another process.

    `error_type` is the original error's type (its class name, or the server's
    ``cancelled``); it is also what the server sends as the ``event: error`` type.

    Example:
        >>> RemoteStreamError("upstream failed", error_type="ProviderError").error_type
        'ProviderError'
    """

    def __init__(self, message: str, *, error_type: str, partial: Completion | None = None) -> None:
        super().__init__(message, partial=partial)
        self.error_type = error_type

    def __repr__(self) -> str:
        return f"{type(self).__name__}(error_type={self.error_type!r}, message={self.message!r})"


class ProducerLostError(RemoteStreamError):
    """The process producing a shared stream stopped heartbeating before it ended the stream.

    Example:
        >>> ProducerLostError("gone").error_type
        'producer_lost'
    """

    def __init__(self, message: str, *, partial: Completion | None = None) -> None:
        super().__init__(message, error_type="producer_lost", partial=partial)


class StoreUnavailableError(StreamError):
    """The shared stream store (Redis) could not be reached for longer than the bound.

    Example:
        >>> StoreUnavailableError("redis down").error_type
        'store_unavailable'
    """

    error_type = "store_unavailable"
