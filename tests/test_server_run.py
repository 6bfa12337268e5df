"""Running the server: the access log and the command line (rxtokens.server.run)."""

from __future__ import annotations

import logging

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
