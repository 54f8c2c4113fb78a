"""The math worker pool: math-verify checks run in worker processes, never on the caller's thread.

One idea: a process-wide pool that runs a module-level function in a fresh interpreter under a
hard time limit, for :class:`~graders._math.MathGrader` (and the verifiable-first checks that
reuse it). math-verify bounds its own work with ``signal.alarm``, which only works on a
process's main thread and raises a ``BaseException`` that ``except Exception`` lets through, so
the work cannot run on an event loop or a worker thread:

* **Workers** (:mod:`graders._math_worker`) run each check on their main thread under a
  ``SIGALRM`` interval timer, catch everything, and answer over a socket. Each is a fresh
  interpreter started with :mod:`subprocess` (``python -c`` + a small bootstrap), not with
  :mod:`multiprocessing`: ``spawn`` and ``forkserver`` re-import the caller's ``__main__`` in
  every child, so a user's script without an ``if __name__ == "__main__":`` guard ran once per
  worker (and failed there with the ``freeze_support()`` error), and ``fork`` is out because the
  parent has threads (TRL's event-loop thread, our feeder threads) and forking a threaded process
  can deadlock. ``subprocess`` execs at once, which is safe from threads, and the child imports
  only :mod:`graders._math_worker`, with the parent's ``sys.path``, whatever ``__main__`` is
  (a script, pytest, a uvicorn worker, a notebook).
* **Feeder threads** in the parent, one per worker, take jobs from a shared queue, send them to
  their worker and wait for each reply with an outer deadline. A worker that misses it (stuck in C
  code, where the timer cannot interrupt it) is killed and replaced; the other workers keep going,
  and the queue never hands work to a stuck process. The deadline runs from when the job reaches a
  worker, so a long queue under load is not mistaken for a hang.
* **Batches**: a feeder that comes free takes a fair share of the queued jobs (up to
  :data:`MAX_BATCH`) as one message, so under load a job no longer costs a whole round trip. The
  worker answers each job as it finishes, so each still has its own deadline, counted from the
  previous reply; on a hang only that job is a timeout, and the jobs behind it go back to the head
  of the queue. Jobs with the same ``affinity`` (a gold) stay with the worker that took the first
  of them while it keeps up, so that one worker parses each gold and its caches then hit.
* **Callers** get a ``concurrent.futures.Future`` and await it with ``asyncio.wrap_future``, which
  works from any event loop in any thread. Nothing is bound to a loop: the pool is process-wide,
  created lazily under a lock, and survives ``asyncio.run`` calls coming and going.

Jobs are pickled by reference, so a job's function must be importable by name in a worker: a
module-level function of an installed or ``sys.path`` module, never one defined in ``__main__``.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import contextlib
import functools
import itertools
import multiprocessing.spawn
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

__all__ = ["Reply", "shutdown_math_pool"]

_START_TIMEOUT = 60.0
"""Seconds a new worker may take to import math-verify and say it is ready."""

Reply = tuple[str, Any]
"""A worker's answer: ``("ok", value)``, ``("error", message)`` or ``("timeout", message)``."""


@functools.cache
def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _grace(timeout: float) -> float:
    """How long past a job's own timeout the parent waits before killing the worker.

    The worker's timer normally answers at ``timeout``; the grace covers the reply's trip and a
    timer delayed by C code that finishes soon after.
    """
    return min(2.0, max(0.25, 0.25 * timeout))


# Run by ``python -c`` in a new worker, with its end of the socket's descriptor as argv[1]. Only
# the standard library until the parent's sys.path is in place; Ctrl-C is the parent's to handle.
# A parent gone before sending the path (EOF) ends the worker quietly, as worker_main does later.
_BOOTSTRAP = """\
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
from multiprocessing.connection import Connection
conn = Connection(int(sys.argv[1]))
try:
    sys.path[:] = conn.recv()
except (EOFError, OSError):
    sys.exit(0)
from graders._math_worker import worker_main
worker_main(conn)
"""


class _Worker:
    """One worker process and the parent's end of its socket. Used by one feeder thread only.

    Building one starts the process; :meth:`wait_ready` then waits for its warm-up. The two are
    apart so that the pool can list a worker before it is ready, and its shutdown kill a worker
    still starting (one it did not know of outlived a script's exit and wrote to a closed socket).
    """

    def __init__(self) -> None:
        parent_sock, child_sock = socket.socketpair()
        with parent_sock, child_sock:
            fd = child_sock.fileno()
            # The interpreter multiprocessing would use: honours multiprocessing.set_executable().
            python = multiprocessing.spawn.get_executable()
            self.process = subprocess.Popen(
                [python, "-c", _BOOTSTRAP, str(fd)], stdin=subprocess.DEVNULL, pass_fds=(fd,)
            )
            self.conn = Connection(parent_sock.detach())
        self.ready = False

    def wait_ready(self) -> None:
        """Send the worker its ``sys.path`` and wait for its "ready"; kill it and raise if not."""
        try:
            self.conn.send(list(sys.path))
            ready = self.conn.poll(_START_TIMEOUT) and self.conn.recv()
        except (EOFError, OSError):
            ready = None
        if not (isinstance(ready, tuple) and ready[:1] == ("ready",)):
            self.kill()
            raise RuntimeError(
                f"math worker did not start (exit code {self.process.returncode}, waited up to "
                f"{_START_TIMEOUT:g}s); its own error, if any, is on stderr"
            )
        self.ready = True

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, data: bytes | memoryview) -> bool:
        """Send one message (a job, or a batch of them); ``False`` when the worker is gone."""
        try:
            self.conn.send_bytes(data)
        except OSError:
            return False
        return True

    def receive(self, timeout: float) -> Reply | None:
        """The next reply; ``None`` when the worker missed ``timeout`` or died (kill it then)."""
        try:
            if self.conn.poll(timeout):
                reply = self.conn.recv()
                if isinstance(reply, tuple) and len(reply) == 2:
                    return reply
        except (EOFError, OSError):
            pass
        return None

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.wait(5)
        with contextlib.suppress(Exception):
            self.conn.close()


class _PoolClosed(RuntimeError):
    """The pool was shut down between looking it up and submitting to it."""


class _Job:
    __slots__ = ("affinity", "args", "func", "future", "started", "timeout")

    def __init__(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        timeout: float,
        future: concurrent.futures.Future[Reply],
    ) -> None:
        self.func = func
        self.args = args
        self.timeout = timeout
        self.future = future
        self.started = False
        """Taken by a feeder once already (and put back after its worker was replaced)."""
        self.affinity: str | None = None
        """Jobs that share one go to one worker while it keeps up (see ``_MathPool._take``)."""


_HOMES_KEPT = 4096
"""Affinities whose home feeder the pool remembers (a GRPO step's golds, and more)."""

MAX_BATCH = 32
"""The most jobs one message to a worker carries. Under load jobs queue while every worker is
busy; a feeder that comes free takes a share of them as one batch (see ``_take``), so each job
no longer pays a whole round trip between the feeder thread and the worker."""


class _MathPool:
    """Worker processes fed from one queue by one thread each; see the module docstring."""

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: collections.deque[_Job] = collections.deque()
        self._threads: list[threading.Thread] = []
        self._workers: set[_Worker] = set()
        self._closed = False
        self.pid = os.getpid()
        self.replaced = 0
        """Workers killed and replaced after missing a deadline or dying (for logs and tests)."""
        self._homes: collections.OrderedDict[str, int] = collections.OrderedDict()
        """Which feeder took each recent affinity's jobs first: it takes that affinity's jobs
        from then on, and its worker has the gold parsed (see ``_take``)."""
        self.grow(size)

    @property
    def size(self) -> int:
        return len(self._threads)

    def grow(self, size: int) -> None:
        """Add feeder threads (and so workers) until there are ``size``; never shrinks."""
        with self._lock:
            while len(self._threads) < size:
                index = len(self._threads)
                t = threading.Thread(
                    target=self._feed, args=(index,), name=f"rm-service-math-{index}", daemon=True
                )
                self._threads.append(t)
                t.start()

    def submit(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        timeout: float,
        affinity: str | None = None,
    ) -> concurrent.futures.Future[Reply]:
        """Queue ``func(*args)`` for a worker; the future's result is a :data:`Reply`.

        Jobs with the same ``affinity`` (a gold's text) go to the same worker while it keeps up,
        so that worker's caches of that gold hit; an idle worker takes anyone's jobs.
        """
        future: concurrent.futures.Future[Reply] = concurrent.futures.Future()
        job = _Job(func, args, timeout, future)
        job.affinity = affinity
        with self._lock:
            if self._closed:
                raise _PoolClosed("the math worker pool is shut down")
            self._queue.append(job)
            self._wake.notify()
        return future

    def shutdown(self) -> None:
        """Stop the feeders and kill the workers; queued jobs get an error reply."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._workers)
            queued = list(self._queue)
            self._queue.clear()
            self._wake.notify_all()  # every feeder wakes, sees the pool closed and stops
        for w in workers:
            w.kill()
        for job in queued:
            if job.started or job.future.set_running_or_notify_cancel():
                job.future.set_result(("error", "the math worker pool was shut down"))

    def _start_worker(self) -> _Worker:
        # Listed before its warm-up, so that a shutdown meanwhile kills it too.
        worker = _Worker()
        with self._lock:
            self._workers.add(worker)
            closed = self._closed
        if not closed:
            try:
                worker.wait_ready()
            except BaseException:
                self._retire(worker)
                raise
            with self._lock:
                closed = self._closed
        if closed:
            self._retire(worker)
            raise RuntimeError("the math worker pool is shut down")
        return worker

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._workers.discard(worker)

    def _feed(self, index: int) -> None:
        """Feeder loop: keep one warm worker, hand it a batch of jobs, police each deadline."""
        worker: _Worker | None = None
        start_error = ""
        retry_at = 0.0  # a worker that fails to start is retried at most every few seconds
        while True:
            if worker is None and not self._closed and time.monotonic() >= retry_at:
                worker, start_error = self._try_start()
                if worker is None:
                    retry_at = time.monotonic() + 2.0
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    break
                batch = self._take(index)
            if not batch:
                continue
            if worker is not None and not worker.alive():
                # Died while idle (OOM killer, a stray signal): not this job's fault, start afresh.
                self._retire(worker)
                worker, start_error = self._try_start()
            if worker is None:
                for job in batch:
                    job.future.set_result(("error", start_error or "math worker unavailable"))
                continue
            if not self._run_batch(worker, batch):
                worker = None
        if worker is not None:
            self._retire(worker)

    def _take(self, index: int) -> list[_Job]:
        """A fair share of the queued jobs for feeder ``index``, its own; under the lock.

        A share, not all: with every worker busy, the first feeder to come free would otherwise
        take the whole queue and leave the others idle. Its own jobs are those of the
        affinities it took first (it becomes the home of a new one as it takes it), and jobs
        with none, taken an affinity at a time, that affinity's queued jobs together: a gold is
        then parsed by one worker, where interleaved jobs of several golds, or a batch filled
        up with another feeder's, had both workers parse it. Only a feeder with none of its own
        takes the oldest of anyone's, so that no worker idles while jobs wait (the jobs of one
        gold then run on two workers side by side, as one worker alone would take twice as long).
        """
        share = min(MAX_BATCH, max(1, -(-len(self._queue) // max(1, self.size))))
        groups: dict[str | None, list[_Job]] = {}
        for job in self._queue:
            groups.setdefault(job.affinity, []).append(job)
        homes = self._homes
        mine: list[_Job] = []
        for affinity, jobs in groups.items():
            if len(mine) >= share:
                break
            if affinity is not None:
                if homes.setdefault(affinity, index) != index:
                    continue
                homes.move_to_end(affinity)
                if len(homes) > _HOMES_KEPT:
                    homes.popitem(last=False)
            mine += jobs[: share - len(mine)]
        if not mine:
            mine = list(itertools.islice(self._queue, share))
        chosen = {id(j) for j in mine}
        self._queue = collections.deque(j for j in self._queue if id(j) not in chosen)
        batch: list[_Job] = []
        for job in mine:
            if job.started or job.future.set_running_or_notify_cancel():
                job.started = True
                batch.append(job)  # else the caller gave up while the job was queued
        return batch

    def _run_batch(self, worker: _Worker, batch: list[_Job]) -> bool:
        """Send ``batch`` as one message and answer each job as its reply comes.

        Each job gets its own deadline (its timeout and a grace), counted from the previous
        reply, since the worker runs the jobs one after another. A job that misses it is a
        timeout (a worker that died is an error); the worker is then killed (``False``: the
        feeder starts another), and the jobs after it in the batch, not yet run, go back first
        in the queue.
        """
        items: list[tuple[_Job, memoryview]] = []
        for job in batch:
            try:
                items.append((job, ForkingPickler.dumps((job.func, job.args, job.timeout))))
            except Exception as exc:  # a lambda, a local function: the worker is not involved
                why = f"job could not be sent to a math worker: {type(exc).__name__}: {exc}"
                job.future.set_result(("error", why))
        if not items:
            return True
        # One job goes as before; a batch is a list of separately pickled jobs, so that one the
        # worker cannot unpickle fails alone.
        data = (
            items[0][1] if len(items) == 1 else ForkingPickler.dumps([bytes(d) for _, d in items])
        )
        sent = worker.send(data)
        for n, (job, _) in enumerate(items):
            reply = worker.receive(job.timeout + _grace(job.timeout)) if sent else None
            if reply is None:
                reply = (
                    ("timeout", f"no result within {job.timeout:g}s; worker killed and replaced")
                    if sent and worker.alive()
                    else ("error", "math worker died; replaced")
                )
                self._retire(worker)
                with self._lock:
                    self.replaced += 1
                job.future.set_result(reply)
                self._put_back([later for later, _ in items[n + 1 :]])
                return False
            job.future.set_result(reply)
        return True

    def _put_back(self, jobs: list[_Job]) -> None:
        """Queue again, first in line, jobs a replaced worker never ran (an error once closed)."""
        with self._lock:
            if not self._closed:
                self._queue.extendleft(reversed(jobs))
                self._wake.notify_all()
                return
        for job in jobs:
            job.future.set_result(("error", "the math worker pool was shut down"))

    def _try_start(self) -> tuple[_Worker | None, str]:
        try:
            return self._start_worker(), ""
        except Exception as exc:
            return None, f"math worker could not start: {exc}"


# --- the process-wide pool -----------------------------------------------------------------------

_pool: _MathPool | None = None
_pool_lock = threading.Lock()


def _get_pool(workers: int | None) -> _MathPool:
    """The process-wide pool, created on first use and grown to the largest size asked for."""
    global _pool
    size = workers or _default_workers()
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            _pool = _MathPool(size)
        elif _pool.size < size:
            _pool.grow(size)
        return _pool


def shutdown_math_pool() -> None:
    """Kill the math worker processes now; the next math check starts a fresh pool.

    Called at interpreter exit. Call it yourself to free the workers' memory early.
    """
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None and pool.pid == os.getpid():
        pool.shutdown()


def _forget_pool_after_fork() -> None:
    # A forked child inherits the holder but not the feeder threads: start over there.
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


atexit.register(shutdown_math_pool)
os.register_at_fork(after_in_child=_forget_pool_after_fork)


async def _run_in_pool(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    *,
    limit: float,
    workers: int | None = None,
    queue_limit: float | None = None,
    affinity: str | None = None,
) -> Reply:
    """Run ``func(*args)`` in a math worker; ``limit`` (seconds) bounds the run once it starts.

    ``func`` must be importable by name (a module-level function). ``queue_limit`` bounds the wait
    for a free worker on top of that; ``None`` waits as long as it takes. Safe from any event
    loop in any thread: the result arrives through ``asyncio.wrap_future``. Jobs with the same
    ``affinity`` (a gold's text) go to the same worker when it is free (see ``_MathPool.submit``).
    """
    extra = {} if affinity is None else {"affinity": affinity}
    try:
        future = _get_pool(workers).submit(func, args, limit, **extra)
    except _PoolClosed:  # shut down under our feet: the next lookup builds a fresh pool
        future = _get_pool(workers).submit(func, args, limit, **extra)
    wrapped = asyncio.wrap_future(future)
    if queue_limit is None:
        return await wrapped
    try:
        return await asyncio.wait_for(wrapped, limit + _grace(limit) + queue_limit)
    except TimeoutError:
        return ("timeout", f"no math worker free within {queue_limit:g}s")
