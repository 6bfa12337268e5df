"""Test doubles for rxtokens pipelines: provider wire formats and recorded transcripts.

- `rxtokens.testing.wire`: encoders that render a `Script` as the byte-exact
  SSE events of each provider (OpenAI chat and Responses, Anthropic, Gemini).
- `rxtokens.testing.transcripts`: bundled recorded-style ``.sse`` bodies and
  the `Completion` each must decode to.

Example:
    >>> from rxtokens.testing import Script, openai_chat_events
    >>> body = b"".join(openai_chat_events(Script(text="Hello world")))
    >>> body.endswith(b"data: [DONE]\\n\\n")
    True
"""

from __future__ import annotations

from .loopback import demo_stream, replay
from .server import ProviderServer, RecordedRequest, Reply
from .transcripts import TRANSCRIPTS, Expected, load_expected, load_transcript
from .wire import (
    FORMATS,
    Script,
    ScriptedToolCall,
    anthropic_events,
    encode,
    expected_completion,
    gemini_events,
    openai_chat_events,
    openai_responses_events,
    split_deltas,
    sse_frame,
)

__all__ = [
    "FORMATS",
    "TRANSCRIPTS",
    "Expected",
    "ProviderServer",
    "RecordedRequest",
    "Reply",
    "Script",
    "ScriptedToolCall",
    "anthropic_events",
    "demo_stream",
    "encode",
    "expected_completion",
    "gemini_events",
    "load_expected",
    "load_transcript",
    "openai_chat_events",
    "openai_responses_events",
    "replay",
    "split_deltas",
    "sse_frame",
]
