"""Admission control: a global bound on the *records* in flight across all HTTP requests.

Records, not requests, are the unit that maps to grader work. A request that does not fit waits
in a bounded FIFO queue; when the queue is full too it is refused at once (429 with
``Retry-After``) instead of queueing without limit, so an overloaded service answers fast and the
trainer backs off. This is not middleware: the app calls it around each request's grading, once
it knows how many records the request holds.

**Draining.** When the server begins a graceful shutdown it calls :meth:`Admission.drain` on
its app's admission (``rm-service serve``'s protocol does, see ``rm_service._http_protocol``):
queued requests leave
the queue and new ones are refused (:class:`Overloaded` with ``shutdown`` set), and
``on_drain`` tells the app to cut in-flight grading short. uvicorn waits for every request in
flight before it exits, for as long as they take: a request graded for its whole deadline
(300 s) held the process that long, and under ``docker stop`` (10 s) it was killed with the
connection reset, no answer at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

__all__ = ["Admission", "Overloaded"]


class Overloaded(Exception):
    """Admission refused: too many records in flight and queued. ``retry_after`` in seconds;
    ``queue_full``: refused at once for a full queue, rather than after waiting in it;
    ``shutdown``: refused, or sent out of the queue, because the server is shutting down
    (:meth:`Admission.drain`)."""

    def __init__(
        self, message: str, retry_after: int, *, queue_full: bool = True, shutdown: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.queue_full = queue_full
        self.shutdown = shutdown


class Admission:
    """A global bound on records in flight, with a bounded FIFO queue in front of it.

    ``acquire(n)`` admits ``n`` records at once (a request is all or nothing, so a batch never
    holds half its slots while waiting for the rest, which could deadlock two big batches).
    The queue bound (``max_queue``) counts only records waiting: a request that fits in the free
    slots is admitted whatever ``max_queue`` is, and one bigger than the whole queue may wait
    alone (see :meth:`_queue_refuses`).
    Waiters are served in arrival order; a small batch does not overtake a big one waiting at the
    head, so big batches cannot starve.

    State is made lazily on the running loop, so one instance serves one event loop (one uvicorn
    worker); every worker process has its own.
    """

    def __init__(
        self,
        max_in_flight: int,
        max_queue: int,
        retry_after: int = 1,
        on_change: Callable[[int, int], None] | None = None,
        on_drain: Callable[[], None] | None = None,
    ) -> None:
        if max_in_flight < 1 or max_queue < 0:
            raise ValueError("max_in_flight must be >= 1 and max_queue >= 0")
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.retry_after = retry_after
        self.in_flight = 0
        self.queued = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._on_change = on_change
        self.draining = False
        """Set by :meth:`drain`: in-flight work should finish soon or be cut short."""
        self._on_drain = on_drain

    def drain(self) -> None:
        """Admit nothing more: every queued request raises :class:`Overloaded` (``shutdown``),
        and so does every later :meth:`acquire`; :attr:`draining` is set and ``on_drain``
        called."""
        if self.draining:
            return
        self.draining = True
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(self._shutting_down())
        if self._on_drain is not None:
            self._on_drain()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.in_flight, self.queued)

    def _shutting_down(self) -> Overloaded:
        return Overloaded("the server is shutting down", self.retry_after, shutdown=True)

    async def acquire(self, n: int, max_wait: float | None = None) -> None:
        """Admit ``n`` records, waiting in the queue up to ``max_wait`` seconds.

        Raises:
            Overloaded: the queue is full, or the wait timed out.
                Or the server is shutting down (:meth:`drain`; ``shutdown`` is set).
        """
        if self.draining:
            raise self._shutting_down()
        if n > self.max_in_flight:
            raise ValueError(f"{n} records can never fit max_in_flight={self.max_in_flight}")
        if not self._waiters and self.in_flight + n <= self.max_in_flight:
            self.in_flight += n
            self._changed()
            return
        if self._queue_refuses(n):
            raise Overloaded(
                f"overloaded: {self.in_flight} records in flight (max_in_flight="
                f"{self.max_in_flight}) and {self.queued} queued (max_queue={self.max_queue}); "
                f"this request has {n}; retry later",
                self.retry_after,
            )
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, fut)
        self._waiters.append(entry)
        self.queued += n
        self._changed()
        try:
            async with asyncio.timeout(max_wait):
                await fut
        except BaseException as exc:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                # Admitted just as we gave up: hand the slots back.
                self.release(n)
            else:
                with contextlib.suppress(ValueError):  # _wake may have dropped it already
                    self._waiters.remove(entry)
                self.queued -= n
                self._changed()
                self._wake()
            if isinstance(exc, TimeoutError):
                raise Overloaded(
                    f"overloaded: waited {max_wait} s in the admission queue without a slot; "
                    "retry later",
                    self.retry_after,
                    queue_full=False,
                ) from None
            raise

    def _queue_refuses(self, n: int) -> bool:
        """Whether ``n`` records that must wait find no room in the queue.

        ``max_queue`` bounds the records waiting, never the size of one request: a request
        with more records than ``max_queue`` (at most ``max_in_flight``, the weight of any
        request) waits when nothing else does, as one bigger than ``max_in_flight`` runs
        alone. Counted strictly, such a request, which the service was configured to accept
        (``max_records``, or a ``/get_reward`` batch), was refused whenever a single record was
        in flight, with the queue empty and slots free, and so, under steady load, every time
        its client tried again. ``max_queue=0`` still means that nothing waits.
        """
        if self.max_queue == 0:
            return True
        return self.queued > 0 and self.queued + n > self.max_queue

    def release(self, n: int) -> None:
        """Give back ``n`` admitted records' slots and admit waiters that now fit."""
        self.in_flight -= n
        self._changed()
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            n, fut = self._waiters[0]
            if fut.done():  # cancelled; its waiter fixes the counts when it wakes
                self._waiters.popleft()
                continue
            if self.in_flight + n > self.max_in_flight:
                break
            self._waiters.popleft()
            self.queued -= n
            self.in_flight += n
            fut.set_result(None)
        self._changed()
