"""The error hierarchy: one tree in errors.py, stdlib bases, context attributes, messages."""

from __future__ import annotations

import asyncio

import pytest

import rxtokens.errors as errors
from rxtokens import (
    Completion,
    ConfigError,
    ProviderNotInstalledError,
    RateLimitError,
    RxTokensError,
    StreamError,
    StreamTimeoutError,
    TruncatedStreamError,
)


def test_errors_also_inherit_the_stdlib_type_callers_catch() -> None:
    assert issubclass(ConfigError, ValueError)
    assert issubclass(StreamTimeoutError, asyncio.TimeoutError)
    assert issubclass(ProviderNotInstalledError, ImportError)


def test_not_installed_names_the_extra_to_install() -> None:
    err = ProviderNotInstalledError("llama-cpp-python", "local")
    assert "pip install 'rxtokens[local]'" in str(err)


def test_rate_limit_carries_status_and_retry_after() -> None:
    err = RateLimitError("slow down", status=429, retry_after=1.5, provider="openai")
    assert (err.status, err.retry_after, err.provider) == (429, 1.5, "openai")
    assert "429" in repr(err)


def test_with_partial_sets_once() -> None:
    first, second = Completion(text="a"), Completion(text="ab")
    err = TruncatedStreamError("dropped").with_partial(first)
    assert isinstance(err, StreamError)
    assert err.with_partial(second).partial is first


def test_timeout_says_which_phase() -> None:
    err = StreamTimeoutError("idle for 5s", phase="idle", timeout=5.0)
    assert (err.phase, err.timeout) == ("idle", 5.0)


def _exported_exceptions() -> dict[str, type[BaseException]]:
    import rxtokens

    found: dict[str, type[BaseException]] = {}
    for module in (rxtokens, errors):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, BaseException):
                found[name] = value
    return found


def test_every_exported_exception_lives_in_errors_and_derives_from_the_root() -> None:
    found = _exported_exceptions()
    assert len(found) >= 20
    for name, cls in found.items():
        assert issubclass(cls, RxTokensError), name
        assert cls.__module__ == "rxtokens.errors", name
        assert cls is getattr(errors, name), name


def test_the_drawn_tree_shows_every_exception_under_its_real_base() -> None:
    """Every public exception is in the docstring's tree, indented under its parent."""
    assert errors.__doc__ is not None
    tree = [line for line in errors.__doc__.splitlines() if line.startswith("    ")]
    depth_of: dict[str, int] = {}
    parent_of: dict[str, str | None] = {}
    stack: list[str] = []
    for line in tree:
        text = line[4:]
        name_start = next(i for i, c in enumerate(text) if c.isalpha())
        name = text[name_start:].split()[0]
        depth = name_start // 4
        del stack[depth:]
        parent_of[name] = stack[-1] if stack else None
        depth_of[name] = depth
        stack.append(name)
    for name, cls in _exported_exceptions().items():
        assert name in parent_of, f"{name} is missing from the tree in errors.py"
        parent = parent_of[name]
        if parent is not None:
            assert cls.__mro__[1].__name__ == parent, (name, parent)


@pytest.mark.parametrize(
    ("name", "stdlib"),
    [
        ("ParamError", ValueError),
        ("ToolArgumentsError", ValueError),
        ("EmptyStreamError", LookupError),
        ("ReplayGapError", LookupError),
        ("SpecError", ValueError),
        ("LaunchSyntaxError", ValueError),
    ],
)
def test_moved_errors_keep_their_stdlib_base(name: str, stdlib: type[Exception]) -> None:
    assert issubclass(getattr(errors, name), stdlib)


def test_moved_errors_are_still_importable_from_their_old_modules() -> None:
    import rxtokens
    from rxtokens import aio, broadcast, inflight, launch, registry, spec
    from rxtokens.operators import _tools

    assert aio.EmptyStreamError is errors.EmptyStreamError
    assert broadcast.ReplayGapError is errors.ReplayGapError
    assert broadcast.BroadcastCancelledError is errors.BroadcastCancelledError
    assert spec.SpecError is errors.SpecError
    assert spec.LaunchSyntaxError is launch.LaunchSyntaxError is errors.LaunchSyntaxError
    assert registry.ParamError is errors.ParamError
    assert inflight.ToolArgumentsError is _tools.ToolArgumentsError is errors.ToolArgumentsError
    assert launch.caret_excerpt is errors.caret_excerpt
    assert rxtokens.SpecError is errors.SpecError


def test_moved_errors_keep_their_attributes_and_messages() -> None:
    gap = errors.ReplayGapError("gone", after=3, oldest=9)
    assert (gap.after, gap.oldest, str(gap)) == (3, 9, "gone")
    param = errors.ParamError("redact", "pattern", "not a regex")
    assert (param.entry, param.field, str(param)) == (
        "redact",
        "pattern",
        "redact: pattern: not a regex",
    )
    launch = errors.LaunchSyntaxError("unexpected '='", "a = b", 2)
    assert (launch.reason, launch.position) == ("unexpected '='", 2)
    assert str(launch) == "unexpected '=' (position 2)\n  a = b\n    ^"
    spec = errors.SpecError([{"loc": ("operators", 2), "entry": None, "field": None, "msg": "bad"}])
    assert spec.problems == [("operators[2]", "bad")]
    assert str(spec) == "operators[2]: bad"
    assert errors.BroadcastCancelledError("stopped").partial is None


def test_errors_module_imports_nothing_from_the_package_at_run_time() -> None:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(errors))
    for node in tree.body:  # module-level statements only; TYPE_CHECKING blocks are `if`s
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, node.module
            assert not (node.module or "").startswith("rxtokens"), node.module
