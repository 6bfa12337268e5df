"""The launch-string grammar (rxtokens.launch): values, quoting, errors with a caret."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxtokens.errors import ConfigError
from rxtokens.launch import LaunchSyntaxError, caret_excerpt, format_value, parse
from rxtokens.spec import parse_launch


def props(text: str) -> dict[str, Any]:
    return parse(f"src {text}")[0].properties


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("x=1", 1),
        ("x=-7", -7),
        ("x=0", 0),
        ("x=007", "007"),
        ("x=1.5", 1.5),
        ("x=1.0", 1.0),
        ("x=-2e-3", -2e-3),
        ("x=1e5", 1e5),
        ("x=1e999", "1e999"),
        ("x=1.", "1."),
        ("x=.5", ".5"),
        ("x=inf", "inf"),
        ("x=true", True),
        ("x=false", False),
        ("x=null", None),
        ("x=True", "True"),
        ("x=gpt-4o-mini", "gpt-4o-mini"),
        ("x=http://127.0.0.1:8000/v1?a", "http://127.0.0.1:8000/v1?a"),
        ("x=C:\\models\\a.gguf", "C:\\models\\a.gguf"),
        ("x='1'", "1"),
        ("x='true'", "true"),
        ("x=''", ""),
        ('x=""', ""),
        ("x='a b ! = , [ ] { }'", "a b ! = , [ ] { }"),
        ("x='it\\'s'", "it's"),
        ('x="say \\"hi\\""', 'say "hi"'),
        ("x='\\d{16}\\b'", "\\d{16}\\b"),
        ("x='\\\\d'", "\\d"),
        ("x='a\\nb\\tc\\r'", "a\nb\tc\r"),
        ("x='line1\nline2'", "line1\nline2"),
        ("x='\"'", '"'),
        ('x="\'"', "'"),
        ("x=[]", []),
        ("x=[1, 'two', 3.0, null, true]", [1, "two", 3.0, None, True]),
        ("x=[ [1 ,2] , [] ]", [[1, 2], []]),
        ("x={}", {}),
        ("x={role=user, content='Hi there'}", {"role": "user", "content": "Hi there"}),
        ("x={'a b'=1, \"c\"=[{d=null}]}", {"a b": 1, "c": [{"d": None}]}),
        ("x=ünïcødé→✓", "ünïcødé→✓"),
    ],
)
def test_values(text: str, value: Any) -> None:
    parsed = props(text)["x"]
    assert parsed == value
    assert type(parsed) is type(value)


def test_elements_and_properties_keep_order_and_positions() -> None:
    text = (
        "openai:gpt-4o  prompt='Tell me a joke' temperature=0.2 ! redact pattern='\\d{16}' !smooth"
    )
    elements = parse(text)
    assert [e.name for e in elements] == ["openai:gpt-4o", "redact", "smooth"]
    assert elements[0].properties == {"prompt": "Tell me a joke", "temperature": 0.2}
    assert list(elements[0].properties) == ["prompt", "temperature"]
    assert elements[1].properties == {"pattern": "\\d{16}"}
    assert elements[2].properties == {}
    assert text[elements[1].position :].startswith("redact")
    assert text[elements[1].key_positions["pattern"] :].startswith("pattern=")
    assert text[elements[2].position :] == "smooth"


def test_whitespace_of_any_kind_separates() -> None:
    elements = parse("\n a\tx=1\r\n!\n b  y=2 \n")
    assert [(e.name, e.properties) for e in elements] == [("a", {"x": 1}), ("b", {"y": 2})]


def test_quoted_keys() -> None:
    assert props("'my key'=1 \"x-y\"=2") == {"my key": 1, "x-y": 2}


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("", 0, "empty launch string"),
        ("   ", 3, "empty launch string"),
        ("! a", 0, "expected an element name"),
        ("a !", 3, "expected an element after '!'"),
        ("a ! ! b", 4, "expected an element after '!'"),
        ("a x", 3, "expected '=' after property name 'x'"),
        ("a x =1", 3, "expected '=' after property name 'x'"),
        ("a x= 1", 4, "expected a value after 'x='"),
        ("a x=", 4, "expected a value after 'x='"),
        ("a x=1 x=2", 6, "duplicate property 'x'"),
        ("a x='abc", 4, "unterminated string"),
        ("a x='abc\\", 4, "unterminated string"),
        ("a x=1,2", 5, "expected whitespace, '!' or the end after a value"),
        ("a x='b'c", 7, "expected whitespace, '!' or the end after a value"),
        ("a=1", 1, "expected whitespace, '!' or the end after the element name"),
        ("a x=[1 2]", 7, "expected ',' or ']'"),
        ("a x=[1,]", 7, "expected a value after ','"),
        ("a x=[1", 6, "expected ',' or ']'"),
        ("a x={k}", 6, "expected '=' after property name 'k'"),
        ("a x={k=1,}", 9, "expected key=value after ','"),
        ("a x={k=1 j=2}", 9, "expected ',' or '}'"),
        ("a x={k=1, k=2}", 10, "duplicate key 'k'"),
        ("a x=[,]", 5, "expected a value"),
        ("1abc x=1", 0, "invalid element name '1abc'"),
    ],
)
def test_syntax_errors_point_at_the_offending_position(
    text: str, position: int, reason: str
) -> None:
    with pytest.raises(LaunchSyntaxError) as info:
        parse(text)
    error = info.value
    assert isinstance(error, ConfigError)
    assert error.position == position, str(error)
    assert error.reason.startswith(reason), error.reason
    assert error.text == text
    first, _line, caret = str(error).split("\n")
    assert first.endswith(f"(position {position})")
    assert caret.index("^") - 2 == position - (text.rfind("\n", 0, position) + 1)


def test_caret_excerpt_shows_the_line_of_the_position() -> None:
    text = "a x=1\nb y=2 oops"
    assert caret_excerpt(text, 12) == "  b y=2 oops\n        ^"


def test_caret_excerpt_cuts_long_lines_around_the_position() -> None:
    text = "a " + "x=1 " * 100 + "bad"
    position = text.index("bad")
    line, caret = caret_excerpt(text, position, width=40).split("\n")
    assert len(line) == 42
    assert line[caret.index("^") :].startswith("bad")
    assert line.startswith("  ...")


def test_not_a_string() -> None:
    with pytest.raises(ConfigError, match="must be a str"):
        parse(b"a x=1")  # type: ignore[arg-type]


def test_format_value_rejects_what_json_cannot_hold() -> None:
    for value in (float("nan"), float("inf"), object()):
        with pytest.raises(ConfigError):
            format_value(value)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",))), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_any_json_value_survives_format_then_parse(value: Any) -> None:
    parsed = props(f"x={format_value(value)}")["x"]
    # json.dumps tells 1 from 1.0 and True from 1
    assert json.dumps(parsed) == json.dumps(value)


@given(st.text(alphabet=st.sampled_from(list("ab =!,[]{}'\"\\\n x1.-")), max_size=30))
def test_any_text_parses_or_raises_a_launch_syntax_error(text: str) -> None:
    try:
        elements = parse(text)
    except LaunchSyntaxError as exc:
        position = exc.position
        assert 0 <= position <= len(text)
    else:
        assert elements
        assert all(e.name for e in elements)


def test_deep_nesting_is_a_syntax_error_not_a_recursion_error() -> None:
    """Issue 15.11: 5,000 nested lists raised a bare RecursionError on main."""
    for opener in ("[", "{a="):
        text = "testing prompt=x items=" + opener * 5000
        with pytest.raises(LaunchSyntaxError, match="nest deeper than 64") as info:
            parse_launch(text)
        assert info.value.position < 300
    ok = parse(f"op x={'[' * 64}1{']' * 64}")
    value = ok[0].properties["x"]
    for _ in range(63):
        value = value[0]
    assert value == [1]
