"""A loop's connection slots: a first-come, first-served counting semaphore, cheap when free.

Why not ``asyncio.Semaphore``: on Python 3.11 its ``acquire`` (and ``locked``) looks through
every waiter for one not cancelled, on every call, so each judge call paid a scan of the calls
queued behind a full pool, and a generator even when none were. Here taking a free slot is a
counter check, and a released slot goes straight to the longest waiter (no wake-up race, so
the order is the arrival order).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

__all__ = ["Slots"]


class Slots:
    """``size`` slots for one event loop. ``async with slots:`` holds one."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"slots must be >= 1, got {size}")
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> int:
        """Slots nobody holds or has been handed."""
        return self._free

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is waiting for one (never overtakes a waiter)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, waiting in arrival order. A caller cancelled while waiting takes none:
        a slot handed to it at that moment goes on to the next waiter."""
        if self.try_acquire():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()  # handed a slot as it was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):  # a release may have dropped it already
                    self._waiters.remove(fut)
            raise

    def release(self) -> None:
        """Give a slot back: to the longest waiter still waiting, or to the free count."""
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()
