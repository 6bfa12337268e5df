"""Shared test configuration."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.register_profile(
    "slow", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=5000
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(config: object, items: list[object]) -> None:
    """Skip tests marked slow unless RXTOKENS_SLOW=1 (.ci/run runs them in a second pass)."""
    import pytest

    if os.environ.get("RXTOKENS_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set RXTOKENS_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:  # type: ignore[attr-defined]
            item.add_marker(skip)  # type: ignore[attr-defined]
