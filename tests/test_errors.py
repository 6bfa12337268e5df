"""The error hierarchy: stdlib bases, context attributes, messages."""

from __future__ import annotations

import asyncio

import rxtokens.errors as errors
from rxtokens import (
    Completion,
    ConfigError,
    ProviderNotInstalledError,
    RateLimitError,
    RxTokensError,
    StreamError,
    StreamTimeoutError,
    TruncatedStreamError,
)


def test_every_public_error_derives_from_the_root() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), RxTokensError), name


def test_errors_also_inherit_the_stdlib_type_callers_catch() -> None:
    assert issubclass(ConfigError, ValueError)
    assert issubclass(StreamTimeoutError, asyncio.TimeoutError)
    assert issubclass(ProviderNotInstalledError, ImportError)


def test_not_installed_names_the_extra_to_install() -> None:
    err = ProviderNotInstalledError("llama-cpp-python", "local")
    assert "pip install 'rxtokens[local]'" in str(err)


def test_rate_limit_carries_status_and_retry_after() -> None:
    err = RateLimitError("slow down", status=429, retry_after=1.5, provider="openai")
    assert (err.status, err.retry_after, err.provider) == (429, 1.5, "openai")
    assert "429" in repr(err)


def test_with_partial_sets_once() -> None:
    first, second = Completion(text="a"), Completion(text="ab")
    err = TruncatedStreamError("dropped").with_partial(first)
    assert isinstance(err, StreamError)
    assert err.with_partial(second).partial is first


def test_timeout_says_which_phase() -> None:
    err = StreamTimeoutError("idle for 5s", phase="idle", timeout=5.0)
    assert (err.phase, err.timeout) == ("idle", 5.0)
