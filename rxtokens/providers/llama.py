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

This module is the provider (`llama`, `LlamaProvider`, its `RECORD`);
`rxtokens.providers._llama_models` loads and caches models and
`rxtokens.providers._llama_generate` runs one generation.

Example:
    >>> from rxtokens.providers.llama import llama
    >>> tokens = llama("model.gguf", "Once upon a time", max_tokens=32, seed=1)  # doctest: +SKIP
    >>> tokens.subscribe(print)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from ..errors import ConfigError, ProviderNotInstalledError
from ..tokens import StreamToken
from ._base import Capabilities, HealthResult, normalize_messages
from ._llama_generate import (
    _CHAT_PARAMS,
    _EXTRA_PARAMS,
    _GENERATE_PARAMS,
    Utf8Stream,
    _Request,
    _run,
    _Sink,
    _stop_list,
)
from ._llama_models import (
    _DEFAULT_N_CTX,
    _import_llama_cpp,
    _load_params,
    _model_for_instance,
    _model_for_path,
    _resolve,
    clear_model_cache,
    load_model,
)
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
