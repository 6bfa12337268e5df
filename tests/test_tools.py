"""Tools (rxtokens/tools.py): Tool and ToolRegistry (schemas, validation)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import pydantic
import pytest

from rxtokens import ConfigError
from rxtokens.inflight import Tool, ToolArgumentsError, ToolRegistry
from rxtokens.providers._tools import tools_for
from rxtokens.providers.anthropic import Anthropic
from rxtokens.providers.gemini import Gemini
from rxtokens.providers.openai import OpenAIChat


def weather(city: str, days: int = 1, *, unit: str = "C") -> dict[str, Any]:
    """The weather forecast for a city.

    Longer explanation that is not part of the description.

    Args:
        city: the city name, e.g.
            "Lisbon".
        days (int): how many days ahead.
        unit: C or F.

    Returns:
        The forecast.
    """
    return {"city": city, "days": days, "unit": unit}


def test_schema_from_signature_and_docstring() -> None:
    tool = Tool.from_function(weather)
    assert tool.schema() == {
        "name": "weather",
        "description": "The weather forecast for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": 'the city name, e.g. "Lisbon".'},
                "days": {"type": "integer", "default": 1, "description": "how many days ahead."},
                "unit": {"type": "string", "default": "C", "description": "C or F."},
            },
            "required": ["city"],
        },
    }
    assert not tool.is_async


class Slot(pydantic.BaseModel):
    start: dt.time
    minutes: int = 30


def test_annotated_fields_nested_models_and_odd_names() -> None:
    async def book(
        title: Annotated[str, pydantic.Field(description="What", max_length=20)],
        slot: Slot,
        json: bool = False,  # a BaseModel attribute name: must not clash
    ) -> str:
        return title

    tool = Tool.from_function(book, name="book-meeting", description="Book it.")
    params = tool.parameters
    assert tool.is_async
    assert tool.name == "book-meeting"
    assert tool.description == "Book it."
    assert params["properties"]["title"] == {
        "type": "string",
        "description": "What",
        "maxLength": 20,
    }
    assert params["properties"]["slot"] == {"$ref": "#/$defs/Slot"}
    assert params["$defs"]["Slot"]["properties"]["start"]["format"] == "time"
    assert "title" not in params
    assert "title" not in params["$defs"]["Slot"]
    args, kwargs = tool.bind({"title": "Sync", "slot": {"start": "09:30"}, "json": "true"})
    assert args == []
    assert kwargs == {"title": "Sync", "slot": Slot(start=dt.time(9, 30)), "json": True}


def test_bind_validates_and_explains() -> None:
    tool = Tool.from_function(weather)
    assert tool.bind({"city": "Lisbon", "days": "3"}) == (
        [],
        {"city": "Lisbon", "days": 3, "unit": "C"},
    )
    with pytest.raises(ToolArgumentsError) as info:
        tool.bind({"days": "many", "town": "Paris"})
    message = str(info.value)
    assert message.startswith("invalid arguments for tool 'weather': ")
    assert "city: Field required" in message
    assert "days: Input should be a valid integer" in message
    assert "town: Extra inputs are not permitted" in message
    with pytest.raises(ToolArgumentsError, match="expected a JSON object"):
        tool.bind([1, 2])  # type: ignore[arg-type]


def test_unresolvable_annotations_are_a_config_error() -> None:
    class Local(pydantic.BaseModel):
        x: int

    def uses_local(value: Local) -> None:  # a string annotation (future import)
        """Cannot be resolved from the module."""

    with pytest.raises(ConfigError, match="cannot resolve the annotations"):
        Tool.from_function(uses_local)


def test_callable_objects() -> None:
    class Counter:
        """Counts."""

        async def __call__(self, step: int = 1) -> int:
            return step

    tool = Tool.from_function(Counter(), name="counter")
    assert tool.is_async
    assert tool.parameters["properties"]["step"]["type"] == "integer"


def test_positional_only_parameters() -> None:
    def add(a: int, b: int, /) -> int:
        return a + b

    assert Tool.from_function(add).bind({"a": 1, "b": 2}) == ([1, 2], {})


def test_registry_api_and_errors() -> None:
    registry = ToolRegistry({"forecast": weather})

    @registry.tool(timeout=2)
    def ping() -> str:
        """Ping."""
        return "pong"

    assert registry.names == ["forecast", "ping"]
    assert "ping" in registry
    assert len(registry) == 2
    assert registry["ping"].timeout == 2.0
    assert [t.name for t in registry] == ["forecast", "ping"]
    assert registry.get("nope") is None
    with pytest.raises(KeyError, match="known tools"):
        registry["nope"]
    with pytest.raises(ConfigError, match="already registered"):
        registry.add(ping)
    with pytest.raises(ConfigError, match="args"):
        registry.add(lambda *args: None, name="star")
    with pytest.raises(ConfigError, match="invalid tool name"):
        registry.add(weather, name="has space")
    with pytest.raises(ConfigError, match="callable"):
        registry.add(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="timeout"):
        registry.add(weather, name="w2", timeout=0)
    with pytest.raises(ConfigError):
        ToolRegistry.coerce("weather")
    with pytest.raises(ConfigError, match="got 42"):
        ToolRegistry(42)  # type: ignore[arg-type]
    assert ToolRegistry.coerce(registry) is registry


@pytest.mark.parametrize("provider", [OpenAIChat, Anthropic, Gemini])
def test_schemas_are_what_the_providers_send(provider: Any) -> None:
    registry = ToolRegistry([weather])
    assert tools_for("gemini", registry.schemas()) == registry.schemas()  # the neutral form
    _, body = provider(api_key="k").build_request("m", "hi", tools=registry.schemas(), params={})
    sent = str(body["tools"])
    assert "'city'" in sent
    assert "the city name" in sent
