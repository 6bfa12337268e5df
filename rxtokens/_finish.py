"""Normalised finish reasons: each provider's raw reason -> one shared vocabulary.

Every decoder keeps one table (raw -> normalised) next to its code and builds
its `Finish` with `finish_token`: the normalised reason (one of
`rxtokens.tokens.FINISH_REASONS`) and the provider's raw value beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .tokens import Finish

__all__ = ["finish_token", "normal_finish"]


def normal_finish(raw: Any, table: Mapping[str, str], tool_calls: bool = False) -> str:
    """The normalised reason (`rxtokens.tokens.FINISH_REASONS`) of a provider's `raw` one.

    `table` is the provider's (raw -> normalised; unknown: ``other``). With `tool_calls`
    (the reply called a tool), ``stop`` becomes ``tool_calls``: Gemini says ``STOP`` and
    Responses ``completed`` also when the answer is a tool call.

    Example:
        >>> normal_finish("MAX_TOKENS", {"STOP": "stop", "MAX_TOKENS": "length"})
        'length'
        >>> normal_finish("STOP", {"STOP": "stop"}, tool_calls=True)
        'tool_calls'
    """
    if type(raw) is not str:  # None, or malformed (the decoder's field check reports it)
        return "other"
    reason = table.get(raw, "other")
    return "tool_calls" if tool_calls and reason == "stop" else reason


def finish_token(
    raw: Any, table: Mapping[str, str], index: int = 0, tool_calls: bool = False
) -> Finish:
    """The `Finish` of choice `index`: the normalised reason (`normal_finish`) and `raw`.

    Example:
        >>> finish_token("end_turn", {"end_turn": "stop"})
        Finish(reason='stop', index=0, raw='end_turn')
    """
    return Finish(normal_finish(raw, table, tool_calls), index, raw)
