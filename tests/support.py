"""Graders used by tests, importable by string (``support:slow_len``) from a subprocess too."""

from __future__ import annotations

import asyncio
import os


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
