"""The one provider table: every name (and alias) -> its `ProviderRecord`.

Built from the records of the provider modules (`rxtokens.providers` adds them), from
`add_provider` / `rxtokens.register_provider`, and from the entry points of the group
``rxtokens.providers`` (loaded once, on the first lookup of an unknown name or the first
listing). `PROVIDERS` is its read-only view as name -> factory.

Example:
    >>> find_provider("openai_chat") is find_provider("openai")
    True
    >>> "gemini" in PROVIDERS
    True
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata

from ..errors import ConfigError
from ..launch import check_name
from ._base import Provider
from ._record import ProviderRecord, function_record
from .openai import OPENAI_MESSAGES

__all__ = [
    "PROVIDERS",
    "PROVIDER_ENTRY_POINTS",
    "ProviderTable",
    "add_provider",
    "find_provider",
    "provider_record",
    "provider_records",
]

log = logging.getLogger("rxtokens.providers")

PROVIDER_ENTRY_POINTS = "rxtokens.providers"
"""Entry-point group of providers from other packages: a `ProviderRecord`, or a stream
function ``(model, messages, **params) -> Observable[StreamToken]`` registered under the
entry point's name (with OpenAI's tool-result messages, as `rxtokens.register_provider`)."""

_lock = threading.RLock()
_records: dict[str, ProviderRecord] = {}
_entry_points_loaded = False


def add_provider(record: ProviderRecord, *, replace: bool = False) -> ProviderRecord:
    """Add `record` to the table under its name and aliases.

    Raises:
        ConfigError: not a record, an invalid name, or a taken one (without `replace`).

    Example:
        >>> add_provider(provider_record("openai"))
        Traceback (most recent call last):
        rxtokens.errors.ConfigError: a provider named 'openai' is already registered
    """
    if not isinstance(record, ProviderRecord):
        raise ConfigError(f"add_provider takes a ProviderRecord, got {record!r}")
    for name in record.names:
        check_name(name, "provider")
    with _lock:
        taken = [name for name in record.names if name in _records]
        if taken and not replace:
            raise ConfigError(f"a provider named {taken[0]!r} is already registered")
        for name in record.names:
            _records[name] = record
    return record


def _load_entry_points() -> None:
    global _entry_points_loaded
    with _lock:
        if _entry_points_loaded:
            return
        _entry_points_loaded = True
    for ep in metadata.entry_points(group=PROVIDER_ENTRY_POINTS):
        if ep.name in _records:
            continue
        try:
            obj = ep.load()
            if isinstance(obj, ProviderRecord):
                record = obj
            else:  # a stream function, as `rxtokens.register_provider` takes it
                record = function_record(ep.name, obj, messages=OPENAI_MESSAGES)
            with _lock:
                for name in record.names:
                    _records.setdefault(name, record)
        except Exception:
            log.exception("rxtokens: cannot load the provider entry point %r", ep.value)


def find_provider(name: str) -> ProviderRecord | None:
    """The record registered as `name` (entry points are loaded on a miss), or None."""
    if not isinstance(name, str):
        return None
    record = _records.get(name)
    if record is None:
        _load_entry_points()
        record = _records.get(name)
    return record


def provider_record(name: str) -> ProviderRecord:
    """The record registered as `name`.

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    record = find_provider(name)
    if record is None:
        raise ConfigError(
            f"unknown provider {name!r}; known providers: {', '.join(provider_records())}"
        )
    return record


def provider_records(*, entry_points: bool = True) -> dict[str, ProviderRecord]:
    """Every name and alias -> its record, sorted by name (`entry_points`: load them first)."""
    if entry_points:
        _load_entry_points()
    with _lock:
        return dict(sorted(_records.items()))


class ProviderTable(Mapping[str, Callable[..., Provider]]):
    """A read-only view of the table as name -> factory (keyword configuration -> `Provider`)."""

    def __getitem__(self, name: str) -> Callable[..., Provider]:
        record = find_provider(name)
        if record is None:
            raise KeyError(name)
        return record.factory

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and find_provider(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(provider_records())

    def __len__(self) -> int:
        return len(provider_records())

    def __repr__(self) -> str:
        return f"ProviderTable({', '.join(provider_records())})"


PROVIDERS = ProviderTable()
"""Provider name -> factory (keyword configuration: api_key, base_url, timeout, headers ...)."""
