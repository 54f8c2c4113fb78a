"""Requests-per-minute and tokens-per-minute limits for a judge endpoint.

Why not ``aiolimiter``: its ``AsyncLimiter`` is bound to the event loop of its first use (and
warns, an error under our test settings, when reused on another), refuses a single acquisition
larger than the bucket (a long TPM request), and serves waiters smallest-amount first, so a big
request can starve. A rate limit is a property of the *endpoint*, not of a loop: two threads each
running a loop against one API key must share it.

This is the generic cell rate algorithm (GCRA), i.e. a token bucket kept as one timestamp per
limit (the "theoretical arrival time"). :meth:`RateLimiter.acquire` reserves the earliest time at
which every limit allows the call, under a ``threading.Lock``, then sleeps until then. Nothing is
bound to a loop, so one limiter serves any number of loops and threads, in arrival order.

* **Burst:** each limit allows ``burst_s`` seconds' worth of budget at once (default 1 s: with
  ``rpm=600`` the first 10 calls go at once, then one per 0.1 s). Providers enforce per-minute
  limits over shorter windows, so a full minute's burst would mostly buy 429s.
* **Large costs are charged in full:** a request bigger than the burst goes when the bucket is
  full and leaves it in debt, so later calls wait longer; nothing is ever refused.
* **TPM is an estimate** made before the call (the caller's, e.g. prompt characters / 4 +
  ``max_tokens``) and corrected with :meth:`RateLimiter.settle` once the real usage is known.
* **Cancellation:** a call cancelled while waiting keeps its reservation (the slot is wasted);
  this errs on the side of staying under the limit.
"""

from __future__ import annotations

import asyncio
import threading
import time

__all__ = ["RateLimiter"]


class RateLimiter:
    """RPM and/or TPM limits, shared by every loop and thread that calls :meth:`acquire`.

    Args:
        rpm: requests per minute, or ``None`` for no request limit.
        tpm: tokens per minute, or ``None`` for no token limit.
        burst_s: how many seconds' worth of each budget may be spent at once.
    """

    def __init__(
        self, rpm: float | None = None, tpm: float | None = None, *, burst_s: float = 1.0
    ) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if burst_s < 0:
            raise ValueError(f"burst_s must be >= 0, got {burst_s}")
        self.rpm = rpm
        self.tpm = tpm
        self.burst_s = burst_s
        self._req_interval = 60.0 / rpm if rpm else 0.0  # seconds per request
        self._tok_interval = 60.0 / tpm if tpm else 0.0  # seconds per token
        # Tolerances: a bucket may run this far ahead of real time before callers wait. The
        # request bucket's is burst_s minus one interval, so burst_s * rpm / 60 calls (at least
        # one) go at once.
        self._req_tolerance = max(0.0, burst_s - self._req_interval)
        self._tok_tolerance = burst_s
        self._req_tat = 0.0  # theoretical arrival times, time.monotonic() scale
        self._tok_tat = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RateLimiter(rpm={self.rpm}, tpm={self.tpm}, burst_s={self.burst_s})"

    # Pickling keeps the limits, not the lock or the reservations (they belong to one process).
    def __getstate__(self) -> dict[str, float | None]:
        return {"rpm": self.rpm, "tpm": self.tpm, "burst_s": self.burst_s}

    def __setstate__(self, state: dict[str, float]) -> None:
        type(self).__init__(self, state["rpm"], state["tpm"], burst_s=state["burst_s"])

    def reserve(self, tokens: float = 0.0, *, max_wait: float = float("inf")) -> float | None:
        """Reserve a slot for one request costing ``tokens``; return the seconds to wait first.

        Returns ``None``, reserving nothing, when the wait would exceed ``max_wait``.
        """
        with self._lock:
            now = time.monotonic()
            start = now
            if self._req_interval:
                start = max(start, self._req_tat - self._req_tolerance)
            if self._tok_interval and tokens > 0:
                start = max(start, self._tok_tat - self._tok_tolerance)
            wait = start - now
            if wait > max_wait:
                return None
            if self._req_interval:
                self._req_tat = max(self._req_tat, start) + self._req_interval
            if self._tok_interval and tokens > 0:
                self._tok_tat = max(self._tok_tat, start) + tokens * self._tok_interval
            return wait

    def booked_until(self) -> float:
        """The ``time.monotonic()`` by which every slot reserved so far has started (or a time
        already past): a schedule taking over from this one waits until then."""
        with self._lock:
            return max(self._req_tat - self._req_interval, self._tok_tat - self._tok_tolerance)

    async def acquire(self, tokens: float = 0.0, *, max_wait: float = float("inf")) -> bool:
        """Wait until one request costing ``tokens`` fits every limit.

        Returns ``False`` at once, reserving nothing, if that would take longer than
        ``max_wait`` seconds (so a caller with a deadline can fail fast instead of sleeping
        into it); ``True`` after the wait.
        """
        wait = self.reserve(tokens, max_wait=max_wait)
        if wait is None:
            return False
        if wait > 0:
            await asyncio.sleep(wait)
        return True

    def settle(self, estimated: float, actual: float) -> None:
        """Correct a TPM charge once the real token count of a call is known."""
        if self._tok_interval and actual >= 0:
            with self._lock:
                self._tok_tat += (actual - estimated) * self._tok_interval

    async def aclose(self) -> None:
        """Release what the limiter holds on the running loop: nothing here; a shared
        (Redis) budget closes its connection. It reopens on next use, so closing a limiter that
        other models share costs them one reconnect, never a lost limit."""
