"""The exception hierarchy. Every error rxtokens raises derives from `RxTokensError`.

::

    RxTokensError
    ├── ConfigError (ValueError)                 bad arguments, unknown ids, invalid specs
    ├── ProviderNotInstalledError (ImportError)  an optional extra is missing
    ├── StreamError                              a stream failed after it started; carries .partial
    │   ├── ProviderHTTPError                    non-2xx response: status, body, headers, provider
    │   │   ├── AuthenticationError              401 / 403
    │   │   └── RateLimitError                   429, Anthropic 529 overloaded: .retry_after
    │   ├── ProviderError                        an error event inside a 200 stream
    │   ├── TruncatedStreamError                 no terminal event: EOF or dropped mid-stream
    │   ├── StreamDecodeError                    bytes or JSON that are not the provider's format
    │   ├── ConnectionLostError                  no connection: refused, reset, DNS failure
    │   ├── StreamTimeoutError (asyncio.TimeoutError)  connect / first token / idle timeout
    │   └── BackpressureOverflowError            a bounded buffer overflowed (policy "error")

Every `StreamError` has ``.partial``: the `Completion` of everything received
before the failure, so no text is ever lost. Aggregating stages (`aggregate()`,
`collect()`, `Broadcast.final`) set it (empty when nothing had arrived); an error
caught straight from a provider without one of them has ``partial=None``.
Messages say what happened and what to do; API keys never appear in them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tokens import Completion

__all__ = [
    "AuthenticationError",
    "BackpressureOverflowError",
    "ConfigError",
    "ConnectionLostError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderNotInstalledError",
    "RateLimitError",
    "RxTokensError",
    "StreamDecodeError",
    "StreamError",
    "StreamTimeoutError",
    "TruncatedStreamError",
]


class RxTokensError(Exception):
    """Root of every error rxtokens raises."""


class ConfigError(RxTokensError, ValueError):
    """Invalid configuration: bad operator arguments, unknown provider ids, invalid specs."""


class ProviderNotInstalledError(RxTokensError, ImportError):
    """An optional dependency is missing; the message names the install command."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{package!r} is not installed; install it with: pip install 'rxtokens[{extra}]'"
        )


class StreamError(RxTokensError):
    """A stream failed after it started. `partial` holds what arrived before the failure."""

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
    """The provider answered with a non-2xx HTTP status."""

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
    """401 / 403: the API key is missing, wrong, or lacks permission."""


class RateLimitError(ProviderHTTPError):
    """429 (rate limited) or Anthropic's 529 (overloaded). `retry_after` is in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ProviderError(StreamError):
    """An error event inside a 200 stream (``{"error": ...}``, ``event: error``, ``failed``)."""

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
    """The stream ended without the provider's terminal event (EOF or a mid-stream drop)."""


class StreamDecodeError(StreamError):
    """The bytes are not in the provider's format (invalid JSON, wrong content type ...)."""


class ConnectionLostError(StreamError):
    """No response: the connection was refused, reset or not resolved (safe to retry)."""


class StreamTimeoutError(StreamError, asyncio.TimeoutError):
    """A connect, time-to-first-token or idle timeout fired. `phase` says which."""

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
    """A bounded buffer in front of a slow consumer overflowed under the ``"error"`` policy."""

    def __init__(self, message: str, *, capacity: int, partial: Completion | None = None) -> None:
        super().__init__(message, partial=partial)
        self.capacity = capacity
