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


async def test_aiohttp_own_log_lines_mask_the_servers_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 15 (left from 3): aiohttp's lines went out unmasked on main."""
    caplog.set_level(logging.DEBUG)
    secret = "upstream-key-of-no-known-shape-42"  # not sk-... / AIza...: masked by value
    app = create_app(token="the-secret-token", upstream_options={"api_key": secret})
    runner = await start_server(app, port=0)
    try:
        port = runner.addresses[0][1]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/v1/nope", params={"q": secret}) as response,
        ):
            assert response.status in (401, 404)
        try:
            raise RuntimeError(f"upstream said {secret}")
        except RuntimeError:
            logging.getLogger("aiohttp.server").exception("Error handling request %s", secret)
    finally:
        await runner.cleanup()
    assert "/v1/nope?q=***" in caplog.text
    assert "Error handling request ***" in caplog.text
    assert "upstream said ***" in caplog.text
    assert secret not in caplog.text
    # the filter lives as long as the app
    assert not any(logging.getLogger(n).filters for n in ("aiohttp.access", "aiohttp.server"))


def test_main_passes_the_client_limits_to_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15 (left from 4, 6): these limits had no flag on main."""
    from rxtokens.server import STATE_KEY, main, run

    seen: dict[str, object] = {}
    monkeypatch.setattr(run, "serve", lambda host, port, **options: seen.update(options))
    flags = ["--max-clients-per-stream", "3", "--max-clients-per-credential", "2"]
    flags += ["--write-timeout", "5", "--max-pending", "100", "--max-body", "1000"]
    assert main(flags) == 0
    seen.pop("idle_timeout")
    state = create_app(**seen)[STATE_KEY]  # type: ignore[arg-type]
    assert (state.max_clients_per_stream, state.max_clients_per_credential) == (3, 2)
    assert (state.write_timeout, state.max_pending) == (5.0, 100)
    monkeypatch.undo()
    with pytest.raises(SystemExit) as info:
        main(["--write-timeout", "0"])
    assert info.value.code == 2
