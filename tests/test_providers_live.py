"""Live tests against the real provider APIs: each runs only when its API key is set.

Models can be overridden with RXTOKENS_LIVE_<PROVIDER>_MODEL (e.g. RXTOKENS_LIVE_OPENAI_MODEL).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from rxtokens.aio import collect
from rxtokens.providers import close_sessions, get_provider

pytestmark = pytest.mark.live

CASES: list[tuple[str, tuple[str, ...], str]] = [
    ("openai", ("OPENAI_API_KEY",), "gpt-4o-mini"),
    ("openai_responses", ("OPENAI_API_KEY",), "gpt-4o-mini"),
    ("anthropic", ("ANTHROPIC_API_KEY",), "claude-haiku-4-5"),
    ("gemini", ("GEMINI_API_KEY", "GOOGLE_API_KEY"), "gemini-2.5-flash"),
    # SigV4 with environment credentials, or a Bedrock API key
    ("bedrock", ("AWS_ACCESS_KEY_ID", "AWS_BEARER_TOKEN_BEDROCK"), "us.amazon.nova-lite-v1:0"),
]


def _case(name: str, env: tuple[str, ...], model: str) -> Any:
    missing = not any(os.environ.get(v) for v in env)
    return pytest.param(
        name,
        os.environ.get(f"RXTOKENS_LIVE_{name.upper()}_MODEL", model),
        marks=pytest.mark.skipif(missing, reason=f"{' / '.join(env)} not set"),
        id=name,
    )


@pytest.mark.parametrize(("name", "model"), [_case(*c) for c in CASES])
async def test_live_stream_and_health(name: str, model: str) -> None:
    provider = get_provider(name)
    limit: Callable[[], dict[str, Any]] = {
        "openai": lambda: {"max_tokens": 20},
        "openai_responses": lambda: {"max_output_tokens": 20},
        "anthropic": lambda: {"max_tokens": 20},
        "gemini": lambda: {"max_tokens": 20},
        "bedrock": lambda: {"max_tokens": 20},
    }[name]
    try:
        health = await provider.health()
        assert health.ok, health.message
        completion = await collect(
            provider.stream(model, "Reply with the single word: pong", **limit())
        )
    finally:
        await close_sessions()
    assert "pong" in completion.text.lower()
    assert completion.finish_reason is not None
    assert completion.usage is not None
    assert completion.usage.output_tokens
