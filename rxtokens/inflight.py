"""Inflight analysis and tools: decide before the stream ends.

Everything here acts on a token stream *while it is streaming*:

- `on_match` / `detect_intents` / `dispatch_tools` (operators, also in
  `rxtokens.operators`) add `ActionResult`, `Intent` and `ToolResult` tokens
  to the stream as soon as there is something to say;
- `ToolRegistry` describes Python callables to a model (pydantic-validated
  arguments and their JSON schema);
- `run_agent` is the multi-step tool loop: stream a response, run its tool
  calls (already started mid-stream), send the results back in the
  provider's own message format (`tool_messages`), stream the next response.

Example:
    >>> registry = ToolRegistry()
    >>> @registry.tool
    ... def weather(city: str) -> str:
    ...     '''Today's weather in a city.'''
    ...     return "sunny"
    >>> agent = run_agent(  # doctest: +SKIP
    ...     lambda messages: openai_chat("gpt-4o-mini", messages, tools=registry.schemas()),
    ...     registry, "What's the weather in Paris?")
    >>> agent.tokens.subscribe(print)  # doctest: +SKIP
    >>> (await agent.completion()).text  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable, SerialDisposable, SingleAssignmentDisposable

from .aio import last
from .broadcast import Broadcast
from .completion import CompletionBuilder, attach_partial
from .errors import ConfigError
from .operators import detect_intents, dispatch_tools, on_match
from .operators._intents import KeywordClassifier, KeywordSession, Throttle
from .operators._match import TextMatch
from .providers import MessageFormat, find_provider, provider_records
from .tokens import ActionResult, Completion, Intent, StepBoundary, ToolResult
from .tools import Tool, ToolArgumentsError, ToolRegistry

__all__ = [
    "ActionResult",
    "Agent",
    "Intent",
    "KeywordClassifier",
    "KeywordSession",
    "StepBoundary",
    "TextMatch",
    "Throttle",
    "Tool",
    "ToolArgumentsError",
    "ToolRegistry",
    "ToolResult",
    "assistant_message",
    "detect_intents",
    "dispatch_tools",
    "on_match",
    "run_agent",
    "tool_messages",
]

# --------------------------------------------------------------------------- message formats


def _format(provider: str) -> MessageFormat:
    """The tool-result message format of `provider` (from its record in the provider table)."""
    record = find_provider(provider)
    if record is None or record.messages is None:
        known = [name for name, r in provider_records().items() if r.messages is not None]
        raise ConfigError(
            f"unknown provider message format {provider!r}; known: "
            f"{', '.join(known)} (the OpenAI Responses API is not supported)"
        )
    return record.messages


def _results_for(completion: Completion, results: Sequence[ToolResult]) -> list[ToolResult]:
    """One result per tool call of choice 0, in call order (a missing one is an error result)."""
    by_key: dict[Any, ToolResult] = {}
    for result in results:
        if result.choice != 0:
            continue
        by_key.setdefault(("index", result.index), result)
        if result.call_id:
            by_key.setdefault(("id", result.call_id), result)
    ordered = []
    for call in completion.tool_calls:
        found = by_key.get(("id", call.id)) if call.id else None
        if found is None:
            found = by_key.get(("index", call.index))
        if found is None:
            found = ToolResult(
                call.id,
                call.name,
                None,
                f"tool {call.name!r} was not executed: its call never completed in the stream",
                call.index,
                0.0,
            )
        ordered.append(found)
    return ordered


def tool_messages(
    provider: str, completion: Completion, results: Sequence[ToolResult]
) -> list[dict[str, Any]]:
    """The assistant turn with its tool calls, then the tool results, in `provider`'s format.

    The format is the provider record's `rxtokens.providers.MessageFormat`; built in:

    * OpenAI (``openai``, ``openai_chat``, ``openai_compatible``, ``testing``):
      ``{"role": "assistant", "content": text or None, "tool_calls": [{"id",
      "type": "function", "function": {"name", "arguments": "<JSON string>"}}]}``
      then one ``{"role": "tool", "tool_call_id", "content"}`` per call.
    * Anthropic: ``{"role": "assistant", "content": [text block?, {"type":
      "tool_use", "id", "name", "input"}...]}`` then ``{"role": "user",
      "content": [{"type": "tool_result", "tool_use_id", "content",
      "is_error"?}...]}``.
    * Gemini: ``{"role": "model", "parts": [{"text"}?, {"functionCall": {"name",
      "args"}}...]}`` then ``{"role": "user", "parts": [{"functionResponse":
      {"name", "response"}}...]}`` (``response`` is a dict result as is,
      ``{"result": value}`` otherwise, ``{"error": message}`` on failure).

    Tool results are matched to the calls of choice 0 by id, else by index;
    text contents are the result string as is, or its JSON, or
    ``{"error": message}``; a call without result gets an error result.

    Raises:
        ConfigError: an unknown provider.

    Example:
        >>> from rxtokens import Completion, ToolCall
        >>> done = Completion(tool_calls=[ToolCall(0, "call_1", "add", {"a": 1})])
        >>> tool_messages("openai", done, [ToolResult("call_1", "add", 2, None, 0, 0.1)])[1]
        {'role': 'tool', 'tool_call_id': 'call_1', 'content': '2'}
    """
    assistant, replies = _format(provider).tool_turn(completion, _results_for(completion, results))
    return [assistant, *replies]


def assistant_message(provider: str, completion: Completion) -> dict[str, Any]:
    """A final (tool-free) assistant turn in `provider`'s format, to continue a conversation."""
    return _format(provider).final_turn(completion)


# --------------------------------------------------------------------------- the agent loop


def _messages(messages: str | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if isinstance(messages, Mapping) or not isinstance(messages, Sequence):
        raise ConfigError(
            f"messages must be a prompt string or a list of message dicts, got {messages!r}"
        )
    out = []
    for message in messages:
        if not isinstance(message, Mapping):
            raise ConfigError(f"each message must be a dict, got {message!r}")
        out.append(dict(message))
    return out


class Agent:
    """A running (or finished) `run_agent` loop.

    Attributes:
        messages: the conversation: the initial messages, then per step the
            assistant's tool-call turn and the tool results (provider format),
            then the final assistant turn once the loop ends.
        completions: the `Completion` of each step so far.
        result: the final `Completion` (None until the loop ended).
        provider: the message format used.
        max_steps: the step limit.

    Example:
        >>> import reactivex
        >>> from rxtokens import Finish, TextDelta, ToolRegistry, run
        >>> agent = run_agent(lambda messages: reactivex.of(TextDelta("Hi"), Finish("stop")),
        ...                   ToolRegistry(), "Hello")
        >>> run(agent.tokens).text
        'Hi'
        >>> agent
        Agent(provider='openai', max_steps=5, done)
    """

    def __init__(
        self,
        source_factory: Callable[[list[dict[str, Any]]], Observable[Any]],
        tools: ToolRegistry,
        messages: list[dict[str, Any]],
        provider: str,
        max_steps: int,
        timeout: float | None,
        max_concurrency: int | None,
    ) -> None:
        self.messages = messages
        self.completions: list[Completion] = []
        self.result: Completion | None = None
        self.provider = provider
        self.max_steps = max_steps
        self.tools = tools
        self._factory = source_factory
        self._timeout = timeout
        self._max_concurrency = max_concurrency
        self._broadcast: Broadcast[Any] = Broadcast(
            reactivex.create(self._subscribe), replay="all", name="agent"
        )

    def __repr__(self) -> str:
        state = "done" if self.result is not None else f"{len(self.completions)} step(s) done"
        return f"Agent(provider={self.provider!r}, max_steps={self.max_steps}, {state})"

    @property
    def tokens(self) -> Observable[Any]:
        """Every token of every step, with a `StepBoundary` after each step that continues.

        Shared: the first subscription (here, to `final`, or `completion`)
        starts the loop; later subscribers get everything so far, then live
        tokens; the loop runs once. Disposing the last subscription cancels it.
        """
        return self._broadcast.observable

    @property
    def final(self) -> Observable[Completion]:
        """The final `Completion` as an Observable (one item, at the end); starts the loop."""

        def subscribe(
            observer: abc.ObserverBase[Completion], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_completed() -> None:
                if self.result is not None:
                    observer.on_next(self.result)
                observer.on_completed()

            return self.tokens.subscribe(lambda _: None, observer.on_error, on_completed)

        return reactivex.create(subscribe)

    async def completion(self) -> Completion:
        """Run the loop (or wait for it) and return the final `Completion`.

        Raises:
            StreamError: a step failed (``.partial``: that step's completion so far).
        """
        await last(self.tokens, default=None)
        assert self.result is not None
        return self.result

    def cancel(self) -> None:
        """Stop the loop now (subscribers get `rxtokens.broadcast.BroadcastCancelledError`)."""
        self._broadcast.cancel()

    def _subscribe(
        self, observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        # One run per subscription; `Broadcast` subscribes exactly once.
        messages = self.messages
        current = SerialDisposable()
        step = 0
        next_step = True  # the next step is due
        driving = False
        stopped = False

        def stop(error: Exception | None) -> None:
            nonlocal stopped
            if stopped:
                return
            stopped = True
            if error is None:
                observer.on_completed()
            else:
                observer.on_error(error)

        def run_step() -> None:
            nonlocal step
            step += 1
            number = step
            builder = CompletionBuilder()
            results: list[ToolResult] = []

            def on_next(token: Any) -> None:
                try:
                    builder.add(token)
                except ConfigError as exc:  # not a token
                    current.dispose()
                    stop(exc)
                    return
                if type(token) is ToolResult:
                    results.append(token)
                observer.on_next(token)

            def on_error(error: Exception) -> None:
                stop(attach_partial(error, builder))

            def on_completed() -> None:
                nonlocal next_step
                try:
                    completion = builder.build()
                    self.completions.append(completion)
                    if not completion.tool_calls:
                        messages.append(assistant_message(self.provider, completion))
                        self.result = completion
                        stop(None)
                        return
                    messages.extend(tool_messages(self.provider, completion, results))
                except Exception as exc:
                    stop(exc)
                    return
                if number >= self.max_steps:
                    observer.on_next(StepBoundary(number, "max_steps"))
                    self.result = completion
                    stop(None)
                    return
                observer.on_next(StepBoundary(number, "tool_calls"))
                next_step = True
                drive()

            try:
                source = self._factory(list(messages))
                if not isinstance(source, Observable):
                    raise ConfigError(
                        f"run_agent: source_factory must return an Observable, got {source!r}"
                    )
            except Exception as exc:
                stop(exc)
                return
            holder = SingleAssignmentDisposable()
            current.disposable = holder
            holder.disposable = source.pipe(
                dispatch_tools(
                    self.tools, timeout=self._timeout, max_concurrency=self._max_concurrency
                )
            ).subscribe(on_next, on_error, on_completed, scheduler=scheduler)

        def drive() -> None:
            # A trampoline: a step that completes synchronously inside its subscribe()
            # asks for the next one, which starts once that subscribe() returned.
            nonlocal driving, next_step
            if driving:
                return
            driving = True
            try:
                while next_step and not stopped:
                    next_step = False
                    run_step()
            finally:
                driving = False

        drive()

        def dispose() -> None:
            nonlocal stopped
            stopped = True
            current.dispose()

        return Disposable(dispose)


def run_agent(
    source_factory: Callable[[list[dict[str, Any]]], Observable[Any]],
    tools: ToolRegistry | Any,
    messages: str | Sequence[Mapping[str, Any]],
    *,
    provider: str = "openai",
    max_steps: int = 5,
    timeout: float | None = 30.0,
    max_concurrency: int | None = 4,
) -> Agent:
    """The multi-step tool loop: stream, run tools mid-stream, send results, stream again.

    Step n: ``source_factory(messages)`` must return the token stream of one
    response (e.g. ``lambda m: anthropic(model, m, tools=registry.schemas())``:
    pass the registry's schemas yourself). Its tool calls run through
    `dispatch_tools` the moment their arguments are complete, while the
    response still streams. When the response and its tools are done, the
    assistant turn and the tool results are appended to the conversation in
    the provider's own format (`tool_messages`) and, if the response made tool
    calls, a `StepBoundary(n, "tool_calls")` is emitted and step n + 1 streams.
    The loop ends with a response without tool calls, or after `max_steps`
    responses (then `StepBoundary(max_steps, "max_steps")` is the last token).

    Nothing starts before the first subscription (to ``agent.tokens``,
    ``agent.final`` or ``await agent.completion()``); the loop runs once and is
    shared by all of them (late subscribers get a replay). A failing step ends
    the loop with its error (a `StreamError` carries ``.partial``, the failed
    step's completion so far); tool failures never do (they are results).

    Marble diagram (two steps)::

        step 1:      -T-C1--C2-F-|               C = ToolCall, R = ToolResult
        step 2:                      -T-T-F-|
        agent.tokens: -T-C1-R1-C2-F-R2-S-T-T-F-|   S = StepBoundary(1, "tool_calls")

    Args:
        source_factory: messages (a list of dicts, yours to read) -> token stream.
        tools: a `ToolRegistry`, a list of callables or a ``{name: callable}`` dict.
        messages: the prompt string or the initial messages.
        provider: the provider whose message format to use: ``"openai"`` (also
            ``openai_chat``, ``openai_compatible``, ``testing``), ``"anthropic"``,
            ``"gemini"``, or any provider in the table whose record has ``messages``.
        max_steps: the most responses to stream (>= 1).
        timeout: seconds per tool call (None: no limit).
        max_concurrency: tools running at once per step (None: no limit).

    Returns:
        An `Agent`: ``.tokens`` (all tokens of all steps), ``.final`` (the final
        `Completion` as an Observable), ``await .completion()``, ``.messages``
        (the conversation), ``.completions`` (per step), ``.result``.

    Raises:
        ConfigError: an unknown provider, an invalid option, or tools that cannot be described.

    Example:
        >>> agent = run_agent(factory, registry, "Lunch?", provider="anthropic")  # doctest: +SKIP
        >>> completion = await agent.completion()  # doctest: +SKIP
    """
    if not callable(source_factory):
        raise ConfigError(f"run_agent: source_factory must be callable, got {source_factory!r}")
    _format(provider)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ConfigError(f"run_agent: max_steps must be an int >= 1, got {max_steps!r}")
    registry = ToolRegistry.coerce(tools)
    dispatch_tools(registry, timeout=timeout, max_concurrency=max_concurrency)  # validates
    return Agent(
        source_factory,
        registry,
        _messages(messages),
        provider,
        max_steps,
        timeout,
        max_concurrency,
    )
