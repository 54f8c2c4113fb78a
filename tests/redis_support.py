"""A real ``redis-server`` on a free loopback port, for the shared cache and budget tests.

Why a real server: what these tests check (timeouts against a stopped process, reconnection after
a restart, the atomicity of a Lua script across clients) is exactly what a Python fake would get
wrong. The server keeps nothing on disk (``--save ''``, no AOF) and is killed at teardown.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from rm_service.models import ChatResult, JudgeCache
from rm_service.models._redis import RedisStore
from tests.app.uvicorn_server import free_port

__all__ = ["REDIS_SERVER", "RedisServer", "cached_call", "redis_server"]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _ping(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process; :meth:`stop`/:meth:`start` restart it on the same port,
    :meth:`pause`/:meth:`resume` freeze it (SIGSTOP: connections are accepted by the kernel but
    nothing answers, the nastiest kind of slow)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = (self.workdir / f"redis-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 10
        while not _ping(self.port):
            assert self.proc.poll() is None, f"redis-server exited {self.proc.returncode}"
            assert time.monotonic() < deadline, "redis-server did not answer PING in 10 s"
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill it (SIGKILL: a crash, not a clean shutdown) and wait."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def command(self, *args: str) -> bytes:
        """Send one inline command with a plain socket; the raw reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall((" ".join(args) + "\r\n").encode())
            return sock.recv(65536)

    def flush(self) -> None:
        assert self.command("FLUSHALL").startswith(b"+OK")

    def dbsize(self) -> int:
        reply = self.command("DBSIZE")
        assert reply.startswith(b":"), reply
        return int(reply[1:].strip())


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A ``redis-server`` for the module, flushed before each use by the tests that need it."""
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def cached_call(
    url: str,
    key: str,
    call: Callable[[], Awaitable[ChatResult]],
    keep: Callable[[ChatResult], bool] | None = None,
) -> tuple[ChatResult, JudgeCache]:
    """One ``get_or_call`` through a fresh cache on the Redis at ``url``, as a replica makes it,
    the cache closed after: the answer, and the cache for its stats."""
    cache = JudgeCache(store=RedisStore(url))
    try:
        return await cache.get_or_call(key, call, keep=keep), cache
    finally:
        await cache.aclose()
