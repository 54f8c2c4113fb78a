"""A judge's ``prepare_ahead``: the pre-gates of a batch computed ahead, gate by gate, unchanged.

``prepare_ahead`` only fills the gate-verdict memo (:func:`graders._pregate.warm_gate_memo`);
these tests check that every call then says exactly what it said without it (verdicts, reasons,
errors), that it asks each gate no more than the calls would have, and that what it cannot read
or what raises is left for the call to report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

import graders._pregate as pregate
from graders import CommitteeGrader, RelevanceGrader
from graders._base import contract, prepares_ahead
from graders._pregate import default_pregates
from rm_service import GraderConfig, GradingRunner
from rm_service._jobs import PREPARE_AHEAD
from rm_service._result import GraderError, GraderResult, GraderScore
from rm_service.models import OpenAIChatModel
from tests.graders.test_judge_hot_path import CountingGate
from tests.judge_server import JudgeServer
from tests.red_team import load_cases
from tests.support import verdict


def _records() -> list[dict[str, Any]]:
    """Every third red-team record (gate hits and honest controls) with no reasoning block,
    whose answer the gates would read as a second record."""
    return [
        {"query": case["query"], "response": case["response"]}
        for case in load_cases()[::3]
        if "<" not in case["response"] and case.get("query")
    ]


@pytest.fixture
def counted() -> Iterator[list[tuple[str, str]]]:
    """Every built-in relevance gate's checks, as ``(gate, response)``, in order."""
    pregate.clear_gate_memo()
    calls: list[tuple[str, str]] = []
    gates = default_pregates("relevance")
    for gate in gates:

        def check(response: str, fields: Any, _check: Any = gate.check, _n: str = gate.name) -> Any:
            calls.append((_n, response))
            return _check(response, fields)

        object.__setattr__(gate, "check", check)
    try:
        yield calls
    finally:
        for gate in gates:
            del gate.__dict__["check"]
        pregate.clear_gate_memo()


def _grader(server: JudgeServer) -> RelevanceGrader:
    server.responder = lambda body: verdict(4)
    model = OpenAIChatModel("judge", base_url=server.base_url, api_key="x", max_retries=0)
    return RelevanceGrader(model=model, cross_check="off")


def _no_judge() -> Any:
    raise AssertionError("no judge should be built: these records never reach one")


def _said(result: GraderResult) -> tuple[Any, ...]:
    if isinstance(result, GraderError):
        return ("error", result.kind, result.error)
    return ("score", result.score, result.reason, result.metadata.get("pregate"))


async def test_prepared_calls_say_what_unprepared_ones_said_and_ask_no_gate_again(
    judge_server: JudgeServer, counted: list[tuple[str, str]]
) -> None:
    grader = _grader(judge_server)
    records = _records()
    plain = [_said(await grader.aevaluate(**r)) for r in records]
    asked_plain = sorted(counted)
    assert any(s[0] == "score" and s[3] for s in plain)  # gate hits are in the set
    assert any(s[0] == "score" and not s[3] for s in plain)  # and judged answers

    pregate.clear_gate_memo()
    counted.clear()
    grader.prepare_ahead(records)
    asked_ahead = sorted(counted)
    prepared = [_said(await grader.aevaluate(**r)) for r in records]
    assert prepared == plain
    # Each gate was asked once per record, ahead, and exactly as the calls would have asked it
    # (stopping at a record's first hit); the calls found every verdict memoised.
    assert asked_ahead == asked_plain
    assert sorted(counted) == asked_plain


def test_prepare_stops_at_a_records_first_hit(counted: list[tuple[str, str]]) -> None:
    grader = RelevanceGrader(model=_no_judge, cross_check="off")
    names = [g.name for g in grader.pregates]
    grader.prepare_ahead([{"query": "What is 2 + 2?", "response": ":"}])
    asked = [n for n, _ in counted]
    assert asked == names[: names.index("master_key") + 1]


async def test_a_gate_that_raises_ahead_is_left_for_the_call_to_raise(
    counted: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    grader = RelevanceGrader(model=_no_judge, cross_check="off")
    gate = next(g for g in grader.pregates if g.name == "repetition")
    check = gate.check

    def broken(response: str, fields: Any) -> Any:
        if "BOOM" in response:
            raise ValueError("gate bug")
        return check(response, fields)

    monkeypatch.setitem(gate.__dict__, "check", broken)
    batch = [
        {"query": "Name a colour.", "response": "BOOM blue"},
        {"query": "Name a fruit.", "response": "An apple."},
    ]
    grader.prepare_ahead(batch)  # does not raise
    # the other record was warmed past the broken gate
    assert ("keyword_stuffing", "An apple.") in counted
    assert ("keyword_stuffing", "BOOM blue") not in counted
    result = await grader.aevaluate(**batch[0])
    assert isinstance(result, GraderError) and result.error == "ValueError: gate bug"


async def test_a_record_prepare_cannot_read_is_reported_by_its_call(
    judge_server: JudgeServer,
) -> None:
    grader = _grader(judge_server)
    batch: list[dict[str, Any]] = [
        {"query": "q"},  # no response
        {"query": "q", "response": [{"type": "image_url", "image_url": {"url": "x"}}]},
        {"query": "What is 2 + 2?", "response": "4"},
    ]
    grader.prepare_ahead(batch)
    results = [await grader.aevaluate(**r) for r in batch]
    assert [getattr(r, "kind", None) for r in results[:2]] == ["invalid_input", "invalid_input"]
    assert results[2].score is not None


def test_a_gate_of_another_type_is_left_for_the_call(counted: list[tuple[str, str]]) -> None:
    mine = CountingGate()
    gates = default_pregates("relevance")
    grader = RelevanceGrader(
        model=_no_judge, cross_check="off", pregates=[gates[0], mine, *gates[1:]]
    )
    grader.prepare_ahead([{"query": "Name a fruit.", "response": "An apple."}])
    assert mine.n == 0  # it may keep state: run once, by the call, in its place
    assert [n for n, _ in counted] == [gates[0].name]  # nothing after it is guessed


def test_a_committee_prepares_its_members(counted: list[tuple[str, str]]) -> None:
    members = [RelevanceGrader(model=_no_judge, cross_check="off", name=f"m{i}") for i in range(2)]
    committee = CommitteeGrader(graders=members, name="c")
    contract(committee).prepare_ahead([{"query": "Name a fruit.", "response": "An apple."}])
    assert ("master_key", "An apple.") in counted


def test_a_grader_without_prepare_is_prepared_as_a_no_op() -> None:
    class Bare:
        name = "bare"

        async def aevaluate(self, **fields: Any) -> GraderResult:
            raise AssertionError("not called")

    contract(Bare()).prepare_ahead([{"response": "x"}])  # no error, nothing called


# --- the runner ----------------------------------------------------------------------------------


class _Preparing:
    """An awaited grader that logs the batches it is prepared with (the indices it saw)."""

    def __init__(self, name: str = "p", fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.batches: list[list[int]] = []

    def prepare_ahead(self, batch: Sequence[Mapping[str, Any]]) -> None:
        self.batches.append([int(f["i"]) for f in batch])
        if self.fail:
            raise RuntimeError("prepare bug")

    async def aevaluate(self, **fields: Any) -> GraderResult:
        await asyncio.sleep(0)
        return GraderScore(name=self.name, score=1.0 if fields["i"] % 2 else 0.5)


@pytest.mark.parametrize("as_given", [list, iter], ids=["list", "iterator"])
async def test_the_runner_prepares_a_few_records_ahead_each_once(as_given: Any) -> None:
    grader = _Preparing()
    records = [{"i": i, "response": "x"} for i in range(3 * PREPARE_AHEAD + 5)]
    records[7] = "not an object"  # type: ignore[call-overload]  # fails to map: not prepared
    results = await GradingRunner({"p": grader}, max_concurrency=4).agrade(as_given(records))
    assert [len(b) for b in grader.batches] == [PREPARE_AHEAD - 1] + [PREPARE_AHEAD] * 2 + [5]
    assert [i for batch in grader.batches for i in batch] == [
        i for i in range(len(records)) if i != 7
    ]
    assert results[7].components["p"].kind == "invalid_input"
    assert [r.components["p"].score for r in results if r.index != 7] == [
        1.0 if i % 2 else 0.5 for i in range(len(records)) if i != 7
    ]


async def test_an_input_that_raises_after_a_read_ahead_is_raised_after_the_records_before_it() -> (
    None
):
    def records() -> Any:
        for i in range(20):
            yield {"i": i, "response": "x"}
        raise OSError("disk gone")

    grader = _Preparing()
    seen: list[int] = []
    with pytest.raises(OSError, match="disk gone"):
        async for rec in GradingRunner({"p": grader}, max_concurrency=4).astream(records()):
            seen.append(rec.index)
    assert sorted(seen) == list(range(20))  # every record read before the error was graded
    assert [i for batch in grader.batches for i in batch] == list(range(20))


async def test_a_prepare_that_raises_changes_no_result() -> None:
    records = [{"i": i, "response": "x"} for i in range(40)]
    broken = await GradingRunner({"p": _Preparing(fail=True)}).agrade(records)
    fine = await GradingRunner({"p": _Preparing()}).agrade(records)
    assert [r.components["p"].score for r in broken] == [r.components["p"].score for r in fine]


async def test_an_async_stream_or_a_callable_mapper_is_not_prepared() -> None:
    async def stream() -> Any:
        for i in range(20):
            yield {"i": i, "response": "x"}

    grader = _Preparing()
    await GradingRunner({"p": grader}).agrade(stream())
    assert grader.batches == []  # a slow producer is never waited for to fill a batch
    mapped = _Preparing()
    runner = GradingRunner({"p": GraderConfig(grader=mapped, mapper=lambda r: {**r, "i": r["i"]})})
    await runner.agrade([{"i": i, "response": "x"} for i in range(20)])
    assert mapped.batches == []  # the user's mapper runs once per record, in the call


async def test_graders_with_nothing_to_prepare_read_no_record_ahead() -> None:
    pulled = 0

    def source() -> Any:
        nonlocal pulled
        for i in range(40):
            pulled += 1
            yield {"i": i, "response": "x"}

    ahead: list[int] = []

    async def plain(i: int, response: str) -> float:
        ahead.append(pulled - i)
        await asyncio.sleep(0)
        return 1.0

    await GradingRunner({"plain": plain}, max_concurrency=1).agrade(source())
    assert max(ahead) == 1  # the record in hand only
    assert prepares_ahead(RelevanceGrader(model=_no_judge)) and not prepares_ahead(
        GraderConfig(plain).grader
    )
    committee = CommitteeGrader(graders=[RelevanceGrader(model=_no_judge)], name="c")
    assert prepares_ahead(committee) and prepares_ahead(_Preparing())
