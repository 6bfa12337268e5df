"""Real processes for tests and benchmarks of scaled-out servers: Redis, ``rxtokens serve``.

`RedisServer` runs a ``redis-server`` (Debian package ``redis-server``) on a
free 127.0.0.1 port without persistence; `ServerProcess` runs ``rxtokens serve
--redis URL`` in its own process (SIGKILL it to test a failure); `cluster`
starts several in parallel.

Example:
    >>> redis = RedisServer("/usr/bin/redis-server")  # not started yet
    >>> redis.url.startswith("redis://127.0.0.1:")
    True
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

__all__ = ["HEARTBEAT", "TOKEN", "RedisServer", "ServerProcess", "cluster", "free_port"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process; `stop` and `start` again keep its port (an outage)."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.port = free_port()
        self.dir: tempfile.TemporaryDirectory[str] | None = None  # made by `start`
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.dir is None:
            self.dir = tempfile.TemporaryDirectory(prefix="rxtokens-redis-")
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self.dir.name,
                "--maxclients", "4096",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def close(self) -> None:
        self.stop()
        if self.dir is not None:
            self.dir.cleanup()
            self.dir = None


TOKEN = "cluster-t0ken"
"""The bearer token the server processes share (``RXTOKENS_SERVER_TOKEN``)."""


class ServerProcess:
    """``rxtokens serve --redis URL`` in its own process (SIGKILL it to test failures)."""

    def __init__(
        self, redis_url: str, base_url: str, *args: str, heartbeat: float | None = None
    ) -> None:
        self.port = free_port()
        self.argv = [
            sys.executable, "-m", "rxtokens", "serve",
            "--port", str(self.port),
            "--redis", redis_url,
            "--redis-heartbeat", str(heartbeat or HEARTBEAT),
            "--base-url", base_url,
            "--max-clients", "2048",
            *args,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        # its stderr (`output`, to debug a failing test); closed by `stop`
        self.log = tempfile.TemporaryFile()  # noqa: SIM115

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def start(self) -> None:
        env = {**os.environ, "RXTOKENS_SERVER_TOKEN": TOKEN}
        self.process = subprocess.Popen(
            self.argv, env=env, stdout=subprocess.DEVNULL, stderr=self.log
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.argv}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server on port {self.port} did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


HEARTBEAT = 0.2
"""The default ``--redis-heartbeat`` of these processes (the failure bounds are a few of them)."""


@contextlib.contextmanager
def cluster(
    redis_url: str, base_url: str, count: int, *args: str, heartbeat: float | None = None
) -> Iterator[list[ServerProcess]]:
    """`count` server processes sharing one Redis, started in parallel, stopped at the end."""
    servers = [ServerProcess(redis_url, base_url, *args, heartbeat=heartbeat) for _ in range(count)]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()
