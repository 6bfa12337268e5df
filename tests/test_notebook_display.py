"""`rxtokens.notebook`: the live display, checked through IPython's own display machinery.

An `InteractiveShell` gets a capturing display publisher that records every
message `display_stream` publishes (the first ``display`` and each ``update``),
with the virtual time of a `TestScheduler` and the publishing thread.
"""

from __future__ import annotations

import asyncio
import builtins
import itertools
import math
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import reactivex
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from reactivex.testing import ReactiveTest, TestScheduler
from traitlets.config import Config

from rxtokens.broadcast import Broadcast
from rxtokens.errors import ConfigError, ProviderError
from rxtokens.notebook import (
    StreamDisplay,
    completion_html,
    completion_markdown,
    display_stream,
    register_formatters,
    token_html,
    tokens_html,
)
from rxtokens.tokens import (
    Choice,
    Completion,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error


class RecordingPublisher(CapturingDisplayPublisher):
    """Records each published message with the scheduler's clock and the thread."""

    def __init__(self, clock: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.times: list[float] = []
        self.threads: list[int] = []

    def publish(self, data: Any, metadata: Any = None, source: Any = None, **kwargs: Any) -> None:
        super().publish(data, metadata, source, **kwargs)
        self.times.append(float(self.clock()) if self.clock is not None else 0.0)
        self.threads.append(threading.get_ident())


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    """An IPython shell for the test; what it adds to builtins and warnings is undone."""
    builtin_names = set(vars(builtins))
    with warnings.catch_warnings():
        config = Config()
        config.HistoryManager.enabled = False
        shell = InteractiveShell.instance(config=config)
        try:
            yield shell
        finally:
            InteractiveShell.clear_instance()
            for name in set(vars(builtins)) - builtin_names:  # display, __IPYTHON__
                delattr(builtins, name)


def recorder(shell: InteractiveShell, scheduler: TestScheduler | None = None) -> RecordingPublisher:
    clock = (lambda: scheduler.clock) if scheduler is not None else None
    pub = RecordingPublisher(clock=clock)
    shell.display_pub = pub
    return pub


def markdown_of(output: dict[str, Any]) -> str:
    return str(output["data"]["text/markdown"])


def words(n: int, start: float, step: float) -> list[Any]:
    return [on_next(start + step * i, TextDelta(f"w{i} ")) for i in range(n)]


# --------------------------------------------------------------------------- frame rate


@pytest.mark.parametrize("fps", [5, 10, 30])
def test_updates_are_bounded_by_fps_and_the_last_one_has_everything(
    shell: InteractiveShell, fps: int
) -> None:
    scheduler = TestScheduler()
    pub = recorder(shell, scheduler)
    # 200 tokens over 2 s (100 tokens/s), then the finish
    messages = [*words(200, 1.0, 0.01), on_next(3.0, Finish("stop")), on_completed(3.0)]
    source = scheduler.create_cold_observable(*messages)
    handle = display_stream(source, fps=fps, scheduler=scheduler)
    scheduler.start()

    assert handle.done
    times = pub.times
    # frames while streaming are 1/fps apart; the final frame comes at the end, at once
    gaps = [b - a for a, b in itertools.pairwise(times[:-1])]
    # (the TestScheduler keeps due times at microsecond resolution)
    assert all(gap >= 1 / fps - 1e-6 for gap in gaps), gaps
    assert times[-1] == pytest.approx(3.0)
    # first display, at most fps frames per second of streaming, the final frame
    assert len(times) <= 1 + math.ceil(2.0 * fps) + 2
    assert len(times) >= 2.0 * fps - 1  # and it did update while streaming
    assert handle.updates == len(pub.outputs)
    # the first message is the display, every later one an update of the same display id
    first, *rest = pub.outputs
    display_id = first["transient"]["display_id"]
    assert not first["update"]
    assert all(o["update"] and o["transient"]["display_id"] == display_id for o in rest)
    full = "".join(f"w{i} " for i in range(200))
    final = markdown_of(pub.outputs[-1])
    assert final.startswith(full)
    assert "finished: stop" in final
    assert "200 tokens" in final
    assert str(pub.outputs[-1]["data"]["text/plain"]).startswith(full)
    assert handle.result().text == full


def test_a_burst_is_coalesced_into_few_updates(shell: InteractiveShell) -> None:
    scheduler = TestScheduler()
    pub = recorder(shell, scheduler)
    # (under 100 items at one virtual time: TestScheduler then advances the clock by itself)
    messages = [on_next(1.0, TextDelta(f"{i},")) for i in range(90)]
    source = scheduler.create_cold_observable(
        *messages, on_next(1.0, Finish("stop")), on_completed(1.0)
    )
    handle = display_stream(source, fps=15, scheduler=scheduler)
    scheduler.start()
    # the display; the first token at once (its slot was free); one final frame with the rest,
    # at once too: the stream ended (the frame timer's pending frame is folded into it)
    assert len(pub.outputs) == 3
    assert markdown_of(pub.outputs[1]).startswith("0,\n")
    assert pub.times == [0.0, 1.0, 1.0]
    assert handle.text == "".join(f"{i}," for i in range(90))
    assert markdown_of(pub.outputs[-1]).startswith(handle.text)


def test_the_final_frame_comes_at_once_when_the_stream_ends(shell: InteractiveShell) -> None:
    scheduler = TestScheduler()
    pub = recorder(shell, scheduler)
    # fps=2: tokens at 0.6 (published at once), the end at 0.7 (inside the frame: shown at once)
    source = scheduler.create_cold_observable(
        on_next(0.6, TextDelta("Hello")), on_next(0.7, Finish("stop")), on_completed(0.7)
    )
    handle = display_stream(source, fps=2, scheduler=scheduler)
    scheduler.advance_to(0.65)
    assert pub.times == [0.0, 0.6]
    assert not handle.done
    scheduler.advance_to(0.7)
    assert pub.times == [0.0, 0.6, pytest.approx(0.7)]
    assert handle.done
    assert "finished: stop" in markdown_of(pub.outputs[-1])
    assert "Hello" in markdown_of(pub.outputs[1])
    assert "streaming" in markdown_of(pub.outputs[1])


def test_nothing_is_published_while_idle(shell: InteractiveShell) -> None:
    scheduler = TestScheduler()
    pub = recorder(shell, scheduler)
    source = scheduler.create_cold_observable(
        on_next(1.0, TextDelta("a")), on_next(50.0, TextDelta("b")), on_completed(50.0)
    )
    display_stream(source, fps=10, scheduler=scheduler)
    scheduler.start()
    assert pub.times == [0.0, 1.0, 50.0, 50.0]  # (the last one: the final frame)


# --------------------------------------------------------------------------- status line


def test_status_line_shows_tokens_ttft_rate_and_finish(shell: InteractiveShell) -> None:
    scheduler = TestScheduler()
    pub = recorder(shell, scheduler)
    source = scheduler.create_cold_observable(
        on_next(0.5, TextDelta("a")),
        on_next(1.0, TextDelta("b")),
        on_next(1.5, TextDelta("c")),
        on_next(1.5, Usage(7, 3)),
        on_next(1.5, Finish("length")),
        on_completed(1.5),
    )
    handle = display_stream(source, fps=100, scheduler=scheduler)
    assert "waiting for the first token" in markdown_of(pub.outputs[0])
    scheduler.start()
    status = handle.status()
    assert status.startswith("finished: length")
    assert "3 tokens" in status
    assert "first token 0.50 s" in status
    assert "3.0 tokens/s" in status  # 3 tokens between 0.5 s and 1.5 s
    assert "1.50 s total" in status
    assert status in str(pub.outputs[-1]["data"]["text/plain"])


def test_estimated_usage_is_labelled(shell: InteractiveShell) -> None:
    recorder(shell)
    source = reactivex.of(TextDelta("a"), Usage(None, 12, estimated=True), Finish("stop"))
    handle = display_stream(source, scheduler=TestScheduler())
    assert "12 tokens (estimated)" in handle.status()


def test_error_is_shown_with_the_partial_text_and_raised_with_partial(
    shell: InteractiveShell,
) -> None:
    scheduler = TestScheduler()
    pub = recorder(shell, scheduler)
    error = ProviderError("the model is overloaded", error_type="overloaded_error")
    source = scheduler.create_cold_observable(
        on_next(0.2, TextDelta("Half an ")), on_next(0.3, TextDelta("answer")), on_error(0.4, error)
    )
    handle = display_stream(source, fps=10, scheduler=scheduler)
    scheduler.start()
    final = markdown_of(pub.outputs[-1])
    assert final.startswith("Half an answer")
    assert "❌" in final
    assert "ProviderError: the model is overloaded" in final
    assert "partial text above" in final
    assert handle.error is error
    with pytest.raises(ProviderError) as caught:
        handle.result()
    assert caught.value.partial is not None
    assert caught.value.partial.text == "Half an answer"


def test_invalid_tool_arguments_at_the_end_are_an_error(shell: InteractiveShell) -> None:
    recorder(shell)
    source = reactivex.of(ToolCallDelta(0, "c1", "f", '{"a": '), Finish("tool_calls"))
    handle = display_stream(source, scheduler=TestScheduler())
    handle_error = handle.error
    assert handle_error is not None
    assert "❌" in handle.markdown()


# --------------------------------------------------------------------------- content


def test_tool_calls_are_shown_as_their_arguments_stream(shell: InteractiveShell) -> None:
    scheduler = TestScheduler()
    pub = recorder(shell, scheduler)
    source = scheduler.create_cold_observable(
        on_next(1.0, ToolCallDelta(0, "call_1", "get_weather", '{"city": "Pa')),
        on_next(2.0, ToolCallDelta(0, None, None, 'ris"}')),
        on_next(2.0, ToolCall(0, "call_1", "get_weather", {"city": "Paris"})),
        on_next(3.0, Finish("tool_calls")),
        on_completed(3.0),
    )
    display_stream(source, fps=10, scheduler=scheduler)
    scheduler.start()
    during = markdown_of(pub.outputs[1])
    assert "🔧 **get_weather**" in during
    assert "{&quot;city&quot;: &quot;Pa" in during
    assert during.count("get_weather") == 1
    assert "…" in during  # not complete yet
    final = markdown_of(pub.outputs[-1])
    assert final.count("get_weather") == 1
    assert "Paris" in final
    assert "finished: tool_calls" in final


def test_tools_and_status_can_be_hidden(shell: InteractiveShell) -> None:
    recorder(shell)
    source = reactivex.of(TextDelta("x"), ToolCall(0, "c", "f", {"a": 1}), Finish("stop"))
    handle = display_stream(source, show_status=False, show_tools=False, scheduler=TestScheduler())
    assert handle.markdown() == "x"


def test_inflight_events_are_listed(shell: InteractiveShell) -> None:
    inflight = pytest.importorskip("rxtokens.inflight")
    recorder(shell)
    source = reactivex.of(
        TextDelta("I want a refund"),
        inflight.Intent("refund", 0.9, "refund"),
        inflight.ToolResult("c1", "lookup", {"ok": True}, None, 0, 0.01),
        inflight.ActionResult("lookup_order", "A-1042", {"status": "shipped"}, None),
        Finish("stop"),
    )
    handle = display_stream(source, scheduler=TestScheduler())
    md = handle.markdown()
    assert "🎯 intent **refund** (90%)" in md
    assert "↩️ **lookup**" in md
    assert "⚡ **lookup_order** on “A-1042”" in md


def test_reasoning_and_several_choices(shell: InteractiveShell) -> None:
    recorder(shell)
    source = reactivex.of(
        ReasoningDelta("think\nmore"),
        TextDelta("zero", 0),
        TextDelta("one", 1),
        Finish("stop", 0),
        Finish("stop", 1),
    )
    md = display_stream(source, scheduler=TestScheduler()).markdown()
    assert "> 💭 think\n> more" in md
    assert "**choice 0**" in md
    assert "**choice 1**" in md
    assert md.index("zero") < md.index("one")


def test_an_unclosed_code_fence_is_closed_in_the_frame(shell: InteractiveShell) -> None:
    scheduler = TestScheduler()
    pub = recorder(shell, scheduler)
    source = scheduler.create_cold_observable(
        on_next(1.0, TextDelta("Code:\n```python\nx = 1")),
        on_next(2.0, TextDelta("\n```\ndone")),
        on_completed(2.0),
    )
    display_stream(source, fps=10, show_status=False, scheduler=scheduler)
    scheduler.start()
    assert markdown_of(pub.outputs[1]) == "Code:\n```python\nx = 1\n```"
    assert markdown_of(pub.outputs[-1]) == "Code:\n```python\nx = 1\n```\ndone"


# --------------------------------------------------------------------------- lifecycle


def test_cancel_disposes_the_source_and_shows_what_arrived(shell: InteractiveShell) -> None:
    scheduler = TestScheduler()
    pub = recorder(shell, scheduler)
    source = scheduler.create_cold_observable(
        on_next(1.0, TextDelta("partial")), on_next(10.0, TextDelta(" more")), on_completed(10.0)
    )
    handle = display_stream(source, fps=10, scheduler=scheduler)
    scheduler.advance_to(2.0)
    assert handle.cancel()
    assert not handle.cancel()
    scheduler.start()
    assert source.subscriptions[0].unsubscribe == 2.0
    final = markdown_of(pub.outputs[-1])
    assert final.startswith("partial")
    assert "cancelled" in final
    assert " more" not in final
    with pytest.raises(asyncio.CancelledError):
        handle.result()


def test_broadcast_source_shares_the_request(shell: InteractiveShell) -> None:
    recorder(shell)
    subscriptions = []

    def subscribe(observer: Any, scheduler: Any = None) -> Any:
        subscriptions.append(1)
        return reactivex.of(TextDelta("Hel"), TextDelta("lo"), Finish("stop")).subscribe(observer)

    broadcast = Broadcast(reactivex.create(subscribe))
    other: list[str] = []
    broadcast.subscribe(lambda t: other.append(getattr(t, "text", "")))
    scheduler = TestScheduler()
    handle = display_stream(broadcast, scheduler=scheduler)
    scheduler.start()  # the final frame's slot
    assert handle.result().text == "Hello"
    assert "".join(other) == "Hello"
    assert subscriptions == [1]


def test_invalid_arguments_fail_fast(shell: InteractiveShell) -> None:
    pub = recorder(shell)
    for fps in (0, -1, True, "10", math.inf, math.nan):
        with pytest.raises(ConfigError):
            display_stream(reactivex.empty(), fps=fps)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="Observable or a Broadcast"):
        display_stream([TextDelta("x")])  # type: ignore[arg-type]
    assert pub.outputs == []


def test_without_a_shell_the_final_text_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert not InteractiveShell.initialized()
    handle = display_stream(
        reactivex.of(TextDelta("plain "), TextDelta("text"), Finish("stop")),
        scheduler=TestScheduler(),
    )
    assert handle.result().text == "plain text"
    out = capsys.readouterr().out
    assert out.startswith("plain text")
    assert "finished: stop" in out
    assert out.count("plain text") == 1


# --------------------------------------------------------------------------- threads, await


async def test_await_in_a_running_loop_with_a_worker_thread_source(
    shell: InteractiveShell,
) -> None:
    pub = recorder(shell)
    loop_thread = threading.get_ident()
    received_on: list[int] = []
    threads: list[threading.Thread] = []

    def subscribe(observer: Any, scheduler: Any = None) -> Any:
        def work() -> None:
            for i in range(300):
                observer.on_next(TextDelta(f"{i} "))
            observer.on_next(Finish("stop"))
            observer.on_completed()

        thread = threading.Thread(target=work)
        threads.append(thread)
        thread.start()
        return reactivex.disposable.Disposable()

    source = reactivex.create(subscribe).pipe(
        reactivex.operators.do_action(lambda _: received_on.append(threading.get_ident()))
    )
    handle = display_stream(source, fps=1000)
    assert isinstance(handle, StreamDisplay)
    completion = await handle
    assert completion.text == "".join(f"{i} " for i in range(300))
    assert completion.finish_reason == "stop"
    assert set(received_on) != {loop_thread}  # the tokens really came from the worker
    assert set(pub.threads) == {loop_thread}  # every publish happened on the loop thread
    assert markdown_of(pub.outputs[-1]).startswith(completion.text)
    threads[0].join()


async def test_await_raises_the_error_with_partial(shell: InteractiveShell) -> None:
    recorder(shell)
    source = reactivex.concat(
        reactivex.of(TextDelta("so far")), reactivex.throw(ProviderError("boom"))
    )
    with pytest.raises(ProviderError) as caught:
        await display_stream(source, fps=1000)
    assert caught.value.partial is not None
    assert caught.value.partial.text == "so far"


async def test_cancelling_the_await_cancels_the_stream(shell: InteractiveShell) -> None:
    recorder(shell)
    disposed = asyncio.Event()

    def subscribe(observer: Any, scheduler: Any = None) -> Any:
        observer.on_next(TextDelta("started"))
        return reactivex.disposable.Disposable(disposed.set)

    handle = display_stream(reactivex.create(subscribe), fps=1000)
    task = asyncio.ensure_future(handle._wait())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert disposed.is_set()
    assert "cancelled" in handle.status()


async def test_result_on_the_loop_thread_before_the_end_is_refused(shell: InteractiveShell) -> None:
    recorder(shell)
    handle = display_stream(reactivex.never(), fps=1000)
    with pytest.raises(ConfigError, match="await"):
        handle.result()
    handle.cancel()


# --------------------------------------------------------------------------- rich reprs


def test_formatters_render_completions_and_tokens(shell: InteractiveShell) -> None:
    assert register_formatters(shell)
    completion = Completion(
        text="<b>bold?</b>",
        reasoning="hmm",
        tool_calls=[ToolCall(0, "c1", "f", {"x": 1})],
        finish_reason="stop",
        usage=Usage(3, 4),
    )
    data, _ = shell.display_formatter.format(completion)
    assert "&lt;b&gt;bold?&lt;/b&gt;" in data["text/html"]
    assert "<details>" in data["text/html"]
    assert "tokens: 3 in, 4 out" in data["text/html"]
    assert data["text/markdown"].startswith("<b>bold?</b>")
    assert "🔧 **f**" in data["text/markdown"]
    token_data, _ = shell.display_formatter.format(TextDelta("a\nb"))
    assert "a↵\nb" in token_data["text/html"]
    assert "rxt-token" in shell.display_formatter.format(Finish("stop"))[0]["text/html"]


def test_html_helpers() -> None:
    assert "rxt-token" in token_html(ToolCallDelta(0, "c", "f", '{"a"'))
    chips = tokens_html([TextDelta("a"), Usage(1, 2), Finish("stop")])
    assert chips.count('class="rxt-token"') == 3
    assert "choice 1" in completion_markdown(
        Completion(
            text="a",
            choices=[
                Choice(0, "a"),
                Choice(1, "b"),
            ],
        )
    )
    assert "&lt;script&gt;" in completion_html(Completion(text="<script>"))
    assert not register_formatters() or InteractiveShell.initialized()


def test_agent_steps_are_shown_one_after_the_other(shell: InteractiveShell) -> None:
    inflight = pytest.importorskip("rxtokens.inflight")
    recorder(shell)
    source = reactivex.of(
        TextDelta("Let me check."),
        ToolCall(0, "c1", "lookup", {"q": 1}),
        Finish("tool_calls"),
        Usage(5, 7),
        inflight.ToolResult("c1", "lookup", "found", None, 0, 0.01),
        inflight.StepBoundary(1, "tool_calls"),
        TextDelta("Done."),
        ToolCall(0, "c2", "other", {}),  # the same index as in step 1: a new call
        Finish("stop"),
        Usage(9, 3),
    )
    scheduler = TestScheduler()
    handle = display_stream(source, scheduler=scheduler)
    scheduler.start()
    md = handle.markdown()
    order = ["Let me check.", "**lookup**", "⏭️ step 1 ended: tool_calls", "Done.", "**other**"]
    positions = [md.index(part) for part in order]
    assert positions == sorted(positions)
    assert "10 tokens" in handle.status()  # the usage of both responses
    assert handle.result().text == "Let me check.Done."  # what collect() would give


def test_a_missing_ipython_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from rxtokens.errors import ProviderNotInstalledError

    monkeypatch.setitem(sys.modules, "IPython.core.display_functions", None)
    with pytest.raises(ProviderNotInstalledError, match=r"rxtokens\[notebook\]"):
        display_stream(reactivex.empty())
