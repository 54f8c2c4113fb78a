"""``retry_async(failed_first=...)``: a first attempt the caller made itself is handled as
attempt 1's, so retries, waits and what is raised stay the loop's (the judge's hot path tries
once before the loop)."""

from __future__ import annotations

import pytest

from rm_service.models._base import JudgeError, JudgeHTTPError
from rm_service.models._retry import RetryPolicy, retry_async

POLICY = RetryPolicy(max_retries=3, base_delay=0.0, max_delay=0.0)


async def _no_wait(_: float) -> None:
    return None


async def test_a_retryable_first_failure_goes_on_from_attempt_2() -> None:
    seen: list[int] = []

    async def attempt(n: int) -> str:
        seen.append(n)
        if n < 3:
            raise JudgeHTTPError("busy", status=503)
        return "ok"

    first = JudgeHTTPError("busy", status=503)
    got = await retry_async(
        attempt, POLICY, deadline=float("inf"), sleep=_no_wait, failed_first=first
    )
    assert (got, seen) == ("ok", [2, 3])
    assert first.attempts == 1


async def test_a_final_first_failure_is_raised_as_it_was_and_nothing_is_tried() -> None:
    async def attempt(n: int) -> str:
        raise AssertionError("not to be called")

    first = JudgeError("refused")  # not retryable
    with pytest.raises(JudgeError) as caught:
        await retry_async(attempt, POLICY, deadline=float("inf"), failed_first=first)
    assert caught.value is first and first.attempts == 1
