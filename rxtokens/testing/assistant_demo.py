"""A real-time assistant demo: calendar and weather tools triggered mid-stream.

The bundled loopback `ProviderServer` plays the model, scripted in two steps:
first a short sentence and two tool calls (``calendar_events`` and
``weather_forecast``), then a final answer that uses their results. `run_agent`
drives the loop over real HTTP in the chosen provider's wire format; the tools
run on local demo data the moment their arguments are complete, while the
first response is still streaming, and an intent classifier flags what the
user wants on the way.

Run it::

    python -m rxtokens.testing.assistant_demo [openai|anthropic|gemini]

Example:
    >>> import asyncio
    >>> run = asyncio.run(run_assistant_demo(delay=0))
    >>> run.completion.text.startswith("On Friday")
    True
    >>> sorted(t.name for t in run.tokens if t.type == "tool_result")
    ['calendar_events', 'weather_forecast']
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reactivex import Observable

from ..errors import ConfigError
from ..inflight import KeywordClassifier, ToolRegistry, detect_intents, run_agent
from ..providers import ProviderRecord, close_sessions
from ..tokens import Completion
from .loopback import demo_providers
from .server import ProviderServer, RecordedRequest, Reply
from .wire import Script, ScriptedToolCall

__all__ = [
    "CALENDAR",
    "DEMO_PROMPT",
    "DEMO_PROVIDERS",
    "FORECASTS",
    "DemoRun",
    "calendar_events",
    "demo_classifier",
    "demo_scripts",
    "demo_tools",
    "main",
    "run_assistant_demo",
    "weather_forecast",
]

DEMO_PROMPT = "What's on my calendar on Friday, and will the weather be good for lunch outside?"
"""The user's question in the demo."""

CALENDAR: dict[str, list[dict[str, str]]] = {
    "2025-06-13": [
        {"time": "09:30", "title": "Team stand-up", "place": "Video call"},
        {"time": "12:30", "title": "Lunch with Sam", "place": "Lisbon, Time Out Market"},
        {"time": "16:00", "title": "Design review", "place": "Room 2.14"},
    ],
    "2025-06-14": [{"time": "10:00", "title": "Climbing", "place": "Lisbon"}],
}
"""The demo calendar: ISO date -> events."""

FORECASTS: dict[str, dict[str, dict[str, Any]]] = {
    "lisbon": {
        "2025-06-13": {"sky": "sunny", "high_c": 27, "low_c": 18, "rain_chance": 0.05},
        "2025-06-14": {"sky": "cloudy", "high_c": 23, "low_c": 17, "rain_chance": 0.3},
    },
    "paris": {"2025-06-13": {"sky": "rain", "high_c": 17, "low_c": 11, "rain_chance": 0.8}},
}
"""The demo forecasts: city (lower case) -> ISO date -> forecast."""


def calendar_events(date: dt.date) -> list[dict[str, str]]:
    """The events in the user's calendar on a date.

    Args:
        date: the day, as YYYY-MM-DD.
    """
    return list(CALENDAR.get(date.isoformat(), []))


async def weather_forecast(city: str, date: dt.date) -> dict[str, Any]:
    """The weather forecast for a city on a date.

    Args:
        city: the city name, e.g. "Lisbon".
        date: the day, as YYYY-MM-DD.
    """
    await asyncio.sleep(0)  # a real one would call a weather service here
    days = FORECASTS.get(city.strip().lower())
    if days is None:
        raise LookupError(f"no forecasts for {city!r}; known cities: {sorted(FORECASTS)}")
    forecast = days.get(date.isoformat())
    if forecast is None:
        raise LookupError(f"no forecast for {city!r} on {date.isoformat()}")
    return {"city": city, "date": date.isoformat(), **forecast}


def demo_tools() -> ToolRegistry:
    """A registry with `calendar_events` (sync: runs in a thread) and `weather_forecast` (async)."""
    return ToolRegistry([calendar_events, weather_forecast])


def demo_classifier() -> KeywordClassifier:
    """The intents the demo flags in the model's text as it streams."""
    return KeywordClassifier(
        {
            "check_calendar": [r"\bcalendar\b", r"\bschedule\b", r"\bmeeting\b"],
            "check_weather": [r"\bweather\b", r"\bforecast\b", r"\bsunny\b", r"\brain\b"],
            "plan_lunch": [r"\blunch\b", r"\bterrace\b"],
        }
    )


def demo_scripts() -> tuple[Script, Script]:
    """What the scripted model says: (tool calls, final answer using their results)."""
    first = Script(
        text="Let me look at your calendar and the weather forecast for Friday.",
        tool_calls=[
            ScriptedToolCall("calendar_events", {"date": "2025-06-13"}, fragments=4),
            ScriptedToolCall(
                "weather_forecast", {"city": "Lisbon", "date": "2025-06-13"}, fragments=4
            ),
        ],
        usage=(42, 38),
    )
    final = Script(
        text=(
            "On Friday you have the team stand-up at 09:30, lunch with Sam at 12:30 at the "
            "Time Out Market in Lisbon, and the design review at 16:00. Lisbon will be sunny, "
            "27 °C at most with a 5% chance of rain: a good day to have lunch on the terrace."
        ),
        usage=(120, 52),
        seed=1,
    )
    return first, final


DEMO_PROVIDERS = tuple(
    record.name
    for record in dict.fromkeys(demo_providers().values())
    if record.messages is not None and not record.capabilities.local
)
"""The providers the demo can speak: hosted ones with a tool-result message format whose
wire format the loopback server speaks (``openai``, ``anthropic``, ``gemini``)."""


@dataclass
class DemoRun:
    """The outcome of `run_assistant_demo`.

    Attributes:
        tokens: every token of both steps, in order (text, tool calls, intents,
            tool results, the step boundary ...).
        completion: the final answer.
        messages: the whole conversation in the provider's format.
        requests: the two requests the loopback server received.
    """

    tokens: list[Any]
    completion: Completion
    messages: list[dict[str, Any]]
    requests: list[RecordedRequest] = field(default_factory=list)


def _record(provider: str) -> ProviderRecord:
    record = demo_providers().get(provider)
    if record is None or provider not in DEMO_PROVIDERS:
        raise ConfigError(f"unknown demo provider {provider!r}; known: {', '.join(DEMO_PROVIDERS)}")
    return record


async def run_assistant_demo(
    prompt: str = DEMO_PROMPT,
    *,
    provider: str = "openai",
    delay: float = 0.02,
    server: ProviderServer | None = None,
    on_token: Callable[[Any], None] | None = None,
) -> DemoRun:
    """Run the two-step assistant against the loopback server (started here unless given).

    Args:
        prompt: the user's question.
        provider: ``openai``, ``anthropic`` or ``gemini`` (wire format and message format).
        delay: seconds between streamed events (0: as fast as possible).
        server: a running `ProviderServer` to use (its replies are queued here).
        on_token: called with every token as it arrives (to show the stream live).

    Returns:
        A `DemoRun`.
    """
    record = _record(provider)
    tools = demo_tools()
    schemas = tools.schemas()
    classifier = demo_classifier()
    own = server is None
    srv = ProviderServer() if server is None else server
    if own:
        await srv.start()
    try:
        first, final = demo_scripts()
        before = len(srv.requests)
        srv.queue(Reply(script=first, delay=delay), Reply(script=final, delay=delay))
        base_url = srv.base_url_for(provider)
        model = record.default_model

        def source(messages: Sequence[dict[str, Any]]) -> Observable[Any]:
            tokens = record.stream(
                model, messages, tools=schemas, base_url=base_url, api_key="demo"
            )
            return tokens.pipe(detect_intents(classifier))

        agent = run_agent(source, tools, prompt, provider=provider, max_steps=3)
        seen: list[Any] = []
        done = asyncio.get_running_loop().create_future()

        def on_next(token: Any) -> None:
            seen.append(token)
            if on_token is not None:
                on_token(token)

        def settle(error: Exception | None) -> None:
            if not done.done():
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)

        subscription = agent.tokens.subscribe(on_next, settle, lambda: settle(None))
        try:
            await done
        finally:
            subscription.dispose()
        assert agent.result is not None
        return DemoRun(seen, agent.result, agent.messages, srv.requests[before:])
    finally:
        if own:
            await close_sessions()
            await srv.close()


class _Printer:
    """Prints the stream live: text inline, tool calls / results / steps on their own lines."""

    def __init__(self) -> None:
        self.mid_line = True  # the "assistant: " prompt is open

    def line(self, text: str) -> None:
        print(("\n" if self.mid_line else "") + text, flush=True)
        self.mid_line = False

    def __call__(self, token: Any) -> None:
        kind = token.type
        if kind == "text":
            print(token.text, end="", flush=True)
            self.mid_line = True
        elif kind == "intent":
            print(f" [intent: {token.name}]", end="", flush=True)
            self.mid_line = True
        elif kind == "tool_call":
            self.line(f"  -> {token.name}({token.arguments})")
        elif kind == "tool_result":
            outcome = token.result if token.error is None else f"error: {token.error}"
            self.line(f"  <- {token.name} ({token.elapsed * 1000:.1f} ms): {outcome}")
        elif kind == "step":
            self.line(f"--- step {token.step} done ({token.reason}) ---")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rxtokens.testing.assistant_demo [provider]``: show the demo live.

    Example:
        >>> main(["--help"])  # doctest: +ELLIPSIS
        usage: python -m rxtokens.testing.assistant_demo ...
        0
    """
    parser = argparse.ArgumentParser(
        prog="python -m rxtokens.testing.assistant_demo",
        description="An offline assistant with a calendar and a weather tool: the loopback "
        "server answers in the provider's wire format, tools run while the answer streams. "
        "(openai_responses is not offered: run_agent cannot send tool results in its format.)",
    )
    parser.add_argument("provider", nargs="?", default="openai", choices=DEMO_PROVIDERS)
    try:
        provider = parser.parse_args(list(sys.argv[1:] if argv is None else argv)).provider
    except SystemExit as exit_:  # --help, or an unknown provider (argparse said which)
        return int(exit_.code or 0)
    print(f"user: {DEMO_PROMPT}\nassistant ({provider}): ", end="")
    run = asyncio.run(run_assistant_demo(provider=provider, on_token=_Printer()))
    print(f"\n\nfinal answer: {run.completion.text}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
