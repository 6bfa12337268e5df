"""llama.cpp models for `rxtokens.providers.llama`: import, GGUF check, loading and the cache.

A model given by path is loaded once per (resolved path, file size and mtime, load
parameters) and kept until `clear_model_cache`; each model has a lock that serialises
loading and generation (a llama.cpp context is not thread-safe).

Example:
    >>> clear_model_cache()
"""

from __future__ import annotations

import atexit
import functools
import inspect
import os
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ProviderNotInstalledError

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["clear_model_cache", "load_model"]

_GGUF_MAGIC = b"GGUF"
_DEFAULT_N_CTX = 2048
# Not load parameters: the path, and things this module sets itself.
_NOT_LOAD_PARAMS = frozenset({"self", "model_path", "kwargs", "n_ctx"})


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise ProviderNotInstalledError("llama-cpp-python", "local") from None
    return llama_cpp


def check_gguf(path: Path) -> None:
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
            check_gguf(self.path)  # it may have gone since the call
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
    check_gguf(resolved)
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
