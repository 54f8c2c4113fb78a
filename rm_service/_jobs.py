"""The runner's input side: ``(record, grader)`` jobs handed out one record at a time.

One idea: the lazy, record-major job stream ``GradingRunner`` schedules from (see there for
why). A record is read from the input only when its first job is wanted (a plain iterable
:data:`PREPARE_AHEAD` records at a time when the graders prepare records ahead), so nothing is
created per record up front; an input that raises ends the stream and keeps the exception for
the runner to re-raise once the records in flight are finished. Also the per-call hook
(:class:`CallObserver`) a stream carries.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from rm_service._mapper import GraderConfig
from rm_service._result import GraderResult

__all__ = [
    "CallObserver",
    "Durations",
    "Job",
    "JobSource",
    "Pending",
    "Records",
    "StreamDone",
    "inline_durations",
    "record_id",
]

Records = Iterable[Any] | AsyncIterable[Any]

Job = tuple[str, GraderConfig | None, float | None]
"""One grader's job for a record: result name, config (``None``: the record's inline graders,
run together) and per-call timeout."""


class CallObserver(Protocol):
    """A hook that watches grader calls of one stream (``astream(..., observer=...)``).

    The engine stays free of metrics code: the HTTP service passes its Prometheus timers here
    rather than wrapping each grader. ``started`` is called only for calls that await (an inline
    grader cannot be observed mid-call: nothing else runs while it does); ``finished`` for every
    call, with its wall time in seconds (calls cut short by a timeout included) and whether it
    was an awaited call, paired with a ``started``.

    An observer class may also offer ``_inline_sinks(graders)``: for each of those inline
    graders, a list the runner appends its calls' durations to instead of calling ``finished``
    (``None`` to be called; see :func:`inline_durations`). An inline call's duration runs from
    the end of the record's previous inline call (or the record's start) to the end of its
    own: it includes reading its fields, and one clock read serves two calls.
    """

    def started(self, grader: str) -> None: ...

    def finished(self, grader: str, seconds: float, awaited: bool) -> None: ...


class Durations(Protocol):
    """Where an inline grader's call durations go: a ``list[float]``, or anything that takes
    ``append(seconds)``."""

    def append(self, seconds: float, /) -> None: ...


class _Finished:
    """One inline grader's :class:`Durations` for an observer that offers only ``finished``:
    each duration is its ``finished(grader, seconds, False)``."""

    __slots__ = ("grader", "observer")

    def __init__(self, observer: CallObserver, grader: str) -> None:
        self.observer = observer
        self.grader = grader

    def append(self, seconds: float, /) -> None:
        self.observer.finished(self.grader, seconds, False)


def inline_durations(
    observer: CallObserver | None, graders: Sequence[str]
) -> tuple[Durations, ...] | None:
    """Where each of ``graders`` (the inline ones) reports its call durations to ``observer``,
    looked up once a stream: the lists its class's ``_inline_sinks`` gives
    (:class:`~rm_service._metrics.GraderTimer`'s: its histogram's own lists), else its
    ``finished`` call by call. ``None`` when nothing observes.

    Why: an inline grader's call costs about as much as a method call or two, and a
    ``finished`` call per call was a tenth of a cheap grader's cost; an append is the same
    observation for less. Looked up on the class, under a private name, so only an observer
    written for it opts in (not a ``Mock``, nor one with a ``durations`` of its own)."""
    if observer is None:
        return None
    sinks = getattr(type(observer), "_inline_sinks", None)
    lists = sinks(observer, graders) if sinks is not None else None
    if lists is not None:
        return tuple(lists)
    return tuple(_Finished(observer, g) for g in graders)


BIG_RECORD_CHARS = 262_144
"""Text a record may hold and still have its inline graders run on the event loop."""


def is_big(record: Any) -> bool:
    """Whether ``record`` holds more than :data:`BIG_RECORD_CHARS` of text (its strings, in
    lists and dicts too: messages, multi-part content). Rule graders on such a record can take a
    second or more (regexes over megabytes), and run on the loop they would stall every other
    request and the health probe: the runner grades it in a worker thread instead."""
    if not isinstance(record, dict):
        return False
    size = 0
    nested: list[tuple[Any, int]] = []
    for value in record.values():
        if isinstance(value, str):
            size += len(value)
        elif isinstance(value, list | dict):
            nested.append((value, 1))
    seen: set[int] = set()  # a container shared (or cyclic) through the Python API counts once
    while nested and size <= BIG_RECORD_CHARS:
        value, depth = nested.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        for item in value.values() if isinstance(value, dict) else value:
            if isinstance(item, str):
                size += len(item)
            elif depth < 8 and isinstance(item, list | dict):
                nested.append((item, depth + 1))
    return size > BIG_RECORD_CHARS


PREPARE_AHEAD = 16
"""Records of a plain iterable read and prepared together (:meth:`JobSource._read`): about as
long a hold of the event loop as an inline slice, for a judge's pre-gates."""


class Pending:
    """One record in flight: its input, its results so far, and how many graders remain."""

    __slots__ = ("id", "index", "record", "remaining", "results")

    def __init__(self, index: int, record: Any, remaining: int, id_: Any) -> None:
        self.index = index
        self.record = record
        self.remaining = remaining
        self.id = id_
        self.results: dict[str, GraderResult] = {}


class StreamDone:
    """End-of-stream marker carrying the input's exception, if it raised."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class ReadOnly(dict[str, Any]):
    """A record's results as an aggregator sees them: read-only, so one that "fills" an error
    with 0.0 cannot fake that component's score, nor one that drops a key fail the batch. A
    ``dict`` still (``isinstance``, ``json.dumps``); a copy or a pickle of it is a plain one."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("an aggregator's results are read-only: build a new dict to change them")

    __setitem__ = __delitem__ = setdefault = pop = popitem = clear = update = _refuse
    __ior__ = _refuse

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return copy.deepcopy(dict(self), memo)


class _Interrupted(Exception):
    """A worker's ``KeyboardInterrupt`` or ``SystemExit``, on its way to the caller's task (in
    a worker task, asyncio would stop the loop with the caller's task still pending)."""

    def __init__(self, interrupt: KeyboardInterrupt | SystemExit) -> None:
        super().__init__(repr(interrupt))
        self.interrupt = interrupt


class JobSource:
    """Hands out ``(record, grader)`` jobs, reading the input one record at a time (a few at a
    time when the graders prepare them, from a plain iterable)."""

    def __init__(
        self,
        jobs: Sequence[Job],
        id_field: str,
        records: Records,
        start: int,
        prepare: Callable[[Sequence[Any], int], None] | None = None,
    ) -> None:
        self.jobs = jobs
        self.id_field = id_field
        self.index = start
        # A plain iterable is read a few records ahead when the graders prepare them together
        # before their calls (``prepare(records, first_index)``, see ``GradingRunner``).
        self.prepare = prepare
        self.pulled: deque[Any] = deque()
        self.buf: deque[tuple[Pending, str, GraderConfig | None, float | None]] = deque()
        self.error: BaseException | None = None
        self.done = False
        self.deadline_at: float | None = None
        self.observer: CallObserver | None = None
        self.durations: tuple[Durations, ...] | None = None  # the inline graders', in order
        if isinstance(records, AsyncIterable):
            self.aiter: AsyncIterator[Any] | None = aiter(records)
            self.iter = None
            self.lock: asyncio.Lock | None = asyncio.Lock()
        else:
            self.aiter = None
            self.iter = iter(records)
            self.lock = None

    @property
    def sync(self) -> bool:
        """The input is a plain iterable: :meth:`next_now` reads it without awaiting."""
        return self.lock is None

    def next_now(self) -> tuple[Pending, str, GraderConfig | None, float | None] | None:
        """:meth:`next` for a plain iterable, with no coroutine (see :attr:`sync`)."""
        if self.buf:
            return self.buf.popleft()
        if self.done:
            return None
        return self._expand(self._pull_sync())

    async def next(self) -> tuple[Pending, str, GraderConfig | None, float | None] | None:
        if self.lock is None:
            return self.next_now()
        if self.buf:
            return self.buf.popleft()
        if self.done:
            return None
        async with self.lock:
            if self.buf:
                return self.buf.popleft()
            if self.done:
                return None
            try:
                record = await anext(self.aiter)  # type: ignore[arg-type]  # set with the lock
            except StopAsyncIteration:
                record = _END
            except Exception as exc:
                self.error, record = exc, _END
            return self._expand(record)

    def _pull_sync(self) -> Any:
        if not self.pulled:
            self._read(PREPARE_AHEAD if self.prepare is not None else 1)
        record = self.pulled.popleft()
        if type(record) is _Raise:
            raise record.interrupt
        return record

    def _read(self, n: int) -> None:
        """Read up to ``n`` records (the end, or the input's error, ends them), and have them
        prepared together."""
        read: list[Any] = []
        end: Any = None
        while len(read) < n and end is None:
            try:
                read.append(next(self.iter))  # type: ignore[arg-type]  # set when there is no lock
            except StopIteration:
                end = _END
            except Exception as exc:
                self.error, end = exc, _END
            except BaseException as exc:  # KeyboardInterrupt: raised where it was read, after
                end = _Raise(exc)  # the records before it, as a record-at-a-time read did
        self.pulled.extend(read)
        if end is not None:
            self.pulled.append(end)
        if read and self.prepare is not None:
            self.prepare(read, self.index)

    def _expand(self, record: Any) -> tuple[Pending, str, GraderConfig | None, float | None] | None:
        if record is _END:
            self.done = True
            return None
        jobs = self.jobs
        pend = Pending(self.index, record, len(jobs), record_id(record, self.id_field))
        self.index += 1
        if len(jobs) == 1:  # one job a record (every grader inline): nothing to buffer
            return (pend, *jobs[0])
        self.buf.extend((pend, *job) for job in jobs)
        return self.buf.popleft()


_END = object()


class _Raise:
    """Where a read-ahead met the input's ``KeyboardInterrupt`` or ``SystemExit``: raised when
    the records before it are handed out."""

    __slots__ = ("interrupt",)

    def __init__(self, interrupt: BaseException) -> None:
        self.interrupt = interrupt


def record_id(record: Any, id_field: str) -> Any:
    """A record's id (its ``id_field``) as given, any JSON value; a record that is not an
    object has none."""
    if type(record) is dict or isinstance(record, Mapping):  # the ABC check alone is slow
        return record.get(id_field)
    return None
