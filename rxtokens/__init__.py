"""rxtokens: LLM output as ReactiveX streams."""

from __future__ import annotations

from .errors import (
    AuthenticationError,
    BackpressureOverflowError,
    ConfigError,
    ConnectionLostError,
    ProviderError,
    ProviderHTTPError,
    ProviderNotInstalledError,
    RateLimitError,
    RxTokensError,
    StreamDecodeError,
    StreamError,
    StreamTimeoutError,
    TruncatedStreamError,
)
from .sse import SseEvent, SseParser
from .tokens import (
    Choice,
    Completion,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    StreamToken,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    token_from_dict,
    token_from_json,
    token_to_dict,
    token_to_json,
)

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BackpressureOverflowError",
    "Choice",
    "Completion",
    "ConfigError",
    "ConnectionLostError",
    "Finish",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderNotInstalledError",
    "RateLimitError",
    "ReasoningDelta",
    "RefusalDelta",
    "RxTokensError",
    "SseEvent",
    "SseParser",
    "StreamDecodeError",
    "StreamError",
    "StreamTimeoutError",
    "StreamToken",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "TruncatedStreamError",
    "Usage",
    "__version__",
    "token_from_dict",
    "token_from_json",
    "token_to_dict",
    "token_to_json",
]
