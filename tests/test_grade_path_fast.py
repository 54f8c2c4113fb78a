"""Issue 14, item 3: ``POST /grade``'s cheaper paths answer what the general ones answer.

Each fast path is pinned against the path it short-cuts, on the cases it takes and on the odd
ones it must hand over: the one walk over a request's results (``RunSummary.add_results``, with
``ServiceMetrics.observe_scored``) against ``record_json`` + ``add_all`` + ``observe_results``;
grouped sums in ``ComponentStats.add_all`` against ``add`` one by one; the aggregator's
all-scores path against its policy path; the weighted sum's one-loop terms against the formula
they replace; inline call durations appended to the observer's lists (one per call, none for a
call not made); the runner's cheaper reads (the loop's clock, a record at a time, a plain dict's
fields) against what they stand for.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from aggregators import (
    FormulaAggregator,
    GateAggregator,
    MaxAggregator,
    MinAggregator,
    WeightedSumAggregator,
)
from aggregators._base import BaseAggregator, FunctionAggregator, reads_as_base
from graders import FunctionGrader
from rm_service._exceptions import MappingError
from rm_service._mapper import GraderConfig
from rm_service._metrics import GraderTimer, ServiceMetrics
from rm_service._result import GraderError, GraderScore, RecordResult
from rm_service._runner import GradingRunner
from rm_service._summary import ComponentStats, RunSummary
from rm_service._wire import record_json, record_status

# --- one walk: wire records, summary and metrics ------------------------------------------------


def _score(name: str, s: float, reason: str = "", **meta: Any) -> GraderScore:
    return GraderScore(name=name, score=s, reason=reason, metadata=meta)


def _record(i: int, comps: dict[str, Any], reward: str | None = "reward", rid: Any = None) -> Any:
    return RecordResult(index=i, id=rid, reward_name=reward, components=comps)


def _plain(i: int, s: float = 0.5) -> RecordResult:
    return _record(
        i,
        {"a": _score("a", s, "ra"), "b": _score("b", 1.0, think=3), "reward": _score("reward", s)},
        rid=f"r{i}",
    )


_ODD: list[RecordResult] = [
    _record(0, {"a": _score("a", 0.5), "reward": GraderError(name="reward", error="x")}),
    _record(1, {"a": GraderError(name="a", error="e", kind="timeout"), "reward": _score("r", 1)}),
    _record(2, {"a": _score("a", 0.5, usage={"prompt_tokens": 4, "completion_tokens": 2})}),
    _record(3, {"a": _score("a", 0.5, cached=True, usage={"prompt_tokens": 9})}, reward="a"),
    _record(4, {"a": _score("a", 0.5, cached=True)}, reward="a"),
    _record(5, {"a": _score("a", 0.5, usage="not a mapping")}, reward="a"),
    _record(6, {"a": _score("a", 0.25), "reward": _score("reward", 0.5)}, reward=None),
    _record(7, {"a": _score("a", 0.25)}, reward="missing"),
    _record(8, {"new": _score("new", -0.0), "reward": _score("reward", 0.0)}, rid=[1, {"k": 2}]),
    _record(9, {"a": GraderError(name="a", error="bad", kind="invalid_input")}, reward="a"),
]


def _general(
    results: list[RecordResult], metadata: bool
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines = [record_json(r, metadata=metadata) for r in results]
    summary = RunSummary.of(["a", "b", "reward"], "reward")
    summary.add_all(lines)
    return lines, summary.to_json()


def _metrics_text(results: list[RecordResult], fast: bool) -> bytes:
    metrics = ServiceMetrics()
    graders = {"a": None, "b": None, "new": None}
    summary = RunSummary.of(["a", "b", "reward"], "reward")
    _, scored = summary.add_results(results, metadata=False)
    if fast and scored is not None:
        metrics.observe_scored("rw", len(results), scored, graders)
    else:
        metrics.observe_results("rw", results, graders, record_status)
    return b"\n".join(line for line in metrics.render().splitlines() if b"_created" not in line)


@pytest.mark.parametrize("metadata", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_add_results_is_record_json_and_add_all(metadata: bool, seed: int) -> None:
    rng = random.Random(seed)
    pool = [_plain(i, rng.choice([0.0, 0.5, 1.0, rng.random()])) for i in range(20)] + _ODD
    results = rng.sample(pool, rng.randint(0, len(pool)))
    if seed == 0:
        results = [_plain(i) for i in range(20)]  # every record plain
    summary = RunSummary.of(["a", "b", "reward"], "reward")
    lines, scored = summary.add_results(results, metadata=metadata)
    want_lines, want_summary = _general(results, metadata)
    assert lines == want_lines
    assert [list(x) for x in lines] == [list(x) for x in want_lines]  # the same key order
    assert summary.to_json() == want_summary
    assert list(summary.to_json()["means"]) == list(want_summary["means"])
    every_plain = not any(r is odd for r in results for odd in _ODD)
    assert (scored is not None) == every_plain
    if scored is not None:
        for name, n in scored.items():
            assert n == sum(1 for line in lines if line["scores"].get(name) is not None)


def test_a_plain_records_line_is_its_own() -> None:
    """The plain path builds each line's dicts afresh, as ``record_json`` does."""
    lines, _ = RunSummary.of(["a"]).add_results([_plain(0), _plain(1)], metadata=False)
    for key in ("scores", "reasons", "errors", "usage", "metadata"):
        assert lines[0][key] is not lines[1][key]
    lines[0]["usage"]["calls"] = 5
    assert lines[1]["usage"]["calls"] == 0


@pytest.mark.parametrize(
    "results",
    [
        [_plain(i) for i in range(5)],
        [_plain(0), _ODD[0], _plain(1)],
        [_ODD[1], _plain(0)],  # a component first scored after its first error
        [_ODD[2], _ODD[3], _ODD[4], _plain(0)],  # judge calls: hits and tokens
        [_ODD[8], _plain(0)],  # a component no summary listed, first
        [],
    ],
)
def test_observe_scored_counts_what_observe_results_counts(results: list[RecordResult]) -> None:
    assert _metrics_text(results, fast=True) == _metrics_text(results, fast=False)


def test_observe_scored_keeps_the_order_components_were_first_seen() -> None:
    first = _record(0, {"b": _score("b", 1.0), "a": _score("a", 0.5), "reward": _score("r", 1)})
    text = _metrics_text([first, _plain(1)], fast=True).decode()
    assert text.index('grader="b"') < text.index('grader="a"')
    assert _metrics_text([first, _plain(1)], fast=False).decode() == text


# --- grouped sums ------------------------------------------------------------------------------


def _stats(scores: list[Any], grouped: bool) -> ComponentStats:
    stats = ComponentStats("x")
    if grouped:
        stats.add_all(scores)
    else:
        for s in scores:
            stats.add(s)
    return stats


@pytest.mark.parametrize("seed", range(20))
def test_grouped_sums_are_add_of_each(seed: int) -> None:
    rng = random.Random(seed)
    values = [0.0, -0.0, 1.0, 1, 0.5, 0.65, 1 / 3, rng.random(), 2**-70, True]
    n = rng.choice([1, 15, 16, 17, 64, 300])
    scores = [rng.choice(values[: rng.randint(1, len(values))]) for _ in range(n)]
    if seed % 4 == 0:
        scores = [rng.random() for _ in range(n)]  # mostly distinct: the list-wide path
    a, b = _stats(scores, True), _stats(scores, False)
    assert (a.n, a._sum, a._sq, a.hist, a.min, a.max) == (b.n, b._sum, b._sq, b.hist, b.min, b.max)
    assert (a.mean, a.std) == (b.mean, b.std)


def test_a_nan_among_repeats_raises_with_nothing_folded() -> None:
    stats = ComponentStats("x")
    stats.add_all([0.5] * 20)
    before = (stats.n, stats._sum, stats._sq, list(stats.hist))
    with pytest.raises(ValueError):
        stats.add_all([0.5] * 20 + [math.nan])
    assert (stats.n, stats._sum, stats._sq, stats.hist) == before


# --- aggregators: all scores, and the policy ---------------------------------------------------


class _Odd(BaseAggregator):
    def __init__(self, out: Any) -> None:
        super().__init__("odd", components=["a", "b"])
        self.out = out

    def combine(self, values: Mapping[str, float]) -> Any:
        if isinstance(self.out, Exception):
            raise self.out
        return self.out


class _Sub(GraderScore):
    pass


_AGGREGATORS: list[BaseAggregator] = [
    WeightedSumAggregator("w", {"a": 0.7, "b": 0.2, "c": 0.1}),
    WeightedSumAggregator("w0", {"a": 1, "b": 0}),
    WeightedSumAggregator("ws", {"a": 1, "b": 3}, on_error="skip"),
    MinAggregator("lo"),
    MaxAggregator("hi", ["a", "b"]),
    FormulaAggregator("f", "0.5 * a + 0.5 * min(b, c)"),
    GateAggregator("g", gate="a", threshold=0.5, inner="b"),
    *(
        _Odd(out)
        for out in (
            True,
            0.5,
            1,
            (0.5, "r"),
            (np.float32(0.5), "np"),
            (0.5, "r", {"m": 1}),
            (1.5, "r"),
            (math.nan, "r"),
            (0.5, 7),
            ("0.5", "r"),
            (0.5, "r", {"m": 1}, "x"),
            ValueError("cannot"),
            KeyError("bug"),
        )
    ),
]


@pytest.mark.parametrize("agg", _AGGREGATORS, ids=repr)
@pytest.mark.parametrize("scores", [(1.0, 1.0, 1.0), (0.0, 0.5, 1.0), (-0.0, 0.123, 0.9)])
def test_all_scores_path_is_the_policy_path(agg: BaseAggregator, scores: tuple[float, ...]) -> None:
    agg.bind(["a", "b", "c"])
    results = {
        n: GraderScore(name=n, score=s, reason=n) for n, s in zip("abc", scores, strict=True)
    }
    names = agg.components
    assert names is not None
    fast = _outcome(lambda: BaseAggregator.__call__(agg, results))  # the base's: a gate wraps it
    general = _outcome(lambda: agg._with_policy(results, names))
    assert type(fast) is type(general)
    assert fast == general
    if not isinstance(fast, tuple):
        assert fast.model_fields_set == general.model_fields_set


def _outcome(call: Any) -> Any:
    """What ``call()`` returns, or what it raised (a reason that is no ``str`` raises the
    model's error, on either path: the runner reports it as the aggregator's)."""
    try:
        return call()
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


def test_a_score_subclass_or_an_error_takes_the_policy() -> None:
    agg = WeightedSumAggregator("w", {"a": 1, "b": 1}, on_error="skip")
    sub = _Sub(name="a", score=0.5)
    out = agg({"a": sub, "b": GraderScore(name="b", score=1.0)})
    assert isinstance(out, GraderScore) and out.score == 0.75 and out.metadata == {}
    out = agg({"a": sub, "b": GraderError(name="b", error="e")})
    assert isinstance(out, GraderScore) and out.metadata == {"skipped": ["b"]}


def test_an_unbound_aggregator_given_nothing_has_nothing_to_combine() -> None:
    """No results and no components: the policy path's error, not ``combine({})``'s (a weighted
    sum's equal share of nothing divided by zero)."""
    out = WeightedSumAggregator("w")({})
    assert isinstance(out, GraderError)
    assert (out.error, out.kind) == ("no components to combine", "internal")


def _old_combine(agg: WeightedSumAggregator, values: Mapping[str, float]) -> tuple[float, str]:
    """The weighted sum's two comprehensions, before the one loop."""
    w = agg.weights
    assert w is not None
    s = math.fsum([wk * values[k] for k, wk in w.items()])
    reason = " + ".join([f"{wk:.3g}*{k}({values[k]:.3g})" for k, wk in w.items()])
    if s != 1.0 and s != 0.0:
        s = float(f"{s:.15g}")
    return s, reason


@pytest.mark.parametrize("seed", range(10))
def test_weighted_terms_in_one_loop_are_the_formula(seed: int) -> None:
    rng = random.Random(seed)
    weights = {f"c{i}": rng.choice([1, 2, 0.3, 7e-4]) for i in range(rng.randint(1, 6))}
    agg = WeightedSumAggregator("w", weights)
    agg.bind(list(weights))
    values = {k: rng.choice([0.0, -0.0, 1.0, rng.random()]) for k in weights}
    got = agg.combine(values)
    assert got == _old_combine(agg, values)
    assert math.copysign(1, got[0]) == math.copysign(1, _old_combine(agg, values)[0])


def test_only_an_aggregator_that_reads_as_the_base_gets_the_results_themselves() -> None:
    class Writes(BaseAggregator):
        def __call__(self, results: Mapping[str, Any]) -> Any:
            results["a"] = GraderScore(name="a", score=1.0)  # type: ignore[index]
            return GraderScore(name=self.name, score=1.0)

    class Combines(BaseAggregator):
        def combine(self, values: Mapping[str, float]) -> float:
            return 0.5

    def made(cls: type, *args: Any) -> Any:
        return cls(*args) if args else cls("n", components=["a"])

    assert reads_as_base(WeightedSumAggregator("w", {"a": 1}))
    assert reads_as_base(MinAggregator("m", ["a"])) and reads_as_base(made(Combines))
    assert reads_as_base(FormulaAggregator("f", "a"))
    assert not reads_as_base(GateAggregator("g", gate="a", threshold=0.5, inner="b"))
    assert not reads_as_base(FunctionAggregator(lambda results: 1.0, name="fn"))
    assert not reads_as_base(made(Writes))
    runner = GradingRunner(
        {"a": FunctionGrader(lambda response: 0.25, name="a")},
        aggregators=[Writes("writes"), Combines("reward")],
    )
    (rec,) = runner.grade([{"response": "x"}])
    assert rec.components["a"].score == 0.25  # type: ignore[union-attr]
    writes = rec.components["writes"]
    assert isinstance(writes, GraderError) and "read-only" in writes.error


# --- the runner's inline calls -------------------------------------------------------------------


class _Observer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, bool]] = []

    def started(self, grader: str) -> None:
        self.calls.append((grader, -1.0, True))

    def finished(self, grader: str, seconds: float, awaited: bool) -> None:
        self.calls.append((grader, seconds, awaited))


class _Lists(_Observer):
    def __init__(self) -> None:
        super().__init__()
        self.lists: dict[str, list[float]] = {}

    def _inline_sinks(self, graders: list[str]) -> list[list[float]]:
        return [self.lists.setdefault(g, []) for g in graders]


def _inline_runner() -> GradingRunner:
    return GradingRunner(
        {
            "x": FunctionGrader(lambda response: 0.5, name="x"),
            "gold": GraderConfig(
                FunctionGrader(lambda response, ref: 1.0, name="gold"), mapper={"ref": "m.g"}
            ),
            "y": FunctionGrader(lambda response: (0.25, "r"), name="y"),
        }
    )


_RECORDS = [{"response": "a", "m": {"g": 1}}, {"response": "b"}, {"response": "c", "m": {"g": 2}}]


def test_each_inline_call_is_one_duration_and_a_call_not_made_none() -> None:
    lists, plain = _Lists(), _Observer()
    a = asyncio.run(_inline_runner().agrade(_RECORDS, observer=lists))
    b = asyncio.run(_inline_runner().agrade(_RECORDS, observer=plain))
    assert a == b
    assert {k: len(v) for k, v in lists.lists.items()} == {"x": 3, "gold": 2, "y": 3}
    assert lists.calls == []  # appended, not reported call by call
    assert [(g, aw) for g, _, aw in plain.calls] == [
        (g, False) for g in ("x", "gold", "y", "x", "y", "x", "gold", "y")
    ]
    assert all(s >= 0.0 for v in lists.lists.values() for s in v)
    assert all(s >= 0.0 for _, s, _ in plain.calls)


async def test_a_deadline_past_times_no_call_and_the_histogram_counts_calls() -> None:
    metrics = ServiceMetrics()
    timer = GraderTimer(metrics)
    runner = _inline_runner()
    await runner.agrade(_RECORDS, observer=timer)
    metrics.flush()
    count = metrics.registry.get_sample_value
    assert count("rm_grader_call_duration_seconds_count", {"grader": "x"}) == 3
    assert count("rm_grader_call_duration_seconds_count", {"grader": "gold"}) == 2
    loop = asyncio.get_running_loop()
    real = loop.time
    now = real()
    # A clock that jumps past the deadline once the batch started: every call is skipped.
    ticks = iter([now] + [now + 100.0] * 100)
    loop.time = lambda: next(ticks)  # type: ignore[method-assign]
    try:
        out = await runner.agrade(_RECORDS, deadline=1.0, observer=timer)
    finally:
        del loop.time  # type: ignore[method-assign]
    assert loop.time() >= now
    for rec in out:  # a field that does not map is the record's fault, before the deadline
        kinds = {n: getattr(c, "kind", "scored") for n, c in rec.components.items()}
        assert kinds["x"] == kinds["y"] == "timeout"
        assert kinds["gold"] == ("invalid_input" if rec.index == 1 else "timeout")
    metrics.flush()
    assert count("rm_grader_call_duration_seconds_count", {"grader": "x"}) == 3  # none timed


def test_an_input_that_raises_keeps_the_records_before_it() -> None:
    def records() -> Any:
        yield {"response": "a", "m": {"g": 1}}
        yield {"response": "b"}
        raise OSError("disk gone")

    runner = _inline_runner()
    got: list[RecordResult] = []

    async def stream() -> None:
        async for rec in runner.astream(records()):
            got.append(rec)

    with pytest.raises(OSError, match="disk gone"):
        asyncio.run(stream())
    assert [r.index for r in got] == [0, 1]

    def interrupted() -> Any:
        yield {"response": "a"}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.grade(interrupted())


def test_fields_of_a_plain_dict_a_mapping_and_no_mapping() -> None:
    from types import MappingProxyType

    cfg = GraderConfig(FunctionGrader(lambda response: 1.0))
    record = {"response": "x"}
    assert cfg.fields(record) is record
    proxy = MappingProxyType(record)
    assert cfg.fields(proxy) == record and type(cfg.fields(proxy)) is dict
    with pytest.raises(MappingError, match="record is a list, not a JSON object"):
        cfg.fields([1], 3)
    mapped = GraderConfig(FunctionGrader(lambda response, ref: 1.0), mapper={"ref": "a.b"})
    assert mapped.fields(MappingProxyType({"a": {"b": 2}, "response": "y"}))["ref"] == 2
    assert mapped.fields({"a": {"b": 2}})["ref"] == 2


# --- the latency histogram's flush -----------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_a_flush_by_buckets_counts_each_value_in_its_first_bucket(seed: int) -> None:
    from bisect import bisect_left

    from rm_service._metrics import BulkHistogram

    bounds = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
    rng = random.Random(seed)
    hist = BulkHistogram("h", "doc", "g", bounds)
    want = [0] * (len(bounds) + 1)
    total: list[float] = []
    for _ in range(3):  # several flushes fold into the same counts
        values = [
            rng.choice([*bounds, 0.0, 1e-7, 200.0, rng.random() * rng.choice([0.01, 1, 100])])
            for _ in range(rng.randint(0, 40))
        ]
        if seed == 7:
            values.append(math.nan)  # the value-by-value path, as before
        for v in values:
            hist.observe("a", v)
            want[bisect_left(bounds, v)] += 1
        total.extend(values)
        hist.flush()
    if not total:
        return
    assert hist._counts["a"] == want
    got = hist._sums["a"]
    assert (math.isnan(got) and seed == 7) or got == pytest.approx(math.fsum(total))


@pytest.mark.parametrize("n", [1, 40])
def test_a_flush_whose_sum_fails_counts_first_as_before(n: int) -> None:
    from rm_service._metrics import BulkHistogram

    hist = BulkHistogram("h", "doc", "g", (0.005, 1.0))
    for v in [0.001] * n + [math.inf, -math.inf]:
        hist.observe("a", v)
    with pytest.raises(ValueError):
        hist.flush()
    assert hist._counts["a"] == [n + 1, 0, 1]
