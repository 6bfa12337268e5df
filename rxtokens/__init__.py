"""rxtokens: LLM output as ReactiveX streams.

The package loads lazily: ``import rxtokens`` costs almost nothing, and each name below
imports its module on first use (``rxtokens.Broadcast`` loads the broadcast machinery,
``import rxtokens.sse`` loads neither aiohttp, pydantic nor tiktoken).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import presets
    from .aio import (
        collect,
        from_async_iterable,
        run,
        to_async_iterator,
    )
    from .broadcast import (
        Broadcast,
        Sequenced,
        stream_to,
        stream_to_sync,
    )
    from .completion import (
        CompletionBuilder,
    )
    from .distributed import (
        RedisTokenLog,
        from_log,
    )
    from .errors import (
        AuthenticationError,
        BackpressureOverflowError,
        BroadcastCancelledError,
        ConfigError,
        ConnectionLostError,
        EmptyStreamError,
        LaunchSyntaxError,
        PatternTimeoutError,
        ProducerLostError,
        ProviderError,
        ProviderHTTPError,
        ProviderNotInstalledError,
        RateLimitError,
        RemoteStreamError,
        ReplayGapError,
        RxTokensError,
        SpecError,
        StoreUnavailableError,
        StreamDecodeError,
        StreamError,
        StreamTimeoutError,
        TruncatedStreamError,
    )
    from .inflight import (
        Agent,
        KeywordClassifier,
        TextMatch,
        Tool,
        ToolRegistry,
        run_agent,
    )
    from .operators import (
        AdaptiveFlowController,
        FlowSnapshot,
        MetricsSnapshot,
        StreamMetrics,
    )
    from .providers import (
        stream,
    )
    from .registry import (
        register_operator,
        register_provider,
        register_sink,
    )
    from .spec import (
        OperatorSpec,
        PipelineSpec,
        SinkSpec,
        SourceSpec,
        parse_launch,
    )
    from .sse import (
        SseEvent,
        SseParser,
    )
    from .tokens import (
        ActionResult,
        Choice,
        Completion,
        Finish,
        Intent,
        PartialToolCall,
        ReasoningDelta,
        RefusalDelta,
        StepBoundary,
        StreamToken,
        TextDelta,
        ToolCall,
        ToolCallDelta,
        ToolResult,
        Usage,
        token_from_dict,
        token_from_json,
        token_to_dict,
        token_to_json,
    )

__version__ = "0.1.0"

_HOMES: dict[str, str] = {
    "ActionResult": "tokens",
    "AdaptiveFlowController": "operators",
    "Agent": "inflight",
    "AuthenticationError": "errors",
    "BackpressureOverflowError": "errors",
    "Broadcast": "broadcast",
    "BroadcastCancelledError": "errors",
    "Choice": "tokens",
    "collect": "aio",
    "Completion": "tokens",
    "CompletionBuilder": "completion",
    "ConfigError": "errors",
    "ConnectionLostError": "errors",
    "EmptyStreamError": "errors",
    "Finish": "tokens",
    "FlowSnapshot": "operators",
    "from_async_iterable": "aio",
    "from_log": "distributed",
    "Intent": "tokens",
    "KeywordClassifier": "inflight",
    "LaunchSyntaxError": "errors",
    "MetricsSnapshot": "operators",
    "OperatorSpec": "spec",
    "parse_launch": "spec",
    "PartialToolCall": "tokens",
    "PatternTimeoutError": "errors",
    "PipelineSpec": "spec",
    "presets": "presets",
    "ProducerLostError": "errors",
    "ProviderError": "errors",
    "ProviderHTTPError": "errors",
    "ProviderNotInstalledError": "errors",
    "RateLimitError": "errors",
    "ReasoningDelta": "tokens",
    "RefusalDelta": "tokens",
    "register_operator": "registry",
    "register_provider": "registry",
    "register_sink": "registry",
    "RedisTokenLog": "distributed",
    "RemoteStreamError": "errors",
    "ReplayGapError": "errors",
    "run": "aio",
    "run_agent": "inflight",
    "RxTokensError": "errors",
    "Sequenced": "broadcast",
    "SinkSpec": "spec",
    "SourceSpec": "spec",
    "SpecError": "errors",
    "SseEvent": "sse",
    "StoreUnavailableError": "errors",
    "SseParser": "sse",
    "StepBoundary": "tokens",
    "stream": "providers",
    "stream_to": "broadcast",
    "stream_to_sync": "broadcast",
    "StreamDecodeError": "errors",
    "StreamError": "errors",
    "StreamMetrics": "operators",
    "StreamTimeoutError": "errors",
    "StreamToken": "tokens",
    "TextDelta": "tokens",
    "TextMatch": "inflight",
    "to_async_iterator": "aio",
    "token_from_dict": "tokens",
    "token_from_json": "tokens",
    "token_to_dict": "tokens",
    "token_to_json": "tokens",
    "Tool": "inflight",
    "ToolCall": "tokens",
    "ToolCallDelta": "tokens",
    "ToolRegistry": "inflight",
    "ToolResult": "tokens",
    "TruncatedStreamError": "errors",
    "Usage": "tokens",
}
"""Each public name -> the module (below rxtokens) that defines it."""

__all__ = [
    "ActionResult",
    "AdaptiveFlowController",
    "Agent",
    "AuthenticationError",
    "BackpressureOverflowError",
    "Broadcast",
    "BroadcastCancelledError",
    "Choice",
    "Completion",
    "CompletionBuilder",
    "ConfigError",
    "ConnectionLostError",
    "EmptyStreamError",
    "Finish",
    "FlowSnapshot",
    "Intent",
    "KeywordClassifier",
    "LaunchSyntaxError",
    "MetricsSnapshot",
    "OperatorSpec",
    "PartialToolCall",
    "PatternTimeoutError",
    "PipelineSpec",
    "ProducerLostError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderNotInstalledError",
    "RateLimitError",
    "ReasoningDelta",
    "RedisTokenLog",
    "RefusalDelta",
    "RemoteStreamError",
    "ReplayGapError",
    "RxTokensError",
    "Sequenced",
    "SinkSpec",
    "SourceSpec",
    "SpecError",
    "SseEvent",
    "SseParser",
    "StepBoundary",
    "StoreUnavailableError",
    "StreamDecodeError",
    "StreamError",
    "StreamMetrics",
    "StreamTimeoutError",
    "StreamToken",
    "TextDelta",
    "TextMatch",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolRegistry",
    "ToolResult",
    "TruncatedStreamError",
    "Usage",
    "__version__",
    "collect",
    "from_async_iterable",
    "from_log",
    "parse_launch",
    "presets",
    "register_operator",
    "register_provider",
    "register_sink",
    "run",
    "run_agent",
    "stream",
    "stream_to",
    "stream_to_sync",
    "to_async_iterator",
    "token_from_dict",
    "token_from_json",
    "token_to_dict",
    "token_to_json",
]


def __getattr__(name: str) -> Any:
    """Import the module that holds `name` on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'rxtokens' has no attribute {name!r}")
    module = importlib.import_module(f".{home}", __name__)
    value = module if name == home else getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
