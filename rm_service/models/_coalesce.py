"""``Coalescer``: one computation per key, shared by every caller that asks while it runs, and
remembered once it succeeded.

Why it exists: a GRPO step grades a group of completions per prompt, and a group repeats itself.
Sixteen completions with different reasoning often reach two or three distinct final answers,
and checking an answer against a gold is a pure function of the two. A grader whose check is
costly (a math-verify parse in a worker process) keys its checks by what decides the verdict, and
callers with an equal key share one check instead of queueing sixteen.

Design points:

* **Per event loop, shared across loops.** The running computation is a task, and a task belongs
  to one loop, so the in-flight map is kept per running loop (a weak map, under a lock). The
  memory of finished results is shared by all loops and threads.
* **Only successes are remembered.** A computation that raises (a timeout, a worker that died)
  hands its exception to the callers that shared it and leaves nothing behind: the next caller
  computes again.
* **One cancellation is nobody's.** Each caller awaits the shared task through
  ``asyncio.shield``; a caller that is cancelled (a record's deadline) leaves the task running for
  the others, and a result that finishes with nobody waiting is still remembered.
* **Bounded.** At most ``max_entries`` results are kept, the least recently used going first;
  the caller decides which keys are worth keeping (short ones, typically).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Coalescer(Generic[K, V]):
    """Runs ``compute()`` once per key among concurrent callers, and remembers its successes.

    Args:
        max_entries: how many finished results to keep (``0``: coalesce only, remember none).

    Safe to share between tasks, threads and event loops.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries!r}")
        self.max_entries = max_entries
        self._done: OrderedDict[K, V] = OrderedDict()
        self._running: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[K, asyncio.Task[V]]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.computed = 0
        """How many computations ran (each shared by one or more callers)."""
        self.shared = 0
        """How many calls were answered by another caller's computation, running or remembered."""

    def __repr__(self) -> str:
        return (
            f"Coalescer(max_entries={self.max_entries}, kept={len(self._done)}, "
            f"computed={self.computed}, shared={self.shared})"
        )

    def __getstate__(self) -> dict[str, int]:
        # A copy (a grader shipped to a Ray worker or a process) starts empty: the locks, the
        # tasks and the results belong to this process.
        return {"max_entries": self.max_entries}

    def __setstate__(self, state: dict[str, int]) -> None:
        self.__init__(state["max_entries"])  # type: ignore[misc]

    def get(self, key: K) -> tuple[bool, V | None]:
        """``(True, value)`` for a remembered result, ``(False, None)`` otherwise."""
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                self.shared += 1
                return True, self._done[key]
        return False, None

    async def run(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        """The result for ``key``: remembered, shared with a running computation, or computed."""
        found, value = self.get(key)
        if found:
            return value  # type: ignore[return-value]
        loop = asyncio.get_running_loop()
        with self._lock:
            running = self._running.setdefault(loop, {})
            task = running.get(key)
            if task is None:
                task = loop.create_task(self._compute(key, compute))
                running[key] = task
                self.computed += 1
            else:
                self.shared += 1
        return await asyncio.shield(task)

    async def _compute(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        loop = asyncio.get_running_loop()
        try:
            value = await compute()
        finally:
            with self._lock:
                self._running.get(loop, {}).pop(key, None)
        if self.max_entries:
            with self._lock:
                self._done[key] = value
                self._done.move_to_end(key)
                while len(self._done) > self.max_entries:
                    self._done.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget every remembered result (running computations finish as they are)."""
        with self._lock:
            self._done.clear()
