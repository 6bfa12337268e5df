"""How a token log is written in Redis: token batches, the end marker, serialisable errors.

One Redis Streams entry holds the tokens of one write (one or a few event-loop
ticks). Its id is ``"<seq of its last token>-0"`` and its fields are ``s`` (the
seq of its first token), ``k`` (the tokens' ``type`` discriminators, comma
separated; empty for a value that is not a token kind, stored as plain JSON)
and ``t`` (a JSON array of each token's fields, in order: a token is a
NamedTuple, which ``json`` writes as an array, at C speed), so
``XREAD`` after ``"<n>-0"`` returns exactly the entries holding seq ``n + 1``
onwards: a ``Last-Event-ID`` is an entry id. The end marker is the entry
``"<last seq>-1"`` with one field ``end``: JSON ``{"seq", "completion",
"error"}``; an error is ``{"type", "message", "partial"}`` (`error_to_dict`).

Example:
    >>> from rxtokens.tokens import TextDelta
    >>> entry_id, fields = encode_batch(1, [TextDelta("Hi"), TextDelta("!")])
    >>> entry_id, fields["s"]
    ('2-0', 1)
    >>> [item.seq for item in decode_batch(fields)]
    [1, 2]
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import (
    BroadcastCancelledError,
    ConfigError,
    ProducerLostError,
    RemoteStreamError,
    StoreUnavailableError,
    StreamError,
)
from ..providers._http import redact
from ..token_log import LogEnd, Sequenced
from ..tokens import TOKEN_TYPES, Completion

__all__ = ["decode_batch", "decode_end", "encode_batch", "encode_end", "error_from_dict"]


def encode_batch(first: int, tokens: list[Any]) -> tuple[str, dict[str, Any]]:
    """The entry id and fields of `tokens`, the first of which has seq `first`."""
    kinds = ",".join([getattr(token, "type", "") for token in tokens])
    data = json.dumps(tokens, ensure_ascii=False, separators=(",", ":"))
    return f"{first + len(tokens) - 1}-0", {"s": first, "k": kinds, "t": data}


def decode_batch(fields: dict[Any, Any]) -> list[Sequenced]:
    """The `Sequenced` tokens of one batch entry (fields as bytes or str).

    Raises:
        ConfigError: a token type this process does not know (`register_token_type`).
    """
    first = int(_get(fields, "s"))
    kinds = _text(_get(fields, "k")).split(",")
    values = json.loads(_get(fields, "t"))
    items = []
    for seq, (kind, value) in enumerate(zip(kinds, values, strict=True), first):
        if not kind:
            items.append(Sequenced(seq, value))
            continue
        cls = TOKEN_TYPES.get(kind)
        if cls is None:
            raise ConfigError(f"unknown token type {kind!r} in a token log; register it first")
        items.append(Sequenced(seq, cls(*value)))
    return items


def encode_end(last_seq: int, end: LogEnd) -> tuple[str, dict[str, Any]]:
    """The entry id and fields of the end marker after seq `last_seq`."""
    data = {
        "seq": last_seq,
        "completion": None if end.completion is None else end.completion.to_dict(),
        "error": None if end.error is None else error_to_dict(end.error),
    }
    return f"{last_seq}-1", {"end": json.dumps(data, ensure_ascii=False)}


def decode_end(fields: dict[Any, Any]) -> tuple[int, LogEnd] | None:
    """``(last seq, LogEnd)`` when `fields` are an end marker, else None."""
    raw = fields.get(b"end", fields.get("end"))
    if raw is None:
        return None
    data = json.loads(raw)
    completion = data.get("completion")
    error = data.get("error")
    return data["seq"], LogEnd(
        None if error is None else error_from_dict(error),
        None if completion is None else Completion.from_dict(completion),
    )


def error_to_dict(error: BaseException) -> dict[str, Any]:
    """``{"type", "message", "partial"}`` of an error (key-shaped strings masked).

    Example:
        >>> error_to_dict(BroadcastCancelledError("stopped"))
        {'type': 'cancelled', 'message': 'stopped', 'partial': None}
    """
    if isinstance(error, BroadcastCancelledError):
        kind = "cancelled"
    elif isinstance(error, RemoteStreamError | StoreUnavailableError):
        kind = error.error_type
    else:
        kind = type(error).__name__
    partial = getattr(error, "partial", None)
    return {
        "type": kind,
        "message": redact(str(error) or kind, None),
        "partial": partial.to_dict() if isinstance(partial, Completion) else None,
    }


def error_from_dict(data: dict[str, Any]) -> StreamError:
    """The typed error of `error_to_dict` output: cancelled, producer_lost, store_unavailable
    come back as their own classes, any other as `RemoteStreamError` naming the type.

    Example:
        >>> error_from_dict({"type": "ProviderError", "message": "overloaded", "partial": None})
        RemoteStreamError(error_type='ProviderError', message='overloaded')
    """
    kind = str(data.get("type") or "error")
    message = str(data.get("message") or kind)
    raw = data.get("partial")
    partial = Completion.from_dict(raw) if isinstance(raw, dict) else None
    if kind == "cancelled":
        return BroadcastCancelledError(message, partial=partial)
    if kind == "producer_lost":
        return ProducerLostError(message, partial=partial)
    if kind == "store_unavailable":
        return StoreUnavailableError(message, partial=partial)
    return RemoteStreamError(message, error_type=kind, partial=partial)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _get(fields: dict[Any, Any], name: str) -> Any:
    value = fields.get(name.encode())
    return fields[name] if value is None else value
