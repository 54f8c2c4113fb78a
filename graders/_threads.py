"""Grader work in a worker thread, and the thread a caller stopped waiting for.

One idea: a thread cannot be stopped. When a call's deadline passes, the runner stops waiting,
but the thread runs on; had its concurrency slot been freed at once, timed-out threads would pile
up past ``max_concurrency`` (to the thread pool's size). So a thread its caller gave up on is
handed to whoever set :data:`lingering` for the call, the runner, which keeps the slot until the
thread ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["in_thread", "lingering"]

T = TypeVar("T")

lingering: ContextVar[list[asyncio.Future[Any]] | None] = ContextVar(
    "rm_service_lingering", default=None
)
"""Where :func:`in_thread` leaves a thread its caller stopped waiting for (set per call)."""


async def in_thread(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` in the loop's thread pool, as ``asyncio.to_thread`` runs it;
    if the caller is cancelled first, the still-running work goes to :data:`lingering`."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    fut = loop.run_in_executor(None, call)
    fut.add_done_callback(_retrieved)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        held = lingering.get()
        if held is not None and not fut.done():
            held.append(fut)
        raise


def _retrieved(fut: asyncio.Future[Any]) -> None:
    """Read a late thread's exception, so nobody is warned of one that was never retrieved."""
    if not fut.cancelled():
        fut.exception()
