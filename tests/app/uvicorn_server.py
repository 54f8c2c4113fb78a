"""A real ``rm-service serve`` (``python -m rm_service.cli serve``) on 127.0.0.1 for the tests
that need uvicorn itself (socket timeouts, the access log, what the server log prints), with its
log captured to a file."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["REWARD_YAML", "Server", "free_port", "running_server"]

ROOT = Path(__file__).resolve().parents[2]

REWARD_YAML = """\
graders:
  format: {type: format, mode: think_answer}
  num: {type: number, mapper: {reference_response: label}}
aggregators:
  - {type: weighted_sum, name: reward, weights: {num: 0.8, format: 0.2}}
"""
"""Rule graders only: the server starts in about a second and grades in microseconds."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running server: where it listens and where its log goes."""

    port: int
    log_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connect(self, timeout: float = 10.0) -> socket.socket:
        """A raw TCP connection to the server."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return sock


@contextlib.contextmanager
def running_server(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, config: str = REWARD_YAML
) -> Iterator[Server]:
    """Start the server with ``args`` after ``--config``; wait until ``/healthz`` answers; stop
    it with SIGINT on exit."""
    cfg = tmp_path / "reward.yaml"
    cfg.write_text(config)
    port = free_port()
    log_path = tmp_path / "server.log"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    full_env.pop("RM_SERVICE_API_KEY", None)
    full_env.update(env or {})
    with log_path.open("wb") as log:
        cmd = [sys.executable, "-m", "rm_service.cli", "serve", "-c", str(cfg), "--port", str(port)]
        proc = subprocess.Popen(
            [*cmd, *args],
            cwd=tmp_path,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(port, log_path, proc)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, server.log()
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up in 60 s:\n" + server.log()
            time.sleep(0.1)
        yield server
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
