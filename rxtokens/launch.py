r"""The launch-string grammar: a pipeline on one line, gstreamer style.

::

    openai_chat model=gpt-4o-mini prompt='Tell me a joke' ! redact pattern='\d{16}'
        ! smooth delay=0.02

This module only reads and writes the *syntax* (elements with properties);
`rxtokens.spec.parse_launch` turns the elements into a validated `PipelineSpec`
(first element: the source, then operators, then sinks).

Grammar (whitespace is any character for which ``str.isspace()`` is true)::

    launch     := ws element (ws "!" ws element)* ws
    element    := NAME (ws1 property)*
    property   := key "=" value                   no space around "="
    key        := WORD | quoted
    value      := quoted | list | map | WORD
    list       := "[" ws (value (ws "," ws value)*)? ws "]"
    map        := "{" ws (key "=" value (ws "," ws key "=" value)*)? ws "}"
    quoted     := "'" ... "'" | '"' ... '"'
    WORD       := one or more characters that are neither whitespace nor one of  ! = , [ ] { } ' "

* **Elements** are separated by ``!``. The first is the source: a provider id
  (``testing``, ``openai_chat`` ...) or ``provider:model`` (``openai:gpt-4o-mini``);
  the others are operators, and sinks (``jsonl`` ...) at the end. Names start with a
  letter or ``_``.
* **Quoted strings** are always strings. Inside them a backslash escapes the
  next character for ``\\`` ``\'`` ``\"``, and ``\n`` ``\t`` ``\r`` are a newline,
  tab and carriage return; *any other* backslash is kept as it is, so regexes read
  naturally: ``pattern='\d{16}\b'`` is the regex ``\d{16}\b``. A newline may also
  appear literally. ``''`` is the empty string.
* **Bare words** (unquoted) are typed: ``true`` / ``false`` -> bool, ``null`` -> None,
  an integer (``-?(0|[1-9][0-9]*)``) -> int, a decimal with a fraction and/or
  exponent (``1.5``, ``-2e-3``, ``1.0``) -> float (finite only), anything else ->
  str (``gpt-4o-mini``, ``http://127.0.0.1:8000/v1``, ``007``, ``True``, ``inf``).
  Quote a string that would otherwise read as a number, bool or null, or that
  contains whitespace or one of ``! = , [ ] { } ' "``.
* **Lists** ``[a, 1, 'b c']`` and **maps** ``{role=user, content='Hi'}`` nest; no
  trailing comma.
* A key appears at most once per element (or map).

`format_value` writes values back so that `parse` reads them unchanged (strings are
bare when that is safe, else single-quoted; floats use ``repr``), which makes
``parse_launch(spec.to_launch()) == spec`` hold for every valid spec.

Errors raise `LaunchSyntaxError` (a `ConfigError`), whose message shows the string
with a caret under the offending position::

    expected '=' after property name 'pattern' (position 42)
      testing prompt=Hi ! redact pattern '\d{16}'
                                        ^

Example:
    >>> [(e.name, e.properties) for e in parse("testing prompt='Hi there' ! smooth delay=0.02")]
    [('testing', {'prompt': 'Hi there'}), ('smooth', {'delay': 0.02})]
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from .errors import ConfigError, LaunchSyntaxError, caret_excerpt

__all__ = [
    "Element",
    "LaunchSyntaxError",
    "caret_excerpt",
    "check_name",
    "format_element",
    "format_key",
    "format_value",
    "parse",
]

_SPECIAL = frozenset("!=,[]{}'\"")
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*(?::.+)?\Z")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"}


@dataclass
class Element:
    """One element of a launch string: a name and its properties, with positions.

    Attributes:
        name: the element's name.
        properties: key -> value, in order.
        position: where the name starts.
        key_positions: where each property's key starts.
    """

    name: str
    properties: dict[str, Any] = field(default_factory=dict)
    position: int = 0
    key_positions: dict[str, int] = field(default_factory=dict)


def _is_word_char(char: str) -> bool:
    return not char.isspace() and char not in _SPECIAL


def _classify(word: str) -> Any:
    if word == "true":
        return True
    if word == "false":
        return False
    if word == "null":
        return None
    if _INT.match(word):
        return int(word)
    if _FLOAT.match(word):
        number = float(word)
        if math.isfinite(number):
            return number
    return word


MAX_DEPTH = 64
"""How deeply lists and maps may nest in a launch string (deeper: `LaunchSyntaxError`,
not the interpreter's RecursionError)."""


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.end = len(text)
        self.depth = 0

    def fail(self, reason: str, position: int | None = None) -> NoReturn:
        raise LaunchSyntaxError(reason, self.text, self.pos if position is None else position)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < self.end else ""

    def describe(self) -> str:
        char = self.peek()
        return "the end" if not char else repr(char)

    def skip_ws(self) -> None:
        while self.pos < self.end and self.text[self.pos].isspace():
            self.pos += 1

    def word(self) -> str:
        start = self.pos
        while self.pos < self.end and _is_word_char(self.text[self.pos]):
            self.pos += 1
        return self.text[start : self.pos]

    def parse(self) -> list[Element]:
        self.skip_ws()
        if self.pos == self.end:
            self.fail("empty launch string: expected a source such as \"testing prompt='Hi'\"")
        elements = [self.element()]
        while True:
            self.skip_ws()
            if self.pos == self.end:
                return elements
            if self.peek() != "!":  # pragma: no cover (element() stops only at these)
                self.fail(f"expected '!' or the end, found {self.describe()}")
            self.pos += 1
            self.skip_ws()
            if self.pos == self.end or self.peek() == "!":
                self.fail(f"expected an element after '!', found {self.describe()}")
            elements.append(self.element())

    def element(self) -> Element:
        start = self.pos
        name = self.word()
        if not name:
            self.fail(f"expected an element name, found {self.describe()}")
        if not _NAME.match(name):
            self.fail(
                f"invalid element name {name!r}: names start with a letter or '_' and contain "
                "letters, digits, '_', '.' and '-'",
                start,
            )
        element = Element(name, position=start)
        while True:
            before = self.pos
            self.skip_ws()
            char = self.peek()
            if not char or char == "!":
                return element
            if self.pos == before:
                what = "the element name" if before == start + len(name) else "a value"
                self.fail(
                    f"expected whitespace, '!' or the end after {what}, found {char!r} "
                    "(quote values that contain spaces or any of ! = , [ ] { } ' \")"
                )
            key_pos = self.pos
            key = self.key()
            if key in element.properties:
                self.fail(f"duplicate property {key!r}", key_pos)
            self.value_after_equals(key)
            element.properties[key] = self.value()
            element.key_positions[key] = key_pos

    def key(self) -> str:
        char = self.peek()
        if char in ("'", '"'):
            return self.quoted()
        key = self.word()
        if not key:
            self.fail(f"expected a property name (key=value), found {self.describe()}")
        return key

    def value_after_equals(self, key: str) -> None:
        if self.peek() != "=":
            self.fail(f"expected '=' after property name {key!r}, found {self.describe()}")
        self.pos += 1
        char = self.peek()
        if not char or char.isspace() or char in "!,]}=":
            self.fail(f"expected a value after '{key}=' (write {key}='' for an empty string)")

    def value(self) -> Any:
        char = self.peek()
        if char in ("'", '"'):
            return self.quoted()
        if char in ("[", "{"):
            if self.depth >= MAX_DEPTH:
                self.fail(f"lists and maps nest deeper than {MAX_DEPTH} levels")
            self.depth += 1
            value = self.list_() if char == "[" else self.map_()
            self.depth -= 1
            return value
        start = self.pos
        word = self.word()
        if not word:
            self.fail(f"expected a value, found {self.describe()}", start)
        return _classify(word)

    def quoted(self) -> str:
        quote = self.peek()
        start = self.pos
        self.pos += 1
        parts: list[str] = []
        while True:
            if self.pos >= self.end:
                self.fail(f"unterminated string: no closing {quote}", start)
            char = self.text[self.pos]
            if char == quote:
                self.pos += 1
                return "".join(parts)
            if char == "\\":
                if self.pos + 1 >= self.end:
                    self.fail(f"unterminated string: no closing {quote}", start)
                nxt = self.text[self.pos + 1]
                parts.append(_ESCAPES.get(nxt, "\\" + nxt))
                self.pos += 2
                continue
            parts.append(char)
            self.pos += 1

    def list_(self) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        self.skip_ws()
        if self.peek() == "]":
            self.pos += 1
            return items
        while True:
            self.skip_ws()
            items.append(self.value())
            self.skip_ws()
            char = self.peek()
            if char == "]":
                self.pos += 1
                return items
            if char != ",":
                self.fail(f"expected ',' or ']' in a list, found {self.describe()}")
            self.pos += 1
            self.skip_ws()
            if self.peek() in ("]", ""):
                self.fail(f"expected a value after ',', found {self.describe()}")

    def map_(self) -> dict[str, Any]:
        self.pos += 1
        result: dict[str, Any] = {}
        self.skip_ws()
        if self.peek() == "}":
            self.pos += 1
            return result
        while True:
            self.skip_ws()
            key_pos = self.pos
            key = self.key()
            if key in result:
                self.fail(f"duplicate key {key!r}", key_pos)
            self.value_after_equals(key)
            result[key] = self.value()
            self.skip_ws()
            char = self.peek()
            if char == "}":
                self.pos += 1
                return result
            if char != ",":
                self.fail(f"expected ',' or '}}' in a map, found {self.describe()}")
            self.pos += 1
            self.skip_ws()
            if self.peek() in ("}", ""):
                self.fail(f"expected key=value after ',', found {self.describe()}")


def parse(text: str) -> list[Element]:
    """Parse a launch string into its elements (syntax only; no registry lookups).

    Raises:
        LaunchSyntaxError: the string does not follow the grammar (see the module docstring).

    Example:
        >>> parse("a x=[1, 2.5, 'three'] ! b y={k=null}")[1].properties
        {'y': {'k': None}}
    """
    if not isinstance(text, str):
        raise ConfigError(f"a launch string must be a str, got {type(text).__name__}")
    return _Parser(text).parse()


def _quote(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\t", "\\t")
        .replace("\r", "\\r")
    )
    return f"'{escaped}'"


def format_key(key: str) -> str:
    """A key as the grammar reads it back (bare when possible)."""
    if key and all(_is_word_char(c) for c in key):
        return key
    return _quote(key)


def format_value(value: Any) -> str:
    """A value as the grammar reads it back unchanged.

    Raises:
        ConfigError: a value JSON cannot hold (a non-finite float, an object ...).

    Example:
        >>> format_value(["a b", 1.0, None, "1", "007", {"role": "user"}])
        "['a b', 1.0, null, '1', 007, {role=user}]"
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"a launch string cannot hold the number {value!r}")
        return repr(float(value))
    if isinstance(value, str):
        if value and all(_is_word_char(c) for c in value) and _classify(value) == value:
            return value
        return _quote(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{format_key(k)}={format_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"a launch string cannot hold {value!r} ({type(value).__name__})")


def format_element(name: str, properties: Mapping[str, Any]) -> str:
    """One element: its name then ``key=value`` properties.

    Example:
        >>> format_element("smooth", {"delay": 0.02, "chunking": "word"})
        'smooth delay=0.02 chunking=word'
    """
    parts = [name] + [f"{format_key(k)}={format_value(v)}" for k, v in properties.items()]
    return " ".join(parts)


_ENTRY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")


def check_name(name: str, kind: str) -> None:
    """Refuse a registry name (`kind`: operator, sink, provider) that a launch string cannot hold.

    Raises:
        ConfigError: `name` is not a letter or ``_`` followed by letters, digits, ``_.-``.

    Example:
        >>> check_name("my-op", "operator")
    """
    if not isinstance(name, str) or not _ENTRY_NAME.match(name):
        raise ConfigError(
            f"{kind} name must start with a letter or '_' and contain only letters, digits, "
            f"'_', '.' and '-', got {name!r}"
        )
