"""Prometheus metrics for the HTTP service, on a registry per app instance.

Why a registry per instance and not prometheus-client's global one: tests (and anyone embedding
the app) build several apps in one process; on the global registry the second app would fail with
"Duplicated timeseries", and counters of one app would leak into another's ``/metrics``.

Grader latency and in-flight calls are measured by :class:`GraderTimer`, the hook the service
passes to each ``GradingRunner.agrade`` call; outcomes (scored, or unscored by kind), judge
cache hits and tokens are read from the results afterwards, so the engine itself stays free of
metrics code.

Why in bulk: a request of rule graders makes many grader calls, each cheaper than observing it
into a prometheus-client ``Histogram`` (a lock and a bucket scan) and counting its outcome with
``labels().inc()``; done per call, metrics cost a large share of the graders' own work (figures in
``docs/benchmarks.md``, HTTP service). So call durations are appended to a plain list and folded
into :class:`BulkHistogram` once per request (:meth:`ServiceMetrics.flush`, and at every scrape),
and outcomes are tallied in dicts before one ``inc`` per label set.

Shared Redis tiers (the judge cache's store, the shared rate-limit budget) count their failures,
skips and hits where they happen, in :func:`rm_service.models._redis.backend_totals`, and
:class:`BackendCollector` reads those totals at scrape time: the engine never calls into this
module. Those totals are per process, not per app instance (a process serves one app in
production; tests that build several apps in one process see the sum).
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from rm_service._result import GraderError, GraderScore, RecordResult
from rm_service.models._redis import backend_totals

__all__ = [
    "CONTENT_TYPE_LATEST",
    "BackendCollector",
    "BulkHistogram",
    "GraderTimer",
    "ServiceMetrics",
]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

_BY_BUCKET = 16
"""Observations a :meth:`BulkHistogram.flush` needs before it counts them bucket by bucket."""


class ServiceMetrics:
    """Every metric the service exports, registered on its own :class:`CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "rm_http_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=r,
        )
        self.request_latency = Histogram(
            "rm_http_request_duration_seconds",
            "HTTP request latency by endpoint",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.records = Counter(
            "rm_records", "Graded records by reward and status", ["reward", "status"], registry=r
        )
        self.grader_calls = Counter(
            "rm_grader_calls",
            "Grader results by grader and outcome (ok, or the unscored kind)",
            ["grader", "outcome"],
            registry=r,
        )
        self.grader_latency = BulkHistogram(
            "rm_grader_call_duration_seconds",
            "Grader call latency by grader",
            "grader",
            _LATENCY_BUCKETS,
        )
        r.register(self.grader_latency)
        self.unscored = Counter(
            "rm_unscored",
            "Unscored components by component and kind",
            ["component", "kind"],
            registry=r,
        )
        self.cache_hits = Counter(
            "rm_judge_cache_hits", "Judge calls served from the cache", ["grader"], registry=r
        )
        self.tokens = Counter(
            "rm_judge_tokens", "Judge tokens by grader and kind", ["grader", "kind"], registry=r
        )
        self.grader_in_flight = Gauge(
            "rm_grader_calls_in_flight", "Grader calls running now", registry=r
        )
        self.records_in_flight = Gauge(
            "rm_records_in_flight", "Records admitted and being graded", registry=r
        )
        self.records_queued = Gauge(
            "rm_records_queued", "Records waiting for admission", registry=r
        )
        self.rejected = Counter(
            "rm_admission_rejected", "Requests refused with 429 (overloaded)", registry=r
        )
        r.register(BackendCollector())

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.request_latency.labels(endpoint).observe(seconds)

    def observe_results(
        self, reward: str, results: Iterable[RecordResult], graders: Iterable[str], status: Any
    ) -> None:
        """Count outcomes, unscored kinds, cache hits and tokens of finished records.

        ``status`` maps a record to its HTTP status string (``ok``/``unscored``/``error``).
        Tallied in plain dicts first, then one ``inc`` per label set (see the module docstring).
        """
        grader_names = set(graders)
        records: dict[str, int] = {}
        calls: dict[tuple[str, str], int] = {}
        unscored: dict[tuple[str, str], int] = {}
        hits: dict[str, int] = {}
        tokens: dict[tuple[str, str], int] = {}
        for rec in results:
            st = status(rec)
            records[st] = records.get(st, 0) + 1
            for name, comp in rec.components.items():
                # A score first, by exact type: ``isinstance`` against a result model goes
                # through the model metaclass's ``__instancecheck__`` for anything that is not
                # one, several times the cost of the type test.
                if type(comp) is not GraderScore and isinstance(comp, GraderError):
                    key = (name, comp.kind)
                    unscored[key] = unscored.get(key, 0) + 1
                    outcome: str = comp.kind
                else:
                    outcome = "ok"
                if name not in grader_names:
                    continue
                call = (name, outcome)
                calls[call] = calls.get(call, 0) + 1
                meta = comp.metadata
                if not meta:
                    continue
                if meta.get("cached"):
                    hits[name] = hits.get(name, 0) + 1
                    continue
                usage = meta.get("usage")
                if isinstance(usage, dict):
                    for kind in ("prompt_tokens", "completion_tokens"):
                        n = int(usage.get(kind) or 0)
                        tokens[name, kind] = tokens.get((name, kind), 0) + n
        for st, n in records.items():
            self.records.labels(reward, st).inc(n)
        for (name, outcome), n in calls.items():
            self.grader_calls.labels(name, outcome).inc(n)
        for (name, kind), n in unscored.items():
            self.unscored.labels(name, kind).inc(n)
        for name, n in hits.items():
            self.cache_hits.labels(name).inc(n)
        for (name, kind), n in tokens.items():
            self.tokens.labels(name, kind).inc(n)

    def observe_scored(
        self, reward: str, records: int, scored: Mapping[str, int], graders: Container[str]
    ) -> None:
        """:meth:`observe_results` of ``records`` records that all have a reward and every
        component scored, with no judge call (see ``RunSummary.add_results``), given how many
        scored each component (``scored``, in the order first seen): the same counts, in the
        same order, with no walk of the records."""
        if records:
            self.records.labels(reward, "ok").inc(records)
        for name, n in scored.items():
            if name in graders:
                self.grader_calls.labels(name, "ok").inc(n)

    def flush(self) -> None:
        """Fold the grader call durations recorded since the last flush into the histogram."""
        self.grader_latency.flush()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class BackendCollector(Collector):
    """The shared Redis tiers' counts, read at scrape time (see the module docstring).

    * ``rm_cache_backend_errors_total{backend,op}``: cache reads (``get``) and writes (``set``)
      that failed (the read fell through to a judge call; the write's answer was kept);
    * ``rm_cache_backend_skipped_total{backend,op}``: operations not tried while the backend was
      known to be down (between a failure and the next probe);
    * ``rm_cache_backend_hits_total{backend}`` / ``rm_cache_backend_misses_total{backend}``:
      reads that worked (a hit is a verdict another replica, or an earlier run, paid for);
    * ``rm_rate_limit_backend_errors_total{backend}``: shared-budget reservations that failed;
    * ``rm_rate_limit_fallback_total{backend}``: reservations served by the local fallback.

    A family appears once its first count does (a process without Redis exports none).
    """

    _BACKEND = "redis"
    _FAMILIES = (
        ("cache", "error", "rm_cache_backend_errors", "Judge cache backend operations that failed"),
        (
            "cache",
            "skipped",
            "rm_cache_backend_skipped",
            "Judge cache backend operations skipped while the backend was down",
        ),
        ("cache", "hit", "rm_cache_backend_hits", "Judge cache backend reads that found a verdict"),
        ("cache", "miss", "rm_cache_backend_misses", "Judge cache backend reads that found none"),
        (
            "budget",
            "error",
            "rm_rate_limit_backend_errors",
            "Shared rate-limit reservations that failed",
        ),
        (
            "budget",
            "fallback",
            "rm_rate_limit_fallback",
            "Rate-limit reservations served by the local fallback",
        ),
    )

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the families depend on what has been counted

    def collect(self) -> Iterator[Metric]:
        totals = backend_totals()
        for role, outcome, name, doc in self._FAMILIES:
            by_op = [(op, n) for (r, op, o), n in totals.items() if r == role and o == outcome]
            if not by_op:
                continue
            with_op = role == "cache" and outcome in ("error", "skipped")
            labels = ["backend", "op"] if with_op else ["backend"]
            family = CounterMetricFamily(name, doc, labels=labels)
            if with_op:
                for op, n in sorted(by_op):
                    family.add_metric([self._BACKEND, op], n)
            else:
                family.add_metric([self._BACKEND], sum(n for _, n in by_op))
            yield family


class BulkHistogram(Collector):
    """A one-label Prometheus histogram whose observations are appended to plain lists
    (:meth:`pending`) and folded into bucket counts in bulk (:meth:`flush`, and every scrape).

    Exposed exactly like a prometheus-client ``Histogram`` (``_bucket``/``_count``/``_sum``). Why
    not that class: its ``observe`` takes a lock and scans the buckets on every call, a
    noticeable share of a rule grader's call. The caller must flush regularly
    (the service does once per request) so the pending lists stay short.
    """

    def __init__(self, name: str, documentation: str, label: str, buckets: Sequence[float]):
        self.name = name
        self.documentation = documentation
        self.label = label
        self._bounds = sorted(float(b) for b in buckets if b != math.inf)
        self._pending: dict[str, list[float]] = {}
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self._lock = threading.Lock()

    def pending(self, label_value: str) -> list[float]:
        """The list to append ``label_value``'s observations to (the same list every time)."""
        with self._lock:
            return self._pending.setdefault(label_value, [])

    def observe(self, label_value: str, value: float) -> None:
        self.pending(label_value).append(value)

    def flush(self) -> None:
        bounds = self._bounds
        with self._lock:
            for label_value, values in self._pending.items():
                n = len(values)
                if not n:
                    continue
                # Slice then delete: appends made meanwhile (another thread's loop) are kept.
                taken = values[:n]
                del values[:n]
                counts = self._counts.get(label_value)
                if counts is None:
                    counts = self._counts[label_value] = [0] * (len(bounds) + 1)
                try:
                    total: float | None = math.fsum(taken)
                except (ValueError, OverflowError):  # inf - inf: raised below, once counted
                    total = None
                if n >= _BY_BUCKET and total is not None and total == total:  # and no NaN
                    # Each value in the first bucket with v <= le, as below, a bucket at a time
                    # rather than a value at a time (most calls land in the first).
                    taken.sort()
                    at = 0
                    for i, le in enumerate(bounds):
                        upto = bisect_right(taken, le, at)
                        counts[i] += upto - at
                        at = upto
                    counts[-1] += n - at
                else:
                    for v in taken:
                        counts[bisect_left(bounds, v)] += 1  # the first bucket with v <= le
                if total is None:
                    total = math.fsum(taken)
                self._sums[label_value] = self._sums.get(label_value, 0.0) + total

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=[self.label])

    def collect(self) -> Iterator[Metric]:
        self.flush()
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        les = [*(floatToGoString(b) for b in self._bounds), "+Inf"]
        with self._lock:
            snapshot = [(k, list(c), self._sums[k]) for k, c in self._counts.items()]
        for label_value, counts, total in snapshot:
            cumulative, running = [], 0
            for le, c in zip(les, counts, strict=True):
                running += c
                cumulative.append((le, running))
            family.add_metric([label_value], cumulative, total)
        yield family


class GraderTimer:
    """The service's :class:`~rm_service._runner.CallObserver`: grader call latency and calls
    in flight, passed to ``GradingRunner.agrade(observer=...)``.

    Durations are appended to :class:`BulkHistogram` lists (one per grader, looked up once); the
    in-flight gauge counts only calls that await, as the runner reports ``started`` for those
    alone (an inline grader blocks the loop, so no scrape could see it in flight anyway).
    """

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._histogram = metrics.grader_latency
        self._in_flight = metrics.grader_in_flight
        self._times: dict[str, list[float]] = {}

    def started(self, grader: str) -> None:
        self._in_flight.inc()

    def finished(self, grader: str, seconds: float, awaited: bool) -> None:
        if awaited:
            self._in_flight.dec()
        self._pending(grader).append(seconds)

    def _inline_sinks(self, graders: Sequence[str]) -> list[list[float]] | None:
        """The lists the runner appends these inline graders' call durations to itself (see
        :class:`~rm_service._jobs.CallObserver`); ``None`` for a subclass whose ``finished``
        is its own, which then hears every call."""
        if type(self).finished is not GraderTimer.finished:
            return None
        return [self._pending(g) for g in graders]

    def _pending(self, grader: str) -> list[float]:
        """The histogram's list of ``grader``'s call durations (looked up once a grader)."""
        times = self._times.get(grader)
        if times is None:
            times = self._times[grader] = self._histogram.pending(grader)
        return times
