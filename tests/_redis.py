"""A real ``redis-server`` for the tests: `redis_server` starts one on a free 127.0.0.1 port.

Skipped with a one-line reason when ``redis-server`` is not installed (a failure in CI,
where ``.ci/run`` installs it). Nothing is persisted (``--save ''``, no AOF).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from .requirements import require_executable


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_ping(port: int, process: subprocess.Popen[bytes], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as s:
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return
        time.sleep(0.02)  # polling a starting server, not a test's timing
    raise RuntimeError(f"redis-server did not answer on port {port} within {within} s")


@pytest.fixture
def redis_server() -> Iterator[str]:
    """The URL (``redis://127.0.0.1:PORT/0``) of a fresh redis-server, stopped afterwards."""
    executable = require_executable("redis-server", "apt-get install redis-server")
    port = _free_port()
    process = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_ping(port, process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
