"""Adapters from the official SDKs' stream objects to ``Observable[StreamToken]``.

For code that already holds an ``openai`` or ``anthropic`` client::

    stream = client.chat.completions.create(model=..., messages=..., stream=True)
    from_openai_stream(stream).pipe(aggregate())

Each SDK object is turned back into the event the provider sent (``model_dump`` of
the fields that were present on the wire) and fed to the same pure decoders the
HTTP providers use, so the tokens are identical. SDK exceptions become rxtokens
errors (`ProviderHTTPError` ..., `ProviderError`, `ConnectionLostError`,
`StreamTimeoutError`).

An SDK stream can be consumed once: the observable may be subscribed once (share it
with `rxtokens.broadcast.Broadcast`). Sync streams are iterated on `scheduler`
(default: synchronously, like ``reactivex.from_iterable``); async streams through
`rxtokens.aio.from_async_iterable`. Disposing closes the SDK stream (its HTTP response):
an async stream at once; a sync stream when its next chunk arrives (a thread blocked in
the SDK's read cannot be woken safely from outside).
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable
from reactivex.scheduler import CurrentThreadScheduler

from ..aio import from_async_iterable
from ..errors import (
    ConfigError,
    ConnectionLostError,
    ProviderError,
    ProviderNotInstalledError,
    StreamError,
    StreamTimeoutError,
    TruncatedStreamError,
)
from ..operators._decode_anthropic import AnthropicDecoder
from ..operators._decode_openai import OpenAIChatDecoder
from ..operators._decode_responses import OpenAIResponsesDecoder
from ..sse import SseEvent
from ..tokens import StreamToken
from ._http import HttpRequest, error_from_response

__all__ = ["from_anthropic_stream", "from_openai_stream"]

_ANTHROPIC_RAW = frozenset(
    {
        "message_start",
        "message_delta",
        "message_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
    }
)


def _require(package: str) -> None:
    try:
        __import__(package)
    except ImportError:
        raise ProviderNotInstalledError(package, package) from None


def _dump(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    dumped: dict[str, Any] = obj.model_dump(mode="json", exclude_unset=True, by_alias=True)
    return dumped


class _Translator:
    """Per-subscription state: SDK objects -> SseEvents -> the provider's pure decoder."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.decoder: Any = None
        self.chat = False
        self.choices: set[int] = set()
        self.finished: set[int] = set()

    def feed(self, obj: Any) -> list[StreamToken]:
        data = _dump(obj)
        kind = data.get("type")
        if self.provider == "anthropic":
            if kind not in _ANTHROPIC_RAW:  # MessageStream's derived events (text, ...)
                return []
            if self.decoder is None:
                self.decoder = AnthropicDecoder()
            if kind == "content_block_stop":
                data = {"type": kind, "index": data.get("index")}  # drop the snapshot
            return list(self.decoder.feed(SseEvent(kind, json.dumps(data))))
        if self.decoder is None:
            if isinstance(kind, str) and (kind.startswith("response.") or kind == "error"):
                self.decoder = OpenAIResponsesDecoder()
            else:
                self.decoder = OpenAIChatDecoder()
                self.chat = True
        if self.chat:
            for choice in data.get("choices") or ():
                index = choice.get("index", 0)
                self.choices.add(index)
                if choice.get("finish_reason") is not None:
                    self.finished.add(index)
            return list(self.decoder.feed(SseEvent("message", json.dumps(data))))
        return list(self.decoder.feed(SseEvent(str(kind), json.dumps(data))))

    def close(self) -> list[StreamToken]:
        if self.decoder is None:
            raise TruncatedStreamError(
                f"the {self.provider} SDK stream ended before any event", provider=self.provider
            )
        tokens: list[StreamToken] = []
        if self.chat and self.choices and self.choices <= self.finished:
            # The SDK swallowed `data: [DONE]`; every choice finished, so it was there.
            tokens.extend(self.decoder.feed(SseEvent("message", "[DONE]")))
        tokens.extend(self.decoder.close())
        return tokens


def _convert_error(exc: BaseException, provider: str) -> BaseException:
    """An SDK exception as the matching rxtokens error (others unchanged)."""
    if isinstance(exc, StreamError):
        return exc
    name = {cls.__name__ for cls in type(exc).__mro__}
    module = type(exc).__module__.split(".")[0]
    if module not in ("openai", "anthropic"):
        return exc
    message = str(getattr(exc, "message", "") or exc)
    if "APITimeoutError" in name:
        cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else ""
        phase = "connect" if cause in ("ConnectTimeout", "PoolTimeout") else "idle"
        return StreamTimeoutError(
            f"{provider} SDK request timed out ({phase}): {message}; raise the SDK client's "
            "timeout",
            phase=phase,
            timeout=0.0,  # the SDK does not say which limit it applied
            provider=provider,
        )
    if "APIConnectionError" in name:
        return ConnectionLostError(
            f"{provider} SDK connection failed: {message}", provider=provider
        )
    body = getattr(exc, "body", None)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status >= 300:
        response = getattr(exc, "response", None)
        headers = dict(getattr(response, "headers", {}) or {})
        raw = json.dumps(body).encode() if body is not None else message.encode()
        request = HttpRequest("POST", str(getattr(response, "url", "")), provider)
        return error_from_response(request, status, headers, raw)
    if "APIError" in name:  # an error event inside a 200 stream
        error = body.get("error", body) if isinstance(body, dict) else None
        error_type = None
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            error_type = error.get("type") or error.get("code")
        return ProviderError(
            f"{provider} reported an error mid-stream: {message}",
            error_type=None if error_type is None else str(error_type),
            provider=provider,
        )
    return exc


def _adapt(
    stream: Any, provider: str, scheduler: abc.SchedulerBase | None
) -> Observable[StreamToken]:
    if hasattr(stream, "__aiter__"):
        return _adapt_async(stream, provider)
    if not hasattr(stream, "__iter__") or isinstance(stream, (str, bytes, Mapping)):
        raise ConfigError(
            f"expected an SDK stream (create(..., stream=True) or messages.stream()), "
            f"got {type(stream).__name__}"
        )
    used = threading.Lock()

    def subscribe(
        observer: abc.ObserverBase[StreamToken], scheduler_: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        if not used.acquire(blocking=False):
            observer.on_error(
                ConfigError("an SDK stream can be subscribed only once; share it with Broadcast")
            )
            return Disposable()
        disposed = threading.Event()

        def close_stream() -> None:
            close = getattr(stream, "close", None)
            if callable(close):
                close()

        def run(_: abc.SchedulerBase, __: Any = None) -> None:
            translator = _Translator(provider)
            try:
                for obj in stream:
                    if disposed.is_set():
                        break
                    for token in translator.feed(obj):
                        observer.on_next(token)
                if disposed.is_set():
                    return
                tokens = translator.close()
            except Exception as exc:
                if not disposed.is_set():
                    observer.on_error(_convert_error(exc, provider))  # type: ignore[arg-type]
                return
            finally:
                close_stream()
            for token in tokens:
                observer.on_next(token)
            observer.on_completed()

        sched = scheduler or scheduler_ or CurrentThreadScheduler.singleton()
        return CompositeDisposable(sched.schedule(run), Disposable(disposed.set))

    return Observable(subscribe)


def _adapt_async(stream: Any, provider: str) -> Observable[StreamToken]:
    used = threading.Lock()

    async def tokens() -> AsyncIterator[StreamToken]:
        if not used.acquire(blocking=False):
            raise ConfigError("an SDK stream can be subscribed only once; share it with Broadcast")
        translator = _Translator(provider)
        try:
            try:
                async for obj in stream:
                    for token in translator.feed(obj):
                        yield token
                final = translator.close()
            except Exception as exc:
                raise _convert_error(exc, provider) from None
            for token in final:
                yield token
        finally:
            close = getattr(stream, "close", None)
            if callable(close):
                result = close()
                if inspect.isawaitable(result):
                    await result

    return from_async_iterable(tokens)


def from_openai_stream(
    stream: Any, *, scheduler: abc.SchedulerBase | None = None
) -> Observable[StreamToken]:
    """Tokens of an ``openai`` SDK stream (``Stream`` / ``AsyncStream``).

    Chat Completions chunks (``chat.completions.create(stream=True)``) and Responses
    events (``responses.create(stream=True)``) are both understood.

    Args:
        stream: the SDK stream object, sync or async.
        scheduler: where a sync stream is iterated (default: synchronously on subscribe).

    Raises:
        ProviderNotInstalledError: the ``openai`` package is missing.
        ConfigError: `stream` is not an SDK stream (not iterable, or a str/bytes/dict).

    Example:
        >>> from openai import OpenAI  # doctest: +SKIP
        >>> chunks = OpenAI().chat.completions.create(  # doctest: +SKIP
        ...     model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True)
        >>> from_openai_stream(chunks).pipe(aggregate()).run().text  # doctest: +SKIP
        'Hello!'
    """
    _require("openai")
    return _adapt(stream, "openai", scheduler)


def from_anthropic_stream(
    stream: Any, *, scheduler: abc.SchedulerBase | None = None
) -> Observable[StreamToken]:
    """Tokens of an ``anthropic`` SDK stream.

    Accepts ``messages.create(stream=True)`` (``Stream`` / ``AsyncStream`` of raw
    events) and an entered ``messages.stream()`` (``MessageStream`` /
    ``AsyncMessageStream``; its derived ``text`` / ``input_json`` events are skipped,
    the raw ones decoded).

    Raises:
        ProviderNotInstalledError: the ``anthropic`` package is missing.
        ConfigError: `stream` is not an SDK stream (not iterable, or a str/bytes/dict).

    Example:
        >>> from anthropic import Anthropic  # doctest: +SKIP
        >>> events = Anthropic().messages.create(model="claude-sonnet-4-5", max_tokens=100,
        ...     messages=[{"role": "user", "content": "Hi"}], stream=True)  # doctest: +SKIP
        >>> from_anthropic_stream(events).pipe(aggregate()).run().text  # doctest: +SKIP
        'Hello!'
    """
    _require("anthropic")
    return _adapt(stream, "anthropic", scheduler)
