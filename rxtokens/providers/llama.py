"""Local GGUF models through llama-cpp-python, as a cold ``Observable[StreamToken]``.

`llama` runs a model in-process: no server, no API key, no data leaving the
machine. Install the extra with ``pip install 'rxtokens[local]'``.

How it works, and what it guarantees:

* **Worker thread.** Each subscription runs generation in its own thread
  (``rxtokens-llama``); nothing blocks the caller or an event loop, including
  loading the model.
* **Delivery.** When you subscribe from inside a running asyncio event loop,
  every notification is delivered on that loop's thread, in order
  (`rxtokens.aio.ThreadSafeObserver`: batched ``call_soon_threadsafe``, so a
  burst of tokens costs one wake-up). Otherwise notifications are delivered
  on the worker thread; use ``observe_on`` / ``observe_on_loop`` to move them.
* **Text.** Token bytes go through an incremental UTF-8 decoder: a character
  split over several byte tokens is emitted once, whole, and no `TextDelta`
  is empty. Invalid byte sequences are dropped, as llama-cpp-python does
  (``errors="ignore"``), so the deltas concatenate to exactly the text of
  ``Llama.create_completion`` (non-streaming) for the same model, prompt,
  seed and parameters. (llama-cpp-python's own ``stream=True`` mode decodes
  trailing tokens one by one and can lose such characters.)
* **Ending.** Generation ends at an end-of-generation token or a stop string
  (``Finish("stop")``; the stop string is not emitted) or at `max_tokens`
  (``Finish("length")``), followed by ``Usage(prompt tokens, completion
  tokens)`` counted as llama-cpp-python counts them. Like llama-cpp-python,
  generation does not stop at `max_tokens` or a stop string while a
  multi-byte character is incomplete (at most 3 extra tokens; llama-cpp-python
  itself can run on until the context overflows when the model repeats UTF-8
  lead bytes, and then fails).
* **Disposal.** Disposing the subscription sets a flag the worker checks
  before and after each token: at most one more token is generated.
* **Models are cached and shared.** A model given by path is loaded once per
  (resolved path, file size and mtime, load parameters) and kept until
  `clear_model_cache`. A llama.cpp context is not thread-safe, so
  subscriptions on the same model are **serialised** by a per-model lock:
  concurrent subscriptions run one after the other (each one correct, the
  later ones wait). Load the model twice (different load parameters, e.g.
  ``n_threads``) or pass separate ``llama_cpp.Llama`` instances to run
  generations in parallel. A `Llama` instance you pass in gets the same
  per-instance lock; do not use it from other threads meanwhile.
* **Threads are not daemons**: a generation nobody disposes of runs to its
  end (at most `max_tokens`) before the interpreter exits; dispose to stop it.
* **Chat.** Messages are formatted by the model's own chat handler (the GGUF
  ``tokenizer.chat_template`` or the instance's ``chat_format`` /
  ``chat_handler``), exactly as ``create_chat_completion`` does, including its
  stop strings.

Example:
    >>> from rxtokens.providers.llama import llama
    >>> tokens = llama("model.gguf", "Once upon a time", max_tokens=32, seed=1)  # doctest: +SKIP
    >>> tokens.subscribe(print)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import functools
import inspect
import os
import random
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from ..aio import ThreadSafeObserver
from ..errors import ConfigError, ProviderError, ProviderNotInstalledError, RxTokensError
from ..tokens import Finish, StreamToken, TextDelta, Usage
from ._base import Capabilities, HealthResult, normalize_messages
from ._record import ProviderRecord

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = [
    "CAPABILITIES",
    "RECORD",
    "LlamaProvider",
    "Utf8Stream",
    "clear_model_cache",
    "llama",
    "llama_stream",
    "load_model",
]

CAPABILITIES = Capabilities(
    tools=False, reasoning=False, usage_in_stream=True, multiple_choices=False, local=True
)
"""What the llama provider can do: local, usage in the stream, no tools, one choice."""

_GGUF_MAGIC = b"GGUF"
_DEFAULT_N_CTX = 2048
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
# Not load parameters: the path, and things this module sets itself.
_NOT_LOAD_PARAMS = frozenset({"self", "model_path", "kwargs", "n_ctx"})


# --------------------------------------------------------------------------- import, models


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise ProviderNotInstalledError("llama-cpp-python", "local") from None
    return llama_cpp


def _check_gguf(path: Path) -> None:
    """Raise `ConfigError` unless `path` is a readable file that starts with the GGUF magic."""
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigError(f"model file {str(path)!r} {what}; pass the path of a .gguf model file")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ConfigError(f"cannot read model file {str(path)!r}: {exc}") from None
    if magic != _GGUF_MAGIC:
        raise ConfigError(
            f"model file {str(path)!r} is not a GGUF file (starts with {magic!r}, "
            f"expected {_GGUF_MAGIC!r}); convert it with llama.cpp's convert_hf_to_gguf.py"
        )


@dataclass
class _Model:
    """A model slot: the per-model lock and, once loaded, the `Llama` instance.

    `lock` serialises loading and every generation on this model.
    """

    path: Path | None
    load_params: dict[str, Any]
    lock: threading.Lock = field(default_factory=threading.Lock)
    llm: Llama | None = None

    def get(self) -> Llama:
        """The loaded model (loading it now if needed). Call with `lock` held."""
        if self.llm is None:
            assert self.path is not None
            _check_gguf(self.path)  # it may have gone since the call
            llama_cpp = _import_llama_cpp()
            try:
                self.llm = llama_cpp.Llama(model_path=str(self.path), **self.load_params)
            except ValueError as exc:  # llama-cpp-python: "Failed to load model from file"
                raise ConfigError(
                    f"llama.cpp could not load model file {str(self.path)!r} ({exc}); "
                    f"is it a complete GGUF model of an architecture this llama.cpp supports?"
                ) from None
        return self.llm


_cache_lock = threading.Lock()
_models: dict[tuple[Any, ...], _Model] = {}
_instance_models: weakref.WeakKeyDictionary[Any, _Model] = weakref.WeakKeyDictionary()


def _model_for_path(path: Path, load_params: dict[str, Any]) -> _Model:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, repr(sorted(load_params.items())))
    with _cache_lock:
        model = _models.get(key)
        if model is None:
            # The file changed since an earlier load: forget the stale model(s).
            for stale in [k for k in _models if k[0] == key[0] and k[1:3] != key[1:3]]:
                del _models[stale]
            model = _models[key] = _Model(path, load_params)
        return model


def _model_for_instance(llm: Llama) -> _Model:
    with _cache_lock:
        model = _instance_models.get(llm)
        if model is None:
            model = _instance_models[llm] = _Model(None, {}, llm=llm)
        return model


@atexit.register
def _close_models_at_exit() -> None:
    """Free loaded models before interpreter shutdown tears down llama_cpp's globals.

    (Otherwise ``Llama.__del__`` runs too late and prints a TypeError traceback.)
    """
    with _cache_lock:
        models = [*_models.values()]
        _models.clear()
    for model in models:
        if model.llm is not None and model.lock.acquire(timeout=1.0):
            try:
                model.llm.close()
                model.llm = None
            finally:
                model.lock.release()


def clear_model_cache() -> None:
    """Forget the models loaded by path (they are freed once no generation uses them).

    Example:
        >>> clear_model_cache()
    """
    with _cache_lock:
        _models.clear()


def load_model(
    path: str | os.PathLike[str], *, n_ctx: int = _DEFAULT_N_CTX, **load_params: Any
) -> Llama:
    """Load (or fetch from the cache) the `llama_cpp.Llama` that `llama` would use.

    This blocks while loading; `llama` itself loads in its worker thread.

    Raises:
        ProviderNotInstalledError: llama-cpp-python is not installed.
        ConfigError: the file is missing, not GGUF, or llama.cpp cannot load it.

    Example:
        >>> llm = load_model("model.gguf", n_threads=2)  # doctest: +SKIP
    """
    llama_cpp = _import_llama_cpp()
    model = _model_for_path(_resolve(path), _load_params(llama_cpp, n_ctx, load_params))
    with model.lock:
        return model.get()


def _resolve(path: str | os.PathLike[str]) -> Path:
    resolved = Path(path).expanduser().resolve()
    _check_gguf(resolved)
    return resolved


@functools.cache
def _parameter_names(function: Any) -> frozenset[str]:
    return frozenset(inspect.signature(function).parameters)


def _load_params(llama_cpp: Any, n_ctx: int, params: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(n_ctx, int) or n_ctx < 0:
        raise ConfigError(f"n_ctx must be an int >= 0 (0: the model's own), got {n_ctx!r}")
    known = _parameter_names(llama_cpp.Llama.__init__) - _NOT_LOAD_PARAMS
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(f"unknown llama_cpp.Llama parameters {unknown}")
    return {"verbose": False, **params, "n_ctx": n_ctx}


# --------------------------------------------------------------------------- the provider


def llama(
    model: str | os.PathLike[str] | Llama,
    prompt_or_messages: str | Sequence[Mapping[str, Any]],
    *,
    chat: bool | None = None,
    max_tokens: int | None = 256,
    temperature: float = 0.8,
    seed: int | None = None,
    stop: str | Sequence[str] | None = None,
    n_ctx: int = _DEFAULT_N_CTX,
    **params: Any,
) -> Observable[StreamToken]:
    """Stream a local GGUF model's answer as a cold ``Observable[StreamToken]``.

    Each subscription generates once, in a worker thread (see the module
    docstring for delivery, caching, serialisation and disposal).

    Args:
        model: the path of a ``.gguf`` file (loaded on first use, then cached)
            or a loaded ``llama_cpp.Llama``.
        prompt_or_messages: a prompt string (completion mode) or
            ``[{"role": ..., "content": ...}]`` messages (chat mode).
        chat: force chat mode (a string becomes one user message) or
            completion mode; default: chat for messages, completion for a string.
        max_tokens: the most tokens to generate (None: until the context is full).
        temperature: sampling temperature; 0 is greedy (deterministic).
        seed: sampling seed; the same seed gives the same tokens (None: random).
        stop: string(s) that end generation; they are not part of the text.
        n_ctx: context size when loading from a path (a load parameter).
        **params: load parameters of ``llama_cpp.Llama`` (``n_threads``,
            ``n_gpu_layers``, ``chat_format`` ...; path models only: they are
            part of the cache key), sampling parameters of ``Llama.generate``
            (``top_k``, ``top_p``, ``min_p``, ``repeat_penalty``, ``grammar``,
            ``logits_processor`` ...), ``logit_bias`` and, in chat mode,
            ``response_format``.

    Returns:
        ``TextDelta`` s, then ``Finish("stop" | "length")`` and ``Usage``.

    Raises:
        ProviderNotInstalledError: llama-cpp-python is not installed.
        ConfigError: now, for a missing or non-GGUF model file or a bad argument;
            on the stream, when llama.cpp cannot load the file or the prompt
            does not fit in the context.

    Example:
        >>> from rxtokens.operators import aggregate
        >>> tokens = llama("tiny.gguf", "Hi", max_tokens=8, temperature=0)  # doctest: +SKIP
        >>> completion = tokens.pipe(aggregate())  # doctest: +SKIP
    """
    llama_cpp = _import_llama_cpp()
    if chat is None:
        chat = not isinstance(prompt_or_messages, str)
    if chat:
        messages: list[dict[str, Any]] | None = normalize_messages(prompt_or_messages)
        prompt = ""
    elif isinstance(prompt_or_messages, str):
        messages, prompt = None, prompt_or_messages
    else:
        raise ConfigError("chat=False needs a prompt string, got messages")
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        raise ConfigError(f"max_tokens must be an int >= 1 or None, got {max_tokens!r}")
    if not isinstance(temperature, (int, float)):
        raise ConfigError(f"temperature must be a number, got {temperature!r}")
    if seed is not None and type(seed) is not int:
        raise ConfigError(f"seed must be an int or None, got {seed!r}")
    stops = _stop_list(stop)

    sampling = {k: v for k, v in params.items() if k in _GENERATE_PARAMS}
    logit_bias = params.get("logit_bias")
    chat_params = {k: v for k, v in params.items() if k in _CHAT_PARAMS}
    if chat_params and not chat:
        raise ConfigError(f"{sorted(chat_params)} only apply in chat mode")
    rest = {
        k: v
        for k, v in params.items()
        if k not in _GENERATE_PARAMS and k not in _EXTRA_PARAMS and k not in _CHAT_PARAMS
    }

    if isinstance(model, (str, os.PathLike)):
        try:
            load_params = _load_params(llama_cpp, n_ctx, rest)
        except ConfigError as exc:
            valid = sorted(_GENERATE_PARAMS | _EXTRA_PARAMS | _CHAT_PARAMS)
            raise ConfigError(f"{exc}; sampling parameters are {valid}") from None
        slot = _model_for_path(_resolve(model), load_params)
    elif isinstance(model, llama_cpp.Llama):
        if rest:
            raise ConfigError(
                f"unknown parameters {sorted(rest)} (load parameters only apply when "
                f"model is a path; sampling parameters are "
                f"{sorted(_GENERATE_PARAMS | _EXTRA_PARAMS | _CHAT_PARAMS)})"
            )
        slot = _model_for_instance(model)
    else:
        raise ConfigError(
            f"model must be a .gguf path or a llama_cpp.Llama, got {type(model).__name__}"
        )

    request = _Request(
        prompt=prompt,
        messages=messages,
        chat_params=chat_params,
        max_tokens=max_tokens,
        temperature=float(temperature),
        seed=seed,
        stops=stops,
        sampling=sampling,
        logit_bias=logit_bias,
    )

    def subscribe(
        observer: abc.ObserverBase[StreamToken], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        loop = asyncio._get_running_loop()  # None outside a running loop
        sink = _Sink(observer, loop)
        worker = threading.Thread(
            target=_run, args=(slot, request, sink), name="rxtokens-llama", daemon=False
        )
        worker.start()
        return Disposable(sink.cancel)

    return reactivex.create(subscribe)


class LlamaProvider:
    """`llama` in the provider registry's shape: ``stream("llama:path/to/model.gguf", ...)``.

    Everything after ``llama:`` is the model path. As for the HTTP providers, a
    prompt string is one user message (chat mode) unless ``chat=False`` is
    passed; other keyword arguments go to `llama` (load and sampling parameters).

    Example:
        >>> LlamaProvider().capabilities.local
        True
    """

    name = "llama"
    capabilities = CAPABILITIES

    def stream(
        self,
        model: str,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> Observable[StreamToken]:
        """A cold ``Observable[StreamToken]`` from the GGUF model at path `model`."""
        if tools:
            raise ConfigError("the llama provider does not support tools")
        params.setdefault("chat", True)
        return llama(model, messages, **params)

    async def health(self) -> HealthResult:
        """Whether llama-cpp-python is installed (there is no endpoint or key to check)."""
        try:
            llama_cpp = _import_llama_cpp()
        except ProviderNotInstalledError as exc:
            return HealthResult(False, None, str(exc), self.name)
        return HealthResult(True, None, f"llama-cpp-python {llama_cpp.__version__}", self.name)


def llama_stream(
    model: str,
    messages: str | Sequence[Mapping[str, Any]],
    *,
    chat: bool = True,
    max_tokens: int | None = 256,
    temperature: float = 0.8,
    seed: int | None = None,
    stop: str | list[str] | None = None,
    n_ctx: int = 2048,
    **params: Any,
) -> Observable[StreamToken]:
    """A local GGUF model in-process through llama-cpp-python (the model is the file's path).

    Args:
        model: the path of the ``.gguf`` file.
        messages: a prompt or messages.
        chat: format the prompt with the model's chat template (False: plain completion).
        max_tokens: the most tokens to generate (None: until the context is full).
        temperature: sampling temperature; 0 is greedy.
        seed: sampling seed (None: random).
        stop: string(s) that end generation.
        n_ctx: context size.
        **params: load and sampling parameters of llama-cpp-python (``n_threads``, ``top_k`` ...).
    """
    return llama(
        model,
        messages,
        chat=chat,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        stop=stop,
        n_ctx=n_ctx,
        **params,
    )


RECORD = ProviderRecord(
    "llama",
    LlamaProvider,
    llama_stream,
    capabilities=CAPABILITIES,
)
"""The local llama.cpp provider: the model is the ``.gguf`` path (no default), no key."""


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
    emit(Finish(finish))
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
