"""The engine's promises where grader or aggregator code hands it something odd.

Found by a review of the runner and the aggregators: a score object built without its check, a
score that is a bool or a string, an aggregator that rewrites the record's results, an interrupt
in a grader beside an async one, a status that blamed the data for a judge's timeout, and an
``Unscored`` of an unknown kind.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from typing import Any

import pytest

from aggregators import WeightedSumAggregator
from graders import FunctionGrader, Unscored
from rm_service import GraderError, GraderScore, GradingRunner
from rm_service._result import GraderResult
from rm_service._wire import record_from_json, record_json


class _Bonus:
    """A grader that only implements the protocol (no ``BaseGrader``): its result reaches the
    runner as it is."""

    name = "bonus"
    required_fields = ("response",)
    optional_fields: tuple[str, ...] = ()

    def __init__(self, value: float) -> None:
        self.value = value

    async def aevaluate(self, **fields: Any) -> GraderResult:
        base = GraderScore(name=self.name, score=0.5)
        return base.model_copy(update={"score": self.value})


@pytest.mark.parametrize("value", [1.25, -0.5, math.nan, math.inf])
async def test_a_score_object_built_without_its_check_is_unscored_not_clipped(
    value: float,
) -> None:
    """``score.model_copy(update={"score": s + 0.25})`` skips the model's check. Whether a
    grader function, a protocol grader or a custom aggregator returns it, the component is an
    ``internal`` error and the reward is unscored: never 1.0 by a clip, never NaN marked ok."""

    def copied(response: str) -> GraderScore:
        return GraderScore(name="x", score=0.5).model_copy(update={"score": value})

    def agg(results: Mapping[str, GraderResult]) -> GraderScore:
        return GraderScore(name="agg", score=0.5).model_copy(update={"score": value})

    cases: list[tuple[dict[str, Any], list[Any] | None, str]] = [
        ({"copied": copied, "ok": lambda response: 1.0}, None, "copied"),
        ({"bonus": _Bonus(value), "ok": lambda response: 1.0}, None, "bonus"),
        ({"ok": lambda response: 1.0}, [agg], "agg"),
    ]
    for graders, aggregators, bad in cases:
        runner = GradingRunner(graders, aggregators=aggregators)
        rec = (await runner.agrade([{"response": "r"}]))[0]
        err = rec.components[bad]
        assert isinstance(err, GraderError) and err.kind == "internal", err
        assert "not a reward in [0, 1]" in err.error
        assert rec.reward is None and rec.status == "unscored"
        wire = record_json(rec)
        assert wire["reward"] is None and wire["status"] == "unscored"


def test_the_weighted_sum_clips_rounding_only() -> None:
    """A convex combination can land a rounding error outside [0, 1] (clipped back); a value
    further out is not rounding, and the aggregate is unscored rather than clipped."""
    agg = WeightedSumAggregator("reward", {"a": 1.0, "b": 1.0})
    agg.bind(["a", "b"])
    near = agg({"a": GraderScore(name="a", score=1.0), "b": GraderScore(name="b", score=1.0)})
    assert isinstance(near, GraderScore) and near.score == 1.0
    far = agg(
        {
            "a": GraderScore(name="a", score=1.0).model_copy(update={"score": 1.5}),
            "b": GraderScore(name="b", score=1.0),
        }
    )
    assert isinstance(far, GraderError) and "not in [0, 1]" in far.error


@pytest.mark.parametrize("value", [True, False, "0.9", b"1", "1e-0"])
def test_a_score_is_a_number_not_a_bool_or_text(value: Any) -> None:
    """``GraderScore(score=True)`` or ``"0.9"`` is refused where it is built, and so is a
    remote server's answer that carries one (the TRL, verl and OpenRLHF remote backends read
    answers through ``record_from_json``, whose callers treat a ``ValueError`` as a malformed
    answer)."""
    with pytest.raises(ValueError):
        GraderScore(name="x", score=value)
    with pytest.raises(ValueError):
        record_from_json({"scores": {"reward": value}}, 0, "reward")
    assert GraderScore(name="x", score=1).score == 1.0  # an int is a number


async def test_an_aggregator_cannot_rewrite_or_drop_a_component() -> None:
    """An aggregator gets the record's results read-only: one that "fills" a judge's error with
    0.0 cannot fake that component's score, and one that drops a key cannot fail the batch. Its
    attempt makes its own result an ``internal`` error, named."""

    async def judge(response: str) -> float:
        raise Unscored("judge endpoint 503", kind="judge_error")

    def fill(results: Any) -> float:
        results["judge"] = GraderScore(name="judge", score=0.0)
        return 0.0

    def drop(results: Any) -> float:
        del results["judge"]
        return 0.0

    runner = GradingRunner({"judge": judge, "ok": lambda response: 1.0}, aggregators=[fill, drop])
    recs = await runner.agrade([{"response": str(i)} for i in range(20)])
    assert len(recs) == 20
    for rec in recs:
        judged = rec.components["judge"]
        assert isinstance(judged, GraderError) and judged.kind == "judge_error"
        for name in ("fill", "drop"):
            err = rec.components[name]
            assert isinstance(err, GraderError) and err.kind == "internal", err


_INTERRUPT = textwrap.dedent(
    """
    import asyncio, sys
    from rm_service import GradingRunner

    calls = {"n": 0}

    def boom(response):
        calls["n"] += 1
        if calls["n"] == 50:
            raise EXC
        return 1.0

    async def slow(response):
        await asyncio.sleep(0.005)
        return 0.5

    graders = {"boom": boom, "slow": slow} if sys.argv[1] == "mixed" else {"boom": boom}
    runner = GradingRunner(graders, max_concurrency=8)
    seen = []

    async def main():
        try:
            await runner.agrade([{"response": str(i)} for i in range(1000)])
        except BaseException as exc:
            seen.append(type(exc).__name__)
            raise
        finally:
            seen.append("finally")

    try:
        asyncio.run(main())
    except BaseException:
        pass
    print("seen", seen, flush=True)
    """
)


@pytest.mark.parametrize("exc", ["KeyboardInterrupt", "SystemExit(3)"])
@pytest.mark.parametrize("mode", ["inline", "mixed"])
def test_an_interrupt_in_a_grader_reaches_the_caller(mode: str, exc: str) -> None:
    """A Ctrl-C (or ``sys.exit``) landing in a sync grader while an async grader runs beside it
    reaches the task that awaits the runner, whose ``except`` and ``finally`` run (the command
    line flushes its output there), as on the all-inline path; no task is left pending."""
    out = subprocess.run(
        [sys.executable, "-c", _INTERRUPT.replace("EXC", exc), mode],
        capture_output=True,
        text=True,
        timeout=60,
    )
    name = exc.split("(")[0]
    assert f"seen ['{name}', 'finally']" in out.stdout, out.stdout + out.stderr
    assert "Task was destroyed but it is pending" not in out.stderr
    assert "was never retrieved" not in out.stderr


async def test_the_status_follows_the_reward_not_a_monitor() -> None:
    """A reward unscored by a judge's timeout is ``unscored`` (retry may help), even when a
    monitor grader the reward does not read lacks its field; a reward that failed on a missing
    field is ``error`` (fix the data)."""

    async def judge(response: str) -> float:
        raise Unscored("judge timed out after 30 s", kind="timeout")

    def tools(messages: Any) -> float:
        return 1.0

    runner = GradingRunner(
        {"judge": judge, "tools": tools},
        aggregators=WeightedSumAggregator("reward", {"judge": 1.0}),
    )
    rec = (await runner.agrade([{"response": "x"}]))[0]
    assert rec.components["tools"].kind == "invalid_input"  # type: ignore[union-attr]
    assert rec.status == "unscored"
    runner = GradingRunner(
        {"judge": judge, "tools": tools},
        aggregators=WeightedSumAggregator("reward", {"judge": 1.0, "tools": 1.0}),
    )
    assert (await runner.agrade([{"response": "x"}]))[0].status == "error"


async def test_an_unscored_of_an_unknown_kind_is_an_internal_error() -> None:
    """``Unscored("...", kind="refusal")`` (no such kind) or a reason that is not text: the
    grader's ``aevaluate`` returns an ``internal`` error that shows what was raised, as its
    contract says; it does not raise a validation error."""

    async def refusal(response: str) -> float:
        raise Unscored("judge refused", kind="refusal")  # type: ignore[arg-type]

    def not_text(response: str) -> float:
        raise Unscored(RuntimeError("boom"))  # type: ignore[arg-type]

    for func in (refusal, not_text):
        out = await FunctionGrader(func).aevaluate(response="x")
        assert isinstance(out, GraderError) and out.kind == "internal"
        assert "Unscored(" in out.error


async def test_a_record_of_long_texts_is_graded_off_the_event_loop() -> None:
    """A rule grader over megabytes of text can take seconds (a regex, a number scan): run on
    the loop it stalled every other request and the service's health probe. A record over
    ``BIG_RECORD_CHARS`` of text, nested content included, is graded in a worker thread (the
    batch deadline checked there too) when its inline graders are thread-safe, as the built-in
    rule graders are; a small record stays on the loop, and so does a user's plain function,
    which may not survive a thread (``signal.alarm``, a connection)."""
    import asyncio
    import itertools
    import threading
    import time

    from graders import BaseGrader

    big = 1_000_000  # over the runner's threshold (``rm_service._jobs.BIG_RECORD_CHARS``)
    where: dict[int, bool] = {}

    def size(response: Any) -> int:
        return len(response) if isinstance(response, str) else len(response[0]["text"])

    class Scan(BaseGrader):
        inline = True
        thread_safe = True

        async def _aevaluate(self, response: Any) -> float:
            where[size(response)] = threading.current_thread() is threading.main_thread()
            time.sleep(0.5 if size(response) >= big else 0)  # noqa: ASYNC251  (a blocking scan)
            return 1.0

    def user_scan(response: Any) -> float:
        where[size(response)] = threading.current_thread() is threading.main_thread()
        return 1.0

    async def ticker(ticks: list[float]) -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    nested = [{"type": "text", "text": "x" * big}]  # multi-part content
    for graders in ({"scan": Scan(name="scan")}, {"scan": Scan(name="scan"), "judge": _Bonus(0.5)}):
        for long in ("x" * big, nested):
            runner = GradingRunner(graders)
            ticks: list[float] = []
            tick = asyncio.ensure_future(ticker(ticks))
            where.clear()
            recs = await runner.agrade([{"response": long}, {"response": "y"}], deadline=60)
            tick.cancel()
            assert [r.components["scan"].score for r in recs] == [1.0, 1.0]  # type: ignore[union-attr]
            assert where == {big: False, 1: True}  # the big one in a thread
            gaps = [b - a for a, b in itertools.pairwise(ticks)]
            assert ticks and max(gaps, default=0) < 0.25  # the loop kept turning meanwhile
    where.clear()
    await GradingRunner({"scan": user_scan}).agrade([{"response": "x" * big}])
    assert where == {big: True}  # a user's function: on the loop, as it always was


async def test_threads_a_timeout_gave_up_on_still_count_against_max_concurrency() -> None:
    """A ``run_in_thread`` grader past its ``call_timeout`` is unscored at once, but its thread
    runs on (no thread can be stopped): the runner held its slot only for the call, so with
    ``max_concurrency=2`` six threads ran at once. The slot is now kept until the thread ends."""
    import threading
    import time

    from rm_service import GraderConfig

    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def slow(response: str) -> float:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return 1.0

    grader = FunctionGrader(slow, run_in_thread=True)
    runner = GradingRunner(
        {"slow": GraderConfig(grader, call_timeout=0.02), "ok": _Bonus(0.5)}, max_concurrency=2
    )
    recs = await runner.agrade([{"response": str(i)} for i in range(8)])
    assert [r.components["slow"].kind for r in recs] == ["timeout"] * 8  # type: ignore[union-attr]
    assert state["peak"] <= 2, state


def test_a_summary_is_the_same_whatever_order_the_records_finish_in() -> None:
    """Records finish in whatever order judges and workers answer. A running (Welford) mean
    rounds differently per order: the main job's ``format`` mean of exactly 0.84375 printed
    0.8438 in one run and 0.8437 in another. Sums kept exactly give one figure."""
    import random

    from rm_service._summary import ComponentStats

    rng = random.Random(7)
    for scores in ([1.0] * 27 + [0.0] * 5, [rng.random() for _ in range(1000)]):
        seen = set()
        for _ in range(40):
            rng.shuffle(scores)
            stats = ComponentStats("x")
            for s in scores:
                stats.add(s)
            seen.add((stats.mean, stats.std))
        assert len(seen) == 1, seen


def test_a_summary_is_exact_equal_scores_have_no_spread() -> None:
    """A thousand scores of 0.1 have a std of 0, not the 1.3e-09 that float sums left over,
    and the mean and std equal ``statistics``' exact ones."""
    import random
    import statistics

    from rm_service._summary import ComponentStats

    for scores in ([0.1] * 1000, [0.7] * 33, [random.Random(3).random() for _ in range(500)]):
        stats = ComponentStats("x")
        for s in scores:
            stats.add(s)
        assert stats.mean == statistics.fmean(scores)
        assert stats.std == statistics.pstdev(scores)


def test_a_summary_of_a_file_with_scores_outside_0_1_does_not_fail() -> None:
    """``summarize_jsonl`` reads any output file, edited ones too: a score of -2.25 failed the
    whole summary with an IndexError (its histogram bin), and -0.5 was counted in a bin near 1."""
    import json

    from rm_service._summary import BINS, summarize_jsonl

    lines = [
        json.dumps({"line": i, "status": "ok", "scores": {"r": v}})
        for i, v in enumerate([0.5, -2.25, -0.5, 7.0])
    ]
    stats = summarize_jsonl(lines).components["r"]
    assert stats.hist[0] == 2 and stats.hist[-1] == 1 and sum(stats.hist) == 4
    assert stats.hist[BINS // 2] == 1
    assert stats.mean == (0.5 - 2.25 - 0.5 + 7.0) / 4
    assert (stats.min, stats.max) == (-2.25, 7.0)
