"""Graders used by tests, importable by string (``support:slow_len``) from a subprocess too."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any


async def slow_len(response: str) -> float:
    """Score ``min(1, len/20)`` after a delay (``RM_TEST_DELAY`` seconds, default 0.02)."""
    await asyncio.sleep(float(os.environ.get("RM_TEST_DELAY", "0.02")))
    return min(1.0, len(response) / 20)


def has_digit(response: str) -> float:
    return float(any(c.isdigit() for c in response))


class InFlight:
    """An async grader that counts how many of its calls overlap."""

    def __init__(self, name: str = "inflight", delay: float = 0.005) -> None:
        self.name = name
        self.delay = delay
        self.now = 0
        self.peak = 0
        self.calls = 0

    async def aevaluate(self, **fields: object):
        from rm_service import GraderScore

        self.now += 1
        self.calls += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.now -= 1
        return GraderScore(name=self.name, score=0.5)


def results(**scores: float | str) -> dict:
    """Aggregator input: ``a=0.5`` is a score; ``a="timeout"`` is an error of that kind."""
    from rm_service import GraderError, GraderScore

    return {
        k: GraderError(name=k, error="boom", kind=v)  # type: ignore[arg-type]
        if isinstance(v, str)
        else GraderScore(name=k, score=v)
        for k, v in scores.items()
    }


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Run ``app`` under real uvicorn on 127.0.0.1 (a free port) in a daemon thread; yields the
    base URL once it accepts connections, and stops the server on exit."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def short_or_unscored(response: str) -> float:
    """``1 - len/20`` (floored at 0); unscored (``judge_error``) when the response says FAIL."""
    from graders import Unscored

    if "FAIL" in response:
        raise Unscored("the judge said FAIL", kind="judge_error")
    return max(0.0, 1.0 - len(response) / 20)


def embedding_model_missing() -> str | None:
    """Why the packaged MiniLM (the ``local`` extra) cannot load here, or ``None`` when it can:
    tests that need it skip with this reason."""
    from rm_service.models._embed import EmbedderUnavailable, default_model_path

    try:
        default_model_path()
    except EmbedderUnavailable as exc:
        return str(exc)
    return None
