"""Running the server: the access log and the command line (rxtokens.server.run)."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest

from rxtokens.server import create_app, start_server


async def test_access_log_masks_tokens(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    app = create_app(token="the-secret-token")
    runner = await start_server(app, port=0)
    try:
        port = runner.addresses[0][1]
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://127.0.0.1:{port}/v1/streams/x/events", params={"token": "the-secret-token"}
            ) as response,
        ):
            assert response.status == 404
    finally:
        await runner.cleanup()
    assert "/v1/streams/x/events?token=***" in caplog.text
    assert "the-secret-token" not in caplog.text


def test_main_reports_bad_options() -> None:
    from rxtokens.server import main

    with pytest.raises(SystemExit) as info:
        main(["--upstream", "nope"])
    assert info.value.code == 2


async def test_connections_without_a_complete_request_are_closed() -> None:
    """Slowloris: half-sent headers and idle sockets are closed after idle_timeout."""
    runner = await start_server(create_app(token="t0ken-t0ken"), port=0, idle_timeout=0.3)
    try:
        port = runner.addresses[0][1]
        sockets = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        half, _idle = sockets
        half[1].write(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
        await half[1].drain()
        start = time.monotonic()
        async with asyncio.timeout(10):
            for reader, _writer in sockets:
                assert await reader.read() == b""  # closed by the server
        assert time.monotonic() - start < 5
        for _reader, writer in sockets:
            writer.close()
    finally:
        await runner.cleanup()
