"""Token construction cost: the chosen representation against the alternatives.

Tokens are built once per streamed fragment, so their constructor is on the hot
path. This measures building a `TextDelta("hello")` and a
`ToolCallDelta(0, None, None, '{"a"')` with each candidate representation, in
one run, and reports the cost relative to the chosen one (`rxtokens.tokens`:
a NamedTuple subclass with kind-aware equality).

Run: .venv/bin/python benchmarks/tokens.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from _report import ROUNDS, Ratio, rounds, write_section
from pydantic import BaseModel, ConfigDict

from rxtokens.tokens import TextDelta, ToolCallDelta


@dataclass(frozen=True, slots=True)
class DataclassText:
    text: str
    index: int = 0


@dataclass(frozen=True, slots=True)
class DataclassTool:
    index: int
    id: str | None
    name: str | None
    arguments: str
    choice: int = 0


class SlotsText:
    """Mutable slotted class: the lower bound for a Python object, but not immutable."""

    __slots__ = ("index", "text")

    def __init__(self, text: str, index: int = 0) -> None:
        self.text = text
        self.index = index


class SlotsTool:
    __slots__ = ("arguments", "choice", "id", "index", "name")

    def __init__(
        self, index: int, id: str | None, name: str | None, arguments: str, choice: int = 0
    ) -> None:
        self.index = index
        self.id = id
        self.name = name
        self.arguments = arguments
        self.choice = choice


class PlainNTText(NamedTuple):
    text: str
    index: int = 0


class PlainNTTool(NamedTuple):
    index: int
    id: str | None
    name: str | None
    arguments: str
    choice: int = 0


class PydanticText(BaseModel):
    model_config = ConfigDict(frozen=True)
    text: str
    index: int = 0


class PydanticTextPositional(PydanticText):
    def __init__(self, text: str, index: int = 0) -> None:
        super().__init__(text=text, index=index)


class PydanticTool(BaseModel):
    model_config = ConfigDict(frozen=True)
    index: int
    id: str | None
    name: str | None
    arguments: str
    choice: int = 0


class PydanticToolPositional(PydanticTool):
    def __init__(
        self, index: int, id: str | None, name: str | None, arguments: str, choice: int = 0
    ) -> None:
        super().__init__(index=index, id=id, name=name, arguments=arguments, choice=choice)


CANDIDATES: list[tuple[str, type, type]] = [
    ("rxtokens (NamedTuple subclass, kind-aware ==)", TextDelta, ToolCallDelta),
    ("plain NamedTuple (== ignores kind)", PlainNTText, PlainNTTool),
    ("slotted class (mutable)", SlotsText, SlotsTool),
    ("frozen slotted dataclass", DataclassText, DataclassTool),
    ("frozen pydantic model", PydanticTextPositional, PydanticToolPositional),
]


def build_text(cls: type, n: int) -> None:
    for _ in range(n):
        cls("hello")


def build_tool(cls: type, n: int) -> None:
    for _ in range(n):
        cls(0, None, None, '{"a"')


def measure(n: int, count: int) -> list[tuple[str, Ratio, Ratio, float, float]]:
    """(label, text and tool time vs rxtokens', median ns per text and tool token)."""
    runners = {}
    for label, text_cls, tool_cls in CANDIDATES:
        runners[(label, "text")] = partial(build_text, text_cls, n)
        runners[(label, "tool")] = partial(build_tool, tool_cls, n)
    named = {f"{label} {kind}": fn for (label, kind), fn in runners.items()}
    times = rounds(named, count)
    ours = CANDIDATES[0][0]
    return [
        (
            label,
            Ratio.of(times[f"{label} text"], times[f"{ours} text"]),
            Ratio.of(times[f"{label} tool"], times[f"{ours} tool"]),
            statistics.median(times[f"{label} text"]) / n * 1e9,
            statistics.median(times[f"{label} tool"]) / n * 1e9,
        )
        for label, _, _ in CANDIDATES
    ]


def main() -> None:
    quick = "--quick" in sys.argv
    n = 20_000 if quick else 300_000
    count = 2 if quick else ROUNDS
    rows = measure(n, count)
    lines = [
        "## Token construction (`benchmarks/tokens.py`)",
        "",
        f"Cost to build one token, {n:,} constructions per run, {count} rounds with the order "
        "alternating. Ratio = candidate time / rxtokens' time, median of the per-round ratios "
        "(min-max; best-of beside it); ns: the median round.",
        "",
        "| representation | TextDelta ratio | ToolCallDelta ratio | TextDelta ns | ToolCallDelta ns |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, r_text, r_tool, t_text, t_tool in rows:
        lines.append(
            f"| {label} | {r_text.text(bold=False)} | {r_tool.text(bold=False)} "
            f"| {t_text:.0f} | {t_tool:.0f} |"
        )
    lines += [
        "",
        "Chosen: the NamedTuple subclass, the cheapest immutable representation measured "
        "(pattern-matchable, picklable, kind-aware equality). A mutable slotted class is cheaper "
        "still but lets a subscriber change a token every other subscriber shares; frozen "
        "dataclasses pay for `object.__setattr__` per field and pydantic for validation.",
    ]
    report = "\n".join(lines)
    print(report)
    write_section("tokens", report)


if __name__ == "__main__":
    main()
