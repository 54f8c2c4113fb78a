"""``MicroBatcher``: combine concurrent single-item calls into batched calls.

Why it exists: a model forward pass or an HTTP request costs nearly the same for one text as for
thirty, while the runner grades records one coroutine each. The embedder, the local reward model
and the remote reward-model client all need the same thing: let every record ``await`` its own
item, and run the items that are waiting together, in as few calls as the batch limit allows.

Design points:

* **Natural batching first.** With ``max_wait_s == 0`` (the default) a batch starts at once
  whenever fewer than ``max_inflight`` batches are running; the items that arrive while one runs
  form the next. Under load the batches grow by themselves and an idle caller pays no wait. A
  positive ``max_wait_s`` holds the first item of a batch up to that long for company, for
  backends where a second call in flight costs as much as a bigger batch.
* **Per event loop, shared across loops.** Futures and tasks belong to one loop, so the queue is
  kept per running loop (a weak map, guarded by a lock). One batcher, held by a grader that is
  shared between threads and repeated ``asyncio.run`` calls, batches within each loop and never
  hands a future to the wrong one.
* **One failure is everyone's, one cancellation is nobody's.** ``run`` returns one result per
  item, in order; whatever it raises (or a wrong count) is raised in every submitter of that
  batch. An exception *returned* for an item is raised in that item's submitter alone (a
  backend that can tell which input failed keeps the others' results). A submitter that is
  cancelled leaves the batch running for the others, and an item whose submitter is gone
  before its batch starts is dropped rather than computed.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["MicroBatcher"]

T = TypeVar("T")
R = TypeVar("R")


class _Waiting:
    """One queued item: the item, its future and when it was queued (loop time)."""

    __slots__ = ("at", "future", "item")

    def __init__(self, item: Any, future: asyncio.Future[Any], at: float) -> None:
        self.item = item
        self.future = future
        self.at = at


class _LoopState:
    """The queue and the running batches of one event loop."""

    __slots__ = ("inflight", "queue", "starting", "tasks", "timer")

    def __init__(self) -> None:
        self.queue: deque[_Waiting] = deque()
        self.inflight = 0  # batches scheduled or running
        self.starting = False  # a batch is scheduled and has not taken its items yet
        self.timer: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task[None]] = set()  # strong refs: a bare task may be collected


class MicroBatcher(Generic[T, R]):
    """Runs ``run`` on batches of the items that concurrent callers :meth:`submit`.

    Args:
        run: takes a list of items and returns one result per item, in the same order.
        max_batch: the most items in one call of ``run``.
        max_wait_s: how long the first item of a batch may wait for more before the batch starts
            anyway (``0``: start as soon as a slot is free).
        max_inflight: how many calls of ``run`` may run at once on one event loop.

    Safe to share between tasks, threads and event loops.
    """

    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
        *,
        max_batch: int = 32,
        max_wait_s: float = 0.0,
        max_inflight: int = 1,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if not max_wait_s >= 0.0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be at least 1, got {max_inflight}")
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = float(max_wait_s)
        self.max_inflight = max_inflight
        self.batches = 0  # calls of ``run`` so far, all loops together
        self._lock = threading.Lock()
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return (
            f"MicroBatcher(max_batch={self.max_batch}, max_wait_s={self.max_wait_s}, "
            f"max_inflight={self.max_inflight})"
        )

    async def submit(self, item: T) -> R:
        """The result for one item, computed in a batch with whatever else is waiting."""
        return (await self.submit_many((item,)))[0]

    async def submit_many(self, items: Sequence[T]) -> list[R]:
        """The results for several items, in order; they may land in different batches."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._states.get(loop)
            if state is None:
                state = self._states[loop] = _LoopState()
        now = loop.time()
        futures = [loop.create_future() for _ in items]
        state.queue.extend(_Waiting(i, f, now) for i, f in zip(items, futures, strict=True))
        self._pump(loop, state)
        if len(futures) == 1:
            return [await futures[0]]
        return list(await asyncio.gather(*futures))

    def _pump(self, loop: asyncio.AbstractEventLoop, state: _LoopState) -> None:
        """Schedule the next batch if one may start now; otherwise arm the timer.

        The batch takes its items when its task first runs, not here, so every item submitted
        in the same turn of the loop lands in the same batch.
        """
        queue = state.queue
        while queue and queue[0].future.done():  # its submitter was cancelled: drop it
            queue.popleft()
        if not queue or state.starting or state.inflight >= self.max_inflight:
            return
        if len(queue) < self.max_batch and self.max_wait_s > 0.0:
            due = queue[0].at + self.max_wait_s
            if loop.time() < due:
                if state.timer is None:
                    state.timer = loop.call_at(due, self._on_timer, loop, state)
                return
        state.starting = True
        state.inflight += 1
        task = loop.create_task(self._run_batch(loop, state))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)

    def _on_timer(self, loop: asyncio.AbstractEventLoop, state: _LoopState) -> None:
        state.timer = None
        self._pump(loop, state)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, state: _LoopState) -> None:
        state.starting = False
        batch: list[_Waiting] = []
        queue = state.queue
        while queue and len(batch) < self.max_batch:
            waiting = queue.popleft()
            if not waiting.future.done():
                batch.append(waiting)
        try:
            self._pump(loop, state)  # more than a batch waiting: the next may start too
            if not batch:
                return
            with self._lock:
                self.batches += 1
            results = await self._run([w.item for w in batch])
            if len(results) != len(batch):
                raise RuntimeError(
                    f"a batched call returned {len(results)} results for {len(batch)} items"
                )
        except Exception as exc:  # every submitter of the batch sees the failure
            for w in batch:
                if not w.future.done():
                    w.future.set_exception(exc)
        else:
            for w, result in zip(batch, results, strict=True):
                if w.future.done():
                    continue
                if isinstance(result, Exception):
                    w.future.set_exception(result)
                else:
                    w.future.set_result(result)
        finally:
            for w in batch:  # cancelled, or a BaseException: nobody waits forever
                if not w.future.done():
                    w.future.cancel()
            state.inflight -= 1
            if not loop.is_closed():
                self._pump(loop, state)
