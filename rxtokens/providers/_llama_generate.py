"""One llama.cpp generation for `rxtokens.providers.llama`: the worker thread, delivery
to the subscriber (directly or through an event loop), incremental UTF-8 decoding and
stop strings.
"""

from __future__ import annotations

import asyncio
import codecs
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reactivex import abc

from ..aio import ThreadSafeObserver
from ..errors import ConfigError, ProviderError, RxTokensError
from ..tokens import Finish, StreamToken, TextDelta, Usage
from ._llama_models import _import_llama_cpp, _Model, _parameter_names

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["Utf8Stream"]

_MAX_OVERRUN = 3
"""Most tokens generated past max_tokens while a multi-byte character is unfinished."""

# Parameters passed to `Llama.generate` as they are (sampling and control).
_GENERATE_PARAMS = frozenset(
    {
        "top_k", "top_p", "min_p", "typical_p", "repeat_penalty", "frequency_penalty",
        "presence_penalty", "tfs_z", "mirostat_mode", "mirostat_tau", "mirostat_eta",
        "penalize_nl", "logits_processor", "stopping_criteria", "grammar",
    }
)  # fmt: skip
# Handled by this module: `logit_bias` becomes a logits processor, as in llama-cpp-python.
_EXTRA_PARAMS = frozenset({"logit_bias"})
# Chat mode only: passed to the chat handler (it may turn them into a grammar).
_CHAT_PARAMS = frozenset({"response_format"})


def _stop_list(stop: str | Sequence[str] | None) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else list(stop)
    if not all(isinstance(s, str) and s for s in stops):
        raise ConfigError(f"stop must be a non-empty string or a list of them, got {stop!r}")
    return stops


@dataclass(frozen=True)
class _Request:
    """One generation, as validated when `llama` was called."""

    prompt: str
    messages: list[dict[str, Any]] | None
    chat_params: dict[str, Any]
    max_tokens: int | None
    temperature: float
    seed: int | None
    stops: list[str]
    sampling: dict[str, Any]
    logit_bias: Any


# --------------------------------------------------------------------------- delivery


class _Sink:
    """Where the worker delivers: the observer itself, or a loop hand-off in front of it.

    `cancelled` is the generation's stop flag: set by disposal, by a failing
    subscriber callback, and once the stream has ended.
    """

    __slots__ = ("cancelled", "handoff", "target")

    def __init__(
        self, observer: abc.ObserverBase[StreamToken], loop: asyncio.AbstractEventLoop | None
    ) -> None:
        self.cancelled = False
        self.handoff: ThreadSafeObserver[StreamToken] | None = None
        self.target: abc.ObserverBase[StreamToken] = observer
        if loop is not None:
            # In order, batched, on the loop thread; a subscriber error stops generation.
            self.handoff = ThreadSafeObserver(_Guard(observer, self), loop)
            self.target = self.handoff

    def cancel(self) -> None:
        self.cancelled = True
        if self.handoff is not None:
            self.handoff.dispose()

    def next(self, token: StreamToken) -> None:
        try:
            self.target.on_next(token)
        except Exception as exc:  # a subscriber callback failed: end the stream with it
            self.cancelled = True
            self.target.on_error(exc)

    def error(self, exc: Exception) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.target.on_error(exc)

    def completed(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.target.on_completed()


class _Guard(abc.ObserverBase[StreamToken]):
    """The subscriber behind a loop hand-off: a failing ``on_next`` also stops generation."""

    __slots__ = ("observer", "sink")

    def __init__(self, observer: abc.ObserverBase[StreamToken], sink: _Sink) -> None:
        self.observer = observer
        self.sink = sink

    def on_next(self, value: StreamToken) -> None:
        try:
            self.observer.on_next(value)
        except Exception:
            self.sink.cancelled = True
            raise  # ThreadSafeObserver passes it to on_error

    def on_error(self, error: Exception) -> None:
        self.observer.on_error(error)

    def on_completed(self) -> None:
        self.observer.on_completed()


# --------------------------------------------------------------------------- generation


class _Captured(Exception):
    """Raised by `_ChatCapture.create_completion` to carry the chat handler's arguments out."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("captured")
        self.kwargs = kwargs


class _ChatCapture:
    """Stands in for the `Llama` a chat handler receives and records its completion call.

    llama-cpp-python's chat handlers format the messages, tokenize the prompt and
    add the template's stop strings, then call ``llama.create_completion(...)``.
    Running ``Llama.create_chat_completion`` with this proxy as ``self`` yields
    exactly those arguments (every other attribute is the real model's), so the
    chat prompt is built by llama-cpp-python itself for every chat format.
    """

    def __init__(self, llm: Llama) -> None:
        self._llm = llm

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)

    def create_completion(self, **kwargs: Any) -> Any:
        raise _Captured(kwargs)


def _chat_completion_args(llm: Llama, request: _Request) -> dict[str, Any]:
    assert request.messages is not None
    llama_cpp = _import_llama_cpp()
    chat_kwargs: dict[str, Any] = {
        "messages": request.messages,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "stop": list(request.stops),
        "seed": request.seed,
        "logit_bias": request.logit_bias,
        **request.chat_params,
    }
    accepted = _parameter_names(llama_cpp.Llama.create_chat_completion)
    chat_kwargs.update({k: v for k, v in request.sampling.items() if k in accepted})
    try:
        llama_cpp.Llama.create_chat_completion(_ChatCapture(llm), **chat_kwargs)
    except _Captured as captured:
        return captured.kwargs
    raise ConfigError(
        f"the chat format {llm.chat_format!r} of this model does not go through "
        f"create_completion; rxtokens cannot stream it (use a prompt string instead)"
    )


def _run(slot: _Model, request: _Request, sink: _Sink) -> None:
    """The worker thread: wait for the model, generate, deliver, always end the stream."""
    try:
        with slot.lock:
            if sink.cancelled:
                return
            llm = slot.get()
            if sink.cancelled:
                return
            _generate(llm, request, sink)
    except RxTokensError as exc:
        sink.error(exc)
    except Exception as exc:  # llama.cpp failed mid-generation (decode error, ...)
        sink.error(
            ProviderError(
                f"llama.cpp failed: {type(exc).__name__}: {exc}",
                error_type=type(exc).__name__,
                provider="llama",
            )
        )


def _logit_bias_processor(llama_cpp: Any, logit_bias: Mapping[Any, float]) -> Any:
    bias = {int(k): float(v) for k, v in logit_bias.items()}

    def apply(input_ids: Any, scores: Any) -> Any:
        new_scores = scores.copy()
        for token, value in bias.items():
            new_scores[token] += value
        return new_scores

    return llama_cpp.LogitsProcessorList([apply])


def _generate(llm: Llama, request: _Request, sink: _Sink) -> None:
    llama_cpp = _import_llama_cpp()
    sampling = dict(request.sampling)
    stops = request.stops
    max_tokens = request.max_tokens
    seed = request.seed
    logit_bias = request.logit_bias
    completion_count = 0
    strip_space = False
    if request.messages is not None:
        args = _chat_completion_args(llm, request)
        prompt_tokens = list(args["prompt"])
        stops = list(args.get("stop") or [])
        for name in _GENERATE_PARAMS:
            if args.get(name) is not None and name not in sampling:
                sampling[name] = args[name]
        logit_bias = args.get("logit_bias")
    else:
        prompt_tokens = llm.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=True)
        if not request.prompt:
            # As llama-cpp-python: an empty prompt starts the completion with BOS
            # (counted), and the space that then begins the text is dropped.
            completion_count = 1
            strip_space = True
    if logit_bias:
        processor = _logit_bias_processor(llama_cpp, logit_bias)
        if sampling.get("logits_processor") is not None:
            processor = llama_cpp.LogitsProcessorList([*sampling["logits_processor"], *processor])
        sampling["logits_processor"] = processor

    n_ctx = llm.n_ctx()
    n_prompt = len(prompt_tokens)
    if n_prompt >= n_ctx:
        raise ConfigError(
            f"the prompt is {n_prompt} tokens but the context holds {n_ctx}; "
            f"shorten it or load the model with a larger n_ctx"
        )
    if max_tokens is None or max_tokens + n_prompt >= n_ctx:
        max_tokens = n_ctx - n_prompt
    overrun_limit = min(max_tokens + _MAX_OVERRUN, n_ctx - n_prompt)
    llm.set_seed(seed if seed is not None else random.getrandbits(32))

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    is_eog = llama_cpp.llama_vocab_is_eog
    bos = llm.token_bos()
    detokenize = llm.detokenize
    utf8 = Utf8Stream()
    decode = utf8.decode
    stop_bytes = [s.encode("utf-8") for s in stops]
    emit = sink.next
    pending = b""  # bytes received but not yet emitted (a possible stop-string prefix)
    tail = b""  # the last 3 bytes of the completion, for the multi-byte check
    multibyte_fix = 0
    finish = "stop"

    def send(data: bytes) -> None:
        text = decode(data)
        if text:
            emit(TextDelta(text))

    generator = llm.generate(prompt_tokens, temp=request.temperature, **sampling)
    try:
        for token in generator:
            if sink.cancelled:
                return
            if is_eog(vocab, token):
                break
            if completion_count == 0 and token == bos:
                strip_space = True
            completion_count += 1
            piece: bytes = detokenize([token])
            if strip_space and piece:
                strip_space = False
                if piece[:1] == b" ":
                    piece = piece[1:]
            pending += piece
            tail = (tail + piece)[-3:]
            # llama-cpp-python's check for an unfinished multi-byte character (same
            # arithmetic, same quirks): while it is set, neither stop strings nor
            # max_tokens end generation, so the token counts agree with it. Unlike
            # llama-cpp-python (which then runs on until the context overflows),
            # repeated lead bytes cannot extend this past `overrun_limit`.
            for k, char in enumerate(tail):
                remaining = 3 - k
                for num, pattern in ((2, 192), (3, 224), (4, 240)):
                    if num > remaining and pattern & char == pattern:
                        multibyte_fix = num - remaining
            if multibyte_fix > 0 and completion_count < overrun_limit:
                multibyte_fix -= 1
                continue
            if stop_bytes:
                found = [s for s in stop_bytes if s in pending]
                if found:
                    send(pending[: pending.index(found[0])])
                    pending = b""
                    break
            if completion_count >= max_tokens:
                finish = "length"
                break
            if stop_bytes:
                hold = _held_back(pending, stop_bytes)
                if len(pending) > hold:
                    send(pending[: len(pending) - hold])
                    pending = pending[len(pending) - hold :]
            else:
                send(pending)
                pending = b""
            if sink.cancelled:
                return
        else:
            finish = "stop"  # the generator ended: a stopping criterion fired
    finally:
        generator.close()
    if sink.cancelled:
        return
    if pending:
        send(pending)
    text = utf8.flush()
    if text:
        emit(TextDelta(text))
    emit(Finish(finish, 0, finish))  # llama.cpp's own reasons are the normalised ones
    emit(Usage(n_prompt, completion_count))
    sink.completed()


class Utf8Stream:
    """Incremental UTF-8 decoding of token bytes, as llama-cpp-python decodes the whole text.

    `decode` returns the complete characters so far and keeps the start of an
    unfinished one for the next call; `flush` ends the stream. Invalid bytes are
    dropped (``errors="ignore"``), so however the bytes are split, the pieces
    concatenate to ``data.decode("utf-8", errors="ignore")``.

    Example:
        >>> utf8 = Utf8Stream()
        >>> [utf8.decode(b) for b in (b"a\\xe6", b"\\x97", b"\\xa5!")], utf8.flush()
        (['a', '', '日!'], '')
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def decode(self, data: bytes) -> str:
        if self._pending:
            data = self._pending + data
        text, consumed = codecs.utf_8_decode(data, "ignore", False)
        self._pending = data[consumed:]
        return text

    def flush(self) -> str:
        text = codecs.utf_8_decode(self._pending, "ignore", True)[0]
        self._pending = b""
        return text


def _held_back(pending: bytes, stops: Sequence[bytes]) -> int:
    """The length of the longest suffix of `pending` that is a proper prefix of a stop string."""
    hold = 0
    for s in stops:
        for i in range(min(len(s) - 1, len(pending)), hold, -1):
            if pending.endswith(s[:i]):
                hold = i
                break
    return hold
