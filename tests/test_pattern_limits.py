"""Regexes from specs and launch strings are bounded (issue 15.1); regexes from code are not."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import reactivex
from reactivex import operators as rx_ops

from rxtokens.errors import ConfigError, ParamError, PatternTimeoutError, SpecError
from rxtokens.operators import chunk_by, redact
from rxtokens.operators._pattern_limits import (
    PatternLimits,
    check_pattern_limits,
    untrusted_patterns,
)
from rxtokens.registry import operator_entry
from rxtokens.spec import parse_launch
from rxtokens.tokens import TextDelta

from .server_helpers import read_events, running, token_text

HOSTILE = "a" * 40  # (a|aa)+b needs ~1.6^40 steps to fail on it


@pytest.mark.parametrize(
    ("pattern", "limit"),
    [
        ("a{999999999}", "1000 repetitions"),
        ("(a{100}){100}", "1000 repetitions"),
        ("(?:x{40,}){40}", "1000 repetitions"),
        ("a{2000,}", "1000 repetitions"),
        ("(?r)a{5000}", "1000 repetitions"),  # regex-only syntax: counted textually
        ("a" * 1001, "1,000 characters"),
    ],
)
def test_spec_patterns_over_the_limits_are_refused_before_compiling(
    pattern: str, limit: str
) -> None:
    started = time.perf_counter()
    for name, field in (("redact", "pattern"), ("stop_when", "condition")):
        with pytest.raises(ParamError, match=limit):
            operator_entry(name).validate({field: pattern, "max_match": 64})
    with pytest.raises(ParamError, match=limit):
        operator_entry("chunk_by").validate({"boundary": pattern})
    with pytest.raises(SpecError, match=limit):
        parse_launch(f"testing prompt=hi ! redact pattern='{pattern}' max_match=64")
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("pattern", [r"\d{16}", r"(\w{3}-){4}\d", r"sk-[A-Za-z0-9]{20,64}"])
def test_ordinary_spec_patterns_pass(pattern: str) -> None:
    with untrusted_patterns():
        check_pattern_limits(pattern, "redact")
    operator_entry("redact").validate({"pattern": pattern})


def test_patterns_from_code_are_not_limited() -> None:
    check_pattern_limits("a" * 5000, "redact")  # no limits active: no check
    out = reactivex.of(TextDelta("x" * 1500)).pipe(redact("x" * 1001, replacement="X"))
    assert "".join(t.text for t in out.pipe(rx_ops.to_list()).run()) == "X" + "x" * 499
    with pytest.raises(ConfigError, match="1000 repetitions"):
        check_pattern_limits("a{1001}", "redact", PatternLimits())


def _hostile(op: Any) -> list[Any]:
    seen: list[Any] = []
    reactivex.of(TextDelta("x " + HOSTILE), TextDelta(HOSTILE)).pipe(op).subscribe(
        seen.append, seen.append
    )
    return seen


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("redact", {"pattern": "(a|aa)+b", "max_match": 100}),
        ("stop_when", {"condition": "(a|aa)+b", "max_match": 100}),
        ("chunk_by", {"boundary": "(a|aa)+b"}),
    ],
)
def test_a_spec_pattern_that_backtracks_ends_the_stream_within_its_budget(
    name: str, params: dict[str, Any]
) -> None:
    op = operator_entry(name).build(params)
    started = time.perf_counter()
    seen = _hostile(op)
    elapsed = time.perf_counter() - started
    assert isinstance(seen[-1], PatternTimeoutError), seen
    assert seen[-1].pattern == "(a|aa)+b"
    assert "(a|aa)+" in str(seen[-1])
    assert elapsed < 1.0  # budget 0.1 s per match call


def test_the_same_pattern_from_code_has_no_budget() -> None:
    """Code owns its patterns: no time budget, no 2 us per call (a short text, so it ends)."""
    out = reactivex.of(TextDelta("aaaab aa")).pipe(chunk_by("(a|aa)+b"), rx_ops.to_list()).run()
    assert [t.text for t in out] == ["aaaab", " aa"]


async def test_server_refuses_a_huge_repeat_with_400_fast() -> None:
    async with running(allow_specs=True) as srv:
        for body in (
            {"launch": "testing prompt=hi ! redact pattern='a{999999999}'"},
            {
                "spec": {
                    "source": {"provider": "testing", "prompt": "hi"},
                    "operators": [{"name": "chunk_by", "params": {"boundary": "a{999999999}"}}],
                }
            },
        ):
            started = time.perf_counter()
            async with srv.session.post(
                srv.url("/v1/streams"), json=body, headers=srv.auth
            ) as response:
                assert response.status == 400
                message = (await response.json())["error"]["message"]
            assert time.perf_counter() - started < 1.0
            assert "1000 repetitions" in message


async def test_server_a_backtracking_pattern_ends_its_stream_and_others_flow() -> None:
    async with running(allow_specs=True) as srv:
        launch = f"testing prompt={HOSTILE} ! redact pattern='(a|aa)+b' max_match=64"
        async with srv.session.post(
            srv.url("/v1/streams"), json={"launch": launch}, headers=srv.auth
        ) as response:
            assert response.status == 201, await response.text()
            hostile = (await response.json())["id"]
        other = await srv.start("hello")

        async def events(stream_id: str) -> list[Any]:
            async with srv.session.get(
                srv.url(f"/v1/streams/{stream_id}/events"), headers=srv.auth
            ) as response:
                return await read_events(response)

        started = time.perf_counter()
        bad, good = await asyncio.gather(events(hostile), events(other))
        assert time.perf_counter() - started < 5.0
        assert bad[-1].event == "error"
        assert "PatternTimeoutError" in bad[-1].data or "time budget" in bad[-1].data
        assert good[-1].event == "done"
        assert "hello" in token_text(good)
