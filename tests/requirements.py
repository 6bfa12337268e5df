"""Outside tools a test needs: skipped with a one-line reason locally, a failure in CI.

`.ci/run` installs every server and tool the tests use, so in CI (``CI=true``) a missing one
means the install step is broken, and a skip would hide it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(what: str, hint: str) -> None:
    message = f"{what} is not installed ({hint})"
    if IN_CI:
        pytest.fail(f"{message}: .ci/run must install it", pytrace=False)
    pytest.skip(message)


def require_executable(name: str, hint: str) -> str:
    """The path of the executable `name`; skip (fail in CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        _missing(name, hint)
    assert path is not None
    return path


def require_module(name: str, hint: str) -> None:
    """Skip (fail in CI) unless the Python module `name` can be imported."""
    if importlib.util.find_spec(name) is None:
        _missing(name, hint)
