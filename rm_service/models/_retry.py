"""When to retry a failed judge call, how long to wait, and when to give up.

Why our own loop and not the SDK's retries or tenacity: the openai SDK retries only inside one
request and knows nothing of our overall deadline; tenacity's ``AsyncRetrying`` adds its own
cost to every *successful* call, on a hot path of thousands of calls per second. A plain loop
costs nothing until something fails.

The policy:

* **Retried:** :class:`JudgeRateLimited` (429), :class:`JudgeTimeout` (one attempt timed out),
  :class:`JudgeConnectionError`, and :class:`JudgeHTTPError` with status 408, 409 or 5xx (the
  statuses the openai SDK itself treats as transient).
* **Not retried:** every other status (400, 401, 403, 404, 422, ...): asking again gives the same
  answer.
* **A malformed body** (:class:`JudgeHTTPError` with ``status=None``: HTTP 200 but not a chat
  completion) is retried ``malformed_retries`` times (default once). A flaky proxy or a model
  server restarting mid-response is worth one more try; a server that always answers garbage is
  not worth five.
* **Waits:** exponential backoff with *full jitter* (a uniform draw in ``[0, min(max_delay,
  base_delay * 2**(retry-1))]``), which spreads a herd of clients that failed together. A 429's
  ``Retry-After`` (seconds, fractional allowed, or an HTTP-date; ``retry-after-ms`` too) replaces
  the backoff, capped at ``max_retry_after``, plus up to 10 % jitter for the same reason.
* **Deadline:** when the next wait would end past the call's deadline, the last error is raised
  at once (it says more than "deadline passed", and sleeping into a certain timeout helps nobody).
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from rm_service.models._base import (
    JudgeConnectionError,
    JudgeError,
    JudgeHTTPError,
    JudgeRateLimited,
    JudgeTimeout,
)

__all__ = ["RetryPolicy", "parse_retry_after", "retry_after_from_headers", "retry_async"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

_TRANSIENT_STATUS = frozenset({408, 409})


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds (fractions allowed) or an
    HTTP-date. ``None`` when absent or unreadable; never negative."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # asctime form: HTTP-dates are UTC, not the local time
            when = when.replace(tzinfo=datetime.UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def retry_after_from_headers(headers: Mapping[str, str]) -> float | None:
    """The wait a response asks for: ``retry-after-ms`` (OpenAI's) first, then ``Retry-After``.

    ``headers`` should be case-insensitive (httpx/aiohttp headers are)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry and how long to wait between attempts.

    Attributes:
        max_retries: retries after the first attempt (0 = try once).
        base_delay: the backoff scale, seconds (first retry waits up to this long).
        max_delay: the cap of one backoff wait, seconds.
        max_retry_after: the cap of an honoured ``Retry-After``, seconds.
        malformed_retries: retries allowed for malformed bodies, within ``max_retries``.
    """

    max_retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0
    max_retry_after: float = 60.0
    malformed_retries: int = 1

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.malformed_retries < 0:
            raise ValueError("max_retries and malformed_retries must be >= 0")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must be >= 0")

    def retryable(self, exc: JudgeError, malformed_seen: int) -> bool:
        """Whether ``exc`` is worth another attempt (``malformed_seen`` counts garbage bodies)."""
        if isinstance(exc, JudgeRateLimited | JudgeTimeout | JudgeConnectionError):
            return True
        if isinstance(exc, JudgeHTTPError):
            if exc.status is None:
                return malformed_seen <= self.malformed_retries
            return exc.status >= 500 or exc.status in _TRANSIENT_STATUS
        return False

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        if retry_after is not None:
            wait = min(retry_after, self.max_retry_after)
            return wait * (1.0 + 0.1 * random.random())
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return random.uniform(0.0, ceiling)


async def retry_async(
    attempt: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    *,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    failed_first: JudgeError | None = None,
) -> T:
    """Run ``attempt(n)`` (n = 1, 2, ...) until it returns, retrying per ``policy``.

    Args:
        attempt: one try; raises a :class:`JudgeError` on failure. Other exceptions (including
            cancellation) pass straight through: they are bugs or the caller's decision.
        policy: what to retry and how long to wait.
        deadline: the absolute ``clock()`` time after which no new attempt starts.
        clock: the time source ``deadline`` is measured in.
        sleep: how to wait (injectable for tests).
        failed_first: the error of a first attempt the caller already made itself (a hot path
            tries once before paying for this loop); it is handled as attempt 1's, and
            ``attempt`` is called from 2 on.

    Raises:
        JudgeError: the last attempt's error, with ``attempts`` set to the number of tries.
    """
    malformed = 0
    n = 0
    while True:
        n += 1
        try:
            if failed_first is not None:
                first, failed_first = failed_first, None
                raise first
            return await attempt(n)
        except JudgeError as exc:
            exc.attempts = n
            if isinstance(exc, JudgeHTTPError) and exc.status is None:
                malformed += 1
            if n > policy.max_retries or not policy.retryable(exc, malformed):
                raise
            retry_after = exc.retry_after if isinstance(exc, JudgeRateLimited) else None
            wait = policy.delay(n, retry_after)
            if clock() + wait >= deadline:
                raise
            logger.debug("attempt %d failed (%s); retrying in %.2f s", n, exc, wait)
            await sleep(wait)
