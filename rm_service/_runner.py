"""``GradingRunner``: grade records with many graders at bounded concurrency, in flat memory.

How it schedules, and why:

* **Lazy and record-major.** A fixed pool of ``max_concurrency`` worker coroutines pulls
  ``(record, grader)`` jobs from the input one record at a time. Nothing is created per record up
  front, so memory is O(max_concurrency), not O(records × graders): a coroutine built up front
  for every call would hold a large dataset's every pending call in memory at once. Because jobs
  are taken record by record, records complete early and stream out in roughly input order.
* **One bound per event loop.** Workers also take a per-loop semaphore of ``max_concurrency``, so
  concurrent streams on the same runner and loop (e.g. the HTTP service) share one limit.
* **No loop-bound state in ``__init__``.** Semaphores, queues and tasks are made inside each call,
  for the running loop. The same runner works across repeated ``asyncio.run`` calls and from other
  threads' loops (a primitive bound to the first loop would fail on the second).
* **Failures stay results.** A mapper path that does not resolve, a grader exception, a deadline:
  each becomes a ``GraderError`` for that component. If the *input* raises (a malformed JSONL
  line), the runner stops taking records, finishes and yields those in flight, then re-raises:
  nothing already graded is lost.

Measured scheduling overhead and memory: ``docs/benchmarks.md`` (Runner).
"""

from __future__ import annotations

import asyncio
import copy
import operator
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Mapping,
    Sequence,
)
from typing import Any
from weakref import WeakKeyDictionary

from aggregators._base import reads_as_base
from graders._base import BaseGrader, contract, load_all, prepares_ahead
from graders._threads import lingering
from rm_service._call import call, named, release_after
from rm_service._exceptions import ConfigError, MappingError
from rm_service._jobs import (
    CallObserver,
    Durations,
    JobSource,
    Pending,
    ReadOnly,
    Records,
    StreamDone,
    _Interrupted,
    inline_durations,
    is_big,
)
from rm_service._mapper import GraderConfig
from rm_service._result import (
    RESULT_TYPES,
    GraderError,
    GraderResult,
    RecordResult,
    assembled,
)
from rm_service._runner_aggregators import (
    Aggregator,
    AggregatorLike,
    bind_aggregators,
    default_reward,
)

__all__ = ["DEFAULT_MAX_CONCURRENCY", "CallObserver", "GradingRunner", "Records"]

DEFAULT_MAX_CONCURRENCY = 64

_INLINE_SLICE_S = 0.005
"""How long an all-inline stream grades before it lets the event loop run other tasks."""

MAX_CONCURRENCY = 65_536
"""The most grader calls a runner keeps in flight; each is a worker task, started up front."""


class GradingRunner:
    """Run graders over records and combine them with aggregators.

    Args:
        grader_configs: ``{name: GraderConfig | grader | function | (grader, mapper)}``. The name
            keys the results.
        aggregators: an aggregator, a callable ``f(results_by_name)``, or a list of them, applied
            in order after the graders; each sees the graders' and earlier aggregators' results.
        max_concurrency: the most grader calls in flight at once (per event loop).
        call_timeout: default per-call deadline in seconds (a ``GraderConfig`` may override it);
            a call past it is unscored with ``kind="timeout"``. It does not apply to inline
            graders (``grader.inline``: pure CPU, never awaiting), which no timer could
            interrupt, and a ``GraderConfig`` that sets one for such a grader is a
            ``ConfigError``; the batch ``deadline`` is still checked before each of their calls.
        reward: which result is a record's ``reward``. Default: the aggregator named ``reward``,
            else the last aggregator (later ones may wrap earlier ones), else the only grader.
            With several graders and no aggregator, an equal-weight
            ``WeightedSumAggregator("reward")`` is added.
        id_field: the record key copied into ``RecordResult.id``.
        show_progress: show a tqdm bar in ``arun``.

    Example::

        runner = GradingRunner(
            {"math": GraderConfig(MathGrader(), mapper={"reference_response": "ground_truth"}),
             "format": FormatGrader(mode="think_answer")},
            aggregators=WeightedSumAggregator("reward", {"math": 0.8, "format": 0.2}),
        )
        results = await runner.arun(dataset)   # {"math": [...], "format": [...], "reward": [...]}
    """

    def __init__(
        self,
        grader_configs: Mapping[str, Any],
        aggregators: AggregatorLike | Sequence[AggregatorLike] | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        *,
        call_timeout: float | None = None,
        reward: str | None = None,
        id_field: str = "id",
        show_progress: bool = False,
    ) -> None:
        if not grader_configs:
            raise ConfigError("GradingRunner needs at least one grader")
        if not isinstance(max_concurrency, int) or not 1 <= max_concurrency <= MAX_CONCURRENCY:
            # Each slot is a worker task: a million of them took 1.1 GB before grading began.
            raise ConfigError(
                f"max_concurrency must be an int from 1 to {MAX_CONCURRENCY}, "
                f"got {max_concurrency!r}"
            )
        if call_timeout is not None and not call_timeout > 0:
            raise ConfigError(f"call_timeout must be > 0 seconds, got {call_timeout!r}")
        self.grader_configs: dict[str, GraderConfig] = {}
        for name, cfg in grader_configs.items():
            cfg = GraderConfig.create(cfg)
            if isinstance(cfg.grader, BaseGrader) and cfg.grader.name != name:
                # Results carry the config's name; fix it once here, not on every call.
                cfg = _renamed(cfg, name)
            self.grader_configs[name] = cfg
        self.aggregators: list[Aggregator] = bind_aggregators(
            aggregators, reward, list(self.grader_configs)
        )
        names = [*self.grader_configs, *(a.name for a in self.aggregators)]
        if reward is None:
            reward = default_reward(self.aggregators, names)
        if reward not in names:
            raise ConfigError(f"reward {reward!r} is not a grader or aggregator: {names}")
        self.reward_name = reward
        self._names = names
        self.max_concurrency = max_concurrency
        self.call_timeout = call_timeout
        self.id_field = id_field
        self.show_progress = show_progress
        # Inline graders (pure CPU, never await) run one after another in a single job per
        # record, called through their synchronous ``evaluate``; every other grader gets a job
        # of its own. ``cfg=None`` marks the inline job.
        self._inline = tuple(
            (name, cfg, contract(cfg.grader).evaluate)
            for name, cfg in self.grader_configs.items()
            if contract(cfg.grader).inline
        )
        for name, cfg, _ in self._inline:
            if cfg.call_timeout is not None:  # it was silently ignored
                raise ConfigError(
                    f"{name}: call_timeout does not apply to an inline grader (pure CPU, run on "
                    "the event loop), which no timer could stop; a format or string_match "
                    "pattern has its own match_timeout"
                )
        self._jobs: list[tuple[str, GraderConfig | None, float | None]] = [
            (name, cfg, cfg.call_timeout or call_timeout)
            for name, cfg in self.grader_configs.items()
            if not contract(cfg.grader).inline
        ]
        if self._inline:
            self._jobs.insert(0, ("", None, None))
        # The awaited graders with work to do ahead, prepared a few records ahead
        # (``_prepare``); not through a callable mapper, which is the user's code and runs once
        # per record and grader.
        self._prepared = tuple(
            (cfg, contract(cfg.grader).prepare_ahead)
            for cfg in self.grader_configs.values()
            if not contract(cfg.grader).inline
            and not callable(cfg.mapper)
            and prepares_ahead(cfg.grader)
        )
        # Every grader inline: one job per record and nothing ever awaits, so worker tasks and
        # the output queue would only add overhead (see ``_inline_slices``).
        self._all_inline = len(self._inline) == len(self.grader_configs)
        self._offload = all(contract(cfg.grader).thread_safe for _, cfg, _ in self._inline)
        self._semaphores: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    # --- public API ------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Every result name, graders first, then aggregators in order."""
        return [*self.grader_configs, *(a.name for a in self.aggregators)]

    def check(self, record: Any, index: int = 0, *, nulls_ok: bool = False) -> None:
        """Raise if ``record`` cannot feed every grader: a mapper path that does not resolve, or a
        required field that is missing. Call it on the first record before spending judge calls.
        With ``nulls_ok``, a required field that is there but null passes: that is this record's
        data, which grades as an unscored record (``invalid_input``) like any later one, not a
        config that cannot work.

        Raises:
            MappingError: naming the record index, the grader and the path or field.
        """
        for name, cfg in self.grader_configs.items():
            try:
                fields = cfg.fields(record, index)
            except MappingError as exc:
                raise MappingError(
                    f"grader {name!r}: {exc.detail}",
                    index=exc.index,
                    path=exc.path,
                    field=exc.field,
                ) from None
            required = contract(cfg.grader).required_fields
            missing = [f for f in required if fields.get(f) is None]
            if missing:
                null = [f for f in missing if f in fields]
                if nulls_ok and null == missing:
                    continue
                mapper = cfg.mapper if isinstance(cfg.mapper, Mapping) else {}
                named = [
                    f"{f!r} (from {src!r})" if isinstance(src := mapper.get(f), str) else repr(f)
                    for f in null
                ]  # the record's own field, which is what is null there
                why = (
                    f"which are null in the record: {', '.join(named)}"
                    if null == missing
                    else f"which the record lacks (has: {sorted(fields)})"
                )
                raise MappingError(
                    f"grader {name!r} needs field(s) {missing}, {why}; add them or map them "
                    "with a mapper",
                    index=index,
                    path="",
                    field=missing[0],
                )

    async def astream(
        self,
        records: Records,
        *,
        start: int = 0,
        deadline: float | None = None,
        observer: CallObserver | None = None,
    ) -> AsyncGenerator[RecordResult, None]:
        """Yield a :class:`RecordResult` per record as it completes (about input order).

        ``records`` may be any iterable or async iterable and is consumed lazily. ``start`` is the
        index given to the first record. If the input raises, the records already in flight are
        finished and yielded, then the exception is re-raised.

        ``deadline`` is an overall budget in seconds for the whole batch: once it has passed,
        calls in flight are cancelled and calls not yet started are skipped, each coming back
        unscored with ``kind="timeout"``, so every record still gets a result and nothing hangs.

        ``observer`` (a :class:`CallObserver`) is told of every grader call of this stream.
        """
        source = self._source(records, start, deadline, observer)
        sem = self._semaphore()
        if self._all_inline:
            async for batch in self._inline_slices(source, sem):
                for rec in batch:
                    yield rec
            return
        out: asyncio.Queue[RecordResult | StreamDone] = asyncio.Queue(
            maxsize=2 * self.max_concurrency
        )
        supervisor = asyncio.ensure_future(self._supervise(source, sem, out))
        try:
            while True:
                item = await out.get()
                if isinstance(item, StreamDone):
                    if isinstance(item.error, _Interrupted):
                        raise item.error.interrupt  # in the caller's task, as inline graders do
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            if not supervisor.done():
                supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)

    async def aload(self) -> dict[str, str]:
        """Start now what the first record would wait for: the math worker pool, local judge and
        embedding models (each grader's ``aload``). Returns ``{grader: error}`` of those that
        could not start; their records will come back unscored with the same error."""
        return await load_all({name: gc.grader for name, gc in self.grader_configs.items()})

    async def agrade(
        self,
        records: Records,
        *,
        deadline: float | None = None,
        observer: CallObserver | None = None,
    ) -> list[RecordResult]:
        """All records' results, in input order (``deadline``, ``observer``: see
        :meth:`astream`)."""
        if self._all_inline:  # already in input order, and no stream step per record
            source = self._source(records, 0, deadline, observer)
            graded: list[RecordResult] = []
            async for batch in self._inline_slices(source, self._semaphore()):
                graded.extend(batch)
            return graded
        results = [r async for r in self.astream(records, deadline=deadline, observer=observer)]
        results.sort(key=lambda r: r.index)
        return results

    async def arun(self, dataset: Records) -> dict[str, list[GraderResult]]:
        """OpenJudge's shape: ``{name: [result per record, in input order]}`` for every grader
        and aggregator."""
        by_name: dict[str, list[GraderResult]] = {n: [] for n in self.names}
        bar = _progress_bar(dataset) if self.show_progress else None
        collected: list[RecordResult] = []
        async for rec in self.astream(dataset):
            collected.append(rec)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        collected.sort(key=lambda r: r.index)
        for rec in collected:
            for n in by_name:
                by_name[n].append(rec.components[n])
        return by_name

    def run(self, dataset: Records) -> dict[str, list[GraderResult]]:
        """Synchronous ``arun``, for scripts. Not callable from inside a running event loop."""
        return _run_sync(self.arun(dataset))

    def grade(self, records: Records) -> list[RecordResult]:
        """Synchronous ``agrade``."""
        return _run_sync(self.agrade(records))

    # --- internals -------------------------------------------------------------------------

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._lock:
            sem = self._semaphores.get(loop)
            if sem is None:
                sem = self._semaphores[loop] = asyncio.Semaphore(self.max_concurrency)
        return sem

    async def _supervise(
        self, source: JobSource, sem: asyncio.Semaphore, out: asyncio.Queue[Any]
    ) -> None:
        workers = [
            asyncio.ensure_future(self._worker(source, sem, out))
            for _ in range(self.max_concurrency)
        ]
        try:
            await asyncio.gather(*workers)
        except BaseException as exc:
            for w in workers:
                w.cancel()
            if not isinstance(exc, asyncio.CancelledError):
                await out.put(StreamDone(exc))
            raise
        await out.put(StreamDone(source.error))

    async def _worker(
        self, source: JobSource, sem: asyncio.Semaphore, out: asyncio.Queue[Any]
    ) -> None:
        try:
            await self._work(source, sem, out)
        except (KeyboardInterrupt, SystemExit) as exc:
            # Raised in a worker task, asyncio would stop the loop at once and the caller's
            # except and finally blocks would never run (its output never flushed): the stream
            # raises it in the caller's task instead.
            raise _Interrupted(exc) from exc

    async def _work(
        self, source: JobSource, sem: asyncio.Semaphore, out: asyncio.Queue[Any]
    ) -> None:
        while True:
            job = await source.next()
            if job is None:
                return
            pend, name, cfg, timeout = job
            if cfg is None:
                async with sem:
                    clock = asyncio.get_running_loop().time
                    args = (pend, source.deadline_at, source.durations, clock)
                    if self._offload and is_big(pend.record):  # long texts: graded off the loop
                        await asyncio.to_thread(self._run_inline, *args)
                    else:
                        self._run_inline(*args)
            else:
                try:
                    fields = cfg.fields(pend.record, pend.index)
                except MappingError as exc:
                    result: GraderResult = GraderError(
                        name=name, error=str(exc), kind="invalid_input"
                    )
                else:
                    await sem.acquire()
                    held: list[asyncio.Future[Any]] = []
                    token = lingering.set(held)
                    try:
                        result = await call(
                            cfg, name, fields, timeout, source.deadline_at, source.observer
                        )
                    finally:
                        lingering.reset(token)
                        release_after(sem, held)
                pend.results[name] = result
            pend.remaining -= 1
            if pend.remaining == 0:
                await out.put(self._finish(pend))

    def _source(
        self, records: Records, start: int, deadline: float | None, observer: CallObserver | None
    ) -> JobSource:
        if deadline is not None and not deadline > 0:
            raise ConfigError(f"deadline must be > 0 seconds, got {deadline!r}")
        prepare = self._prepare if self._prepared else None
        # An int (np.int64(5) is 5), checked once here: the records' results are built from it
        # without validation (``_finish``).
        try:
            start = operator.index(start)
        except TypeError:
            raise TypeError(f"start must be an int, got {start!r}") from None
        source = JobSource(self._jobs, self.id_field, records, start, prepare)
        if deadline is not None:
            source.deadline_at = asyncio.get_running_loop().time() + deadline
        source.observer = observer
        source.durations = inline_durations(observer, [name for name, _, _ in self._inline])
        return source

    async def _inline_slices(
        self, source: JobSource, sem: asyncio.Semaphore
    ) -> AsyncIterator[list[RecordResult]]:
        """Grade records one after another on the calling task, a slice at a time: the path
        when every grader is inline (rule graders). Workers would only cost a task each, queue
        hand-offs and a sort: nothing awaits. Slices of ``_INLINE_SLICE_S`` run under one
        concurrency slot, and the loop gets a turn between them, so a big batch does not starve
        other requests or a metrics scrape; a record of long texts (:func:`is_big`) is graded
        in a worker thread. Kept: input order, lazy input, the batch deadline checked before each
        call, an input error re-raised after the records before it; an async input ends a slice
        at each record, so a slow producer never holds back a finished result."""
        clock = asyncio.get_running_loop().time
        deadline_at, durations, sync = source.deadline_at, source.durations, source.sync
        while True:
            job = source.next_now() if sync else await source.next()
            if job is None:
                break
            batch: list[RecordResult] = []
            async with sem:
                turn_at = clock() + _INLINE_SLICE_S
                while job is not None:
                    args = (job[0], deadline_at, durations, clock)
                    if self._offload and is_big(job[0].record):  # long texts: graded off the loop
                        await asyncio.to_thread(self._run_inline, *args)
                    else:
                        self._run_inline(*args)
                    batch.append(self._finish(job[0]))
                    if not sync or clock() >= turn_at:
                        break
                    job = source.next_now()
            yield batch
            if job is not None and sync:
                await asyncio.sleep(0)  # a slice's time is up: give the loop a turn
        if source.error is not None:
            raise source.error

    def _run_inline(
        self,
        pend: Pending,
        deadline_at: float | None,
        durations: tuple[Durations, ...] | None,
        clock: Callable[[], float],
    ) -> None:
        """Run the record's inline graders, checking the deadline on the loop's ``clock``, and
        append each call's duration to its grader's ``durations`` (:func:`inline_durations`).

        The record's fields and the timer are read into locals once: this loop runs for every
        inline grader of every record, where an attribute lookup is a visible share of a cheap
        grader's cost. One clock read ends a call and starts the next (a call's time includes
        reading its fields); a grader not called (its fields do not map, the deadline passed)
        is not timed, and the next call starts after it."""
        record, index, results = pend.record, pend.index, pend.results
        perf_counter = time.perf_counter
        began = perf_counter() if durations is not None else 0.0
        for at, (name, cfg, evaluate) in enumerate(self._inline):
            try:
                fields = cfg.fields(record, index)
            except MappingError as exc:
                results[name] = GraderError(name=name, error=str(exc), kind="invalid_input")
                began = perf_counter() if durations is not None else 0.0
                continue
            if deadline_at is not None and clock() >= deadline_at:
                results[name] = GraderError(
                    name=name, error="batch deadline passed before the call", kind="timeout"
                )
                began = perf_counter() if durations is not None else 0.0
                continue
            try:
                result = named(name, evaluate(fields))
            except Exception as exc:  # a contract's evaluate that raised: a bug, named
                result = GraderError(name=name, error=f"grader raised {type(exc).__name__}: {exc}")
            if durations is not None:
                ended = perf_counter()
                durations[at].append(ended - began)
                began = ended
            results[name] = result

    def _prepare(self, records: Sequence[Any], first: int) -> None:
        """Let each awaited grader compute together what its calls on these records will ask
        for (:meth:`GraderContract.prepare_ahead`: a judge's pre-gates, gate by gate), before the
        calls start. A cache fill only: a record that does not map, or a prepare that raises,
        is left for the calls, which report it."""
        for cfg, prepare in self._prepared:
            batch = []
            for index, record in enumerate(records, first):
                try:
                    batch.append(cfg.fields(record, index))
                except MappingError:
                    continue
            try:
                prepare(batch)
            except Exception:  # the calls run without it, and report what fails
                continue

    def _finish(self, pend: Pending) -> RecordResult:
        results = pend.results
        for agg in self.aggregators:
            try:
                # An error "filled" with 0.0 would fake a score: read-only, but for an
                # aggregator whose reading is the base's own (no copy to make).
                out = agg(results if reads_as_base(agg) else ReadOnly(results))
            except Exception as exc:  # a broken aggregator is a bug: unscored, loudly named
                out = GraderError(
                    name=agg.name, error=f"aggregator raised {type(exc).__name__}: {exc}"
                )
            if not isinstance(out, RESULT_TYPES):
                # A custom aggregator returning a bare number failed the whole run when the
                # record was built; it is this component's bug, unscored and named.
                out = GraderError(
                    name=agg.name,
                    error=f"aggregator returned {type(out).__name__}, not GraderScore/GraderError",
                )
            results[agg.name] = out
        # Config order, not completion order; the inline graders ran in config order, then
        # the aggregators, so there ``results`` is in it already. Not validated again: every
        # component is a result by type (``named`` and the test above), the index an int and
        # the reward name a str, which is all the model would check.
        ordered = results if self._all_inline else {n: results[n] for n in self._names}
        fields = {
            "index": pend.index,
            "id": pend.id,
            "reward_name": self.reward_name,
            "components": ordered,
        }
        return assembled(RecordResult, fields)


def _renamed(cfg: GraderConfig, name: str) -> GraderConfig:
    grader = copy.copy(cfg.grader)
    grader.name = name
    return GraderConfig(grader=grader, mapper=cfg.mapper, call_timeout=cfg.call_timeout)


def _progress_bar(dataset: Records) -> Any:
    from tqdm.auto import tqdm

    total = len(dataset) if isinstance(dataset, Sequence) else None
    return tqdm(total=total, unit="rec", desc="grading")


def _run_sync(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("called from a running event loop; use the async method (await ...)")
