"""Prometheus metrics for the HTTP service, on a registry per app instance.

Why a registry per instance and not prometheus-client's global one: tests (and anyone embedding
the app) build several apps in one process; on the global registry the second app would fail with
"Duplicated timeseries", and counters of one app would leak into another's ``/metrics``.

Grader latency and in-flight calls are measured by :class:`TimedGrader`, a thin proxy the service
puts around each grader of a runner; outcomes (scored, or unscored by kind), judge cache hits and
tokens are read from the results afterwards, so the engine itself stays free of metrics code.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from rm_service._result import GraderError, GraderScore, RecordResult

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics", "TimedGrader"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


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
        self.grader_latency = Histogram(
            "rm_grader_call_duration_seconds",
            "Grader call latency by grader",
            ["grader"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
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

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.request_latency.labels(endpoint).observe(seconds)

    def observe_results(
        self, reward: str, results: Iterable[RecordResult], graders: Iterable[str], status: Any
    ) -> None:
        """Count outcomes, unscored kinds, cache hits and tokens of finished records.

        ``status`` maps a record to its HTTP status string (``ok``/``unscored``/``error``).
        """
        grader_names = set(graders)
        for rec in results:
            self.records.labels(reward, status(rec)).inc()
            for name, comp in rec.components.items():
                if isinstance(comp, GraderError):
                    self.unscored.labels(name, comp.kind).inc()
                if name not in grader_names:
                    continue
                outcome = comp.kind if isinstance(comp, GraderError) else "ok"
                self.grader_calls.labels(name, outcome).inc()
                meta = comp.metadata if isinstance(comp, GraderScore | GraderError) else {}
                if meta.get("cached"):
                    self.cache_hits.labels(name).inc()
                usage = meta.get("usage")
                if isinstance(usage, dict) and not meta.get("cached"):
                    for kind in ("prompt_tokens", "completion_tokens"):
                        self.tokens.labels(name, kind).inc(int(usage.get(kind) or 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class TimedGrader:
    """A proxy around a grader that times each call and counts calls in flight.

    Everything but ``aevaluate`` is delegated, so ``name`` and ``required_fields`` (read by
    ``GradingRunner.check``) are the wrapped grader's.
    """

    def __init__(self, inner: Any, metrics: ServiceMetrics) -> None:
        self._inner = inner
        self._metrics = metrics
        self._latency = metrics.grader_latency.labels(inner.name)

    def __getattr__(self, item: str) -> Any:
        return getattr(self._inner, item)

    async def aevaluate(self, **fields: Any) -> Any:
        self._metrics.grader_in_flight.inc()
        start = time.perf_counter()
        try:
            return await self._inner.aevaluate(**fields)
        finally:
            self._latency.observe(time.perf_counter() - start)
            self._metrics.grader_in_flight.dec()
