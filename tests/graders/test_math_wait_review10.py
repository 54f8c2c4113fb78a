"""Regression (dd1f0c4, MathGrader: completions of a group wait for the gold's first check in
flight), found by its review.

A completion that writes the gold exactly (or whose final part is known to hold no answer)
waited for the first check in flight on its gold (``_await_gold``) instead of going to a free
worker. When that first check was slow (a response that takes sympy the whole ``timeout``), the
exact match waited the whole timeout too, although the gold itself reads in milliseconds and a
worker is free. Before dd1f0c4 it was answered by the free worker in well under a second.
Under a per-call deadline (GradingRunner ``call_timeout``, ``asyncio.wait_for``) the 1.0 became
an unscored timeout.

Now a completion waits for that first check ``_GOLD_WAIT_S`` at most, then goes to a worker.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from graders import MathGrader
from graders._math_pool import shutdown_math_pool

logging.getLogger("math_verify").setLevel(logging.ERROR)

TIMEOUT = 2.0


@pytest.fixture(autouse=True)
def _fresh_pool():
    shutdown_math_pool()
    yield
    shutdown_math_pool()


async def _group_on_a_gold_sympy_is_slow_on() -> list[tuple[float, object]]:
    # The gold parses at once and the exact match takes the fast path; only comparing the
    # wrong answer \boxed{7} with 9^(9^9) is slow (it runs the whole timeout).
    grader = MathGrader(timeout=TIMEOUT, workers=2)
    await grader.aload()
    gold = "9^{9^{9}}"
    start = time.monotonic()

    async def timed(response: str, delay: float) -> tuple[float, object]:
        await asyncio.sleep(delay)
        try:
            result = await grader.aevaluate(response=response, reference_response=gold)
        except Exception as exc:  # the slow one: unscored (timeout)
            result = exc
        return time.monotonic() - start, result

    return await asyncio.gather(
        timed("\\boxed{7}", 0.0), timed("The answer is $\\boxed{9^{9^{9}}}$.", 0.05)
    )


def test_exact_match_on_a_gold_sympy_is_slow_on_is_not_held_by_a_wrong_answer() -> None:
    (_, _), (elapsed, exact) = asyncio.run(_group_on_a_gold_sympy_is_slow_on())
    assert getattr(exact, "score", None) == 1.0
    assert elapsed < TIMEOUT / 2, f"the exact match took {elapsed:.2f}s"
