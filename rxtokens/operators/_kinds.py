"""Groups of token kinds the operators share, and a cheap token constructor."""

from __future__ import annotations

from typing import Any

from ..tokens import (
    Finish,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)

__all__ = ["CONTENT_KINDS", "TEXT_KINDS", "choice_of", "new_token"]

TEXT_KINDS: tuple[type[Any], ...] = (TextDelta, ReasoningDelta, RefusalDelta)
"""Token kinds whose ``text`` the filters scan (each kind and choice separately)."""

CONTENT_KINDS: frozenset[type] = frozenset(
    {TextDelta, ReasoningDelta, RefusalDelta, ToolCallDelta, ToolCall}
)
"""Token kinds that are model output (they start the clock of "first token")."""

new_token = tuple.__new__
"""``new_token(TextDelta, (text, index))`` builds a token without the NamedTuple
``__new__`` wrapper (3x cheaper on the per-token paths; same object)."""


def choice_of(token: Any) -> int | None:
    """The choice a token belongs to, or None for stream-wide tokens (`Usage`, unknown).

    Example:
        >>> choice_of(TextDelta("hi", 1)), choice_of(ToolCall(0, "c", "f", {}, 2))
        (1, 2)
    """
    kind = type(token)
    if kind in TEXT_KINDS or kind is Finish:
        return int(token.index)
    if kind is ToolCallDelta or kind is ToolCall:
        return int(token.choice)
    return None
