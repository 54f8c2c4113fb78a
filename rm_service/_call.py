"""One grader call under its deadlines, and its concurrency slot held while its work runs.

Why its own module: the call is the runner's unit of work (deadlines, the observer, a result or
an honest error), and the slot must outlive the call when a thread the call gave up on still
runs (:mod:`graders._threads`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rm_service._jobs import CallObserver
from rm_service._mapper import GraderConfig
from rm_service._result import RESULT_TYPES, GraderError, GraderResult, GraderScore, renamed

__all__ = ["call", "named", "release_after"]


async def call(
    cfg: GraderConfig,
    name: str,
    fields: dict[str, Any],
    call_timeout: float | None,
    deadline_at: float | None,
    observer: CallObserver | None,
) -> GraderResult:
    """One grader call under its deadlines; anything but a result becomes an ``internal`` error.

    ``call_timeout`` bounds this call (seconds); ``deadline_at`` is the batch's absolute
    deadline on the loop's clock. Whichever comes first ends the call as ``kind="timeout"``.
    ``observer`` is told when the call starts and how long it took.
    """
    if deadline_at is None and call_timeout is None:
        when = None
    else:
        now = asyncio.get_running_loop().time()
        own = now + call_timeout if call_timeout is not None else None
        when = min(t for t in (own, deadline_at) if t is not None)
        if when <= now:
            return GraderError(
                name=name, error="batch deadline passed before the call", kind="timeout"
            )
    if observer is not None:
        observer.started(name)
        began = time.perf_counter()
    try:
        if when is None:
            result = await cfg.grader.aevaluate(**fields)
        else:
            async with asyncio.timeout_at(when):
                result = await cfg.grader.aevaluate(**fields)
    except TimeoutError:
        which = (
            f"grader call exceeded {call_timeout} s"
            if deadline_at is None
            or when is None
            or (call_timeout is not None and when < deadline_at)
            else "batch deadline passed during the call"
        )
        return GraderError(name=name, error=which, kind="timeout")
    except Exception as exc:
        return GraderError(name=name, error=f"grader raised {type(exc).__name__}: {exc}")
    finally:
        if observer is not None:
            observer.finished(name, time.perf_counter() - began, True)
    return named(name, result)


def named(name: str, result: Any) -> GraderResult:
    """``result`` under the name the runner knows the grader by; anything that is not a result
    is the grader's bug, unscored and named."""
    if type(result) is GraderScore:  # the common case, taken with no further call
        s = result.score
        if type(s) is float and 0.0 <= s <= 1.0 and result.name == name:
            return result
    if isinstance(result, RESULT_TYPES):
        return renamed(result, name)
    return GraderError(
        name=name, error=f"grader returned {type(result).__name__}, not GraderScore/GraderError"
    )


def release_after(sem: asyncio.Semaphore, held: list[asyncio.Future[Any]]) -> None:
    """Free the call's slot now, or, when threads it stopped waiting for still run, once they
    end: so grader threads in flight never outnumber ``max_concurrency``."""
    if not held:
        sem.release()
        return

    async def later() -> None:
        try:
            await asyncio.wait(held)
        finally:
            sem.release()

    task = asyncio.ensure_future(later())
    _WAITING.add(task)  # a reference, so the loop's weak one is not the only one
    task.add_done_callback(_WAITING.discard)


_WAITING: set[asyncio.Future[None]] = set()
