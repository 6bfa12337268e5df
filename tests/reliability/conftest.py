"""Fixtures of the reliability suite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rxtokens.providers import close_sessions
from rxtokens.testing import ProviderServer


@pytest.fixture
async def srv() -> AsyncIterator[ProviderServer]:
    """A loopback provider server on this test's event loop (client sessions closed after)."""
    async with ProviderServer() as server:
        try:
            yield server
        finally:
            await close_sessions()
