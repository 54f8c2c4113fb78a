"""The correctness rule decided ahead (``decide_ahead``, from a correctness grader's
``prepare_ahead``) gives the call what deciding in the call gives, once, and only for what the
text rules decide (issue 14: client CPU per call)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import graders._verify as verify
from graders import CorrectnessGrader, MathGrader
from graders._pregate import clear_gate_memo
from rm_service import GraderConfig, GradingRunner
from rm_service.models import OpenAIChatModel

DATA = Path(__file__).resolve().parents[1] / "data"


def _pairs() -> list[tuple[str, str]]:
    """Responses around each gold/prediction of the math set, and choice and exact golds."""
    pairs: list[tuple[str, str]] = []
    for line in (DATA / "math_equiv.jsonl").read_text().splitlines():
        case = json.loads(line)
        gold, pred = str(case["gold"]), str(case["pred"])
        pairs += [
            (pred, gold),
            (f"The answer is {pred}.", gold),
            (f"So we get $\\boxed{{{pred}}}$", gold),
            (f"<think>try 7 and {gold}</think>\n{pred}", gold),
            (f"It is {pred}, or maybe 12.", gold),
        ]
    pairs += [
        ("The correct option is B.", "B"),
        ("Answer: (c) Paris", "C) Paris"),
        ("paris", "Paris"),
        ("<think>never closed", "42"),
        ("The answer is 42.", "It is the meaning of life, roughly speaking, in the book."),
    ]
    return pairs


@pytest.fixture()
def math_grader() -> MathGrader:
    return MathGrader(name="t.verify")


@pytest.fixture(autouse=True)
def _empty() -> Any:
    verify._ruled.clear()
    yield
    verify._ruled.clear()


async def test_a_decision_made_ahead_is_the_one_the_call_makes(math_grader: MathGrader) -> None:
    kept = 0
    for response, reference in _pairs():
        verify.decide_ahead(response, reference)
        ahead = verify._ruled.get((response, reference))
        if ahead is None:
            continue  # math-verify's to check: left for the call
        kept += 1
        verify._ruled.clear()
        assert await verify.decide(response, reference, math_grader) == ahead
    assert kept > 1000  # most of the set is decided by the text rules


async def test_the_call_takes_its_decision_once(math_grader: MathGrader) -> None:
    verify.decide_ahead("The answer is 42.", "42")
    first = await verify.decide("The answer is 42.", "42", math_grader)
    assert ("The answer is 42.", "42") not in verify._ruled
    assert await verify.decide("The answer is 42.", "42", math_grader) == first
    assert first[1].score == 1.0


def test_math_checks_and_long_texts_are_left_for_the_call() -> None:
    verify.decide_ahead("So the answer is $(x+1)^2$.", "x^2 + 2x + 1")  # math-verify's
    long = "Working: " + "1 + 1 = 2. " * (verify.OFFLOAD_CHARS // 10) + "The answer is 2."
    verify.decide_ahead(long, "2")  # read off the event loop, by the call
    assert verify._ruled == {}


def test_a_rule_that_raises_is_left_for_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(final: str, ref: object) -> None:
        raise RuntimeError("a bug in a rule")

    monkeypatch.setattr(verify, "_decide_by_text", broken)
    verify.decide_ahead("The answer is 42.", "42")
    assert verify._ruled == {}


def test_the_kept_decisions_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "_RULED_KEPT", 8)
    for i in range(20):
        verify.decide_ahead(f"The answer is {i}.", str(i))
    assert 0 < len(verify._ruled) <= 8


async def test_a_run_gives_what_unprepared_calls_give() -> None:
    """A correctness grader through the runner (records read ahead and prepared) against the
    same grader called record by record with nothing prepared. Its judge is unreachable: a
    record the rule cannot decide is unscored the same way on both paths."""
    judge = OpenAIChatModel(
        model="m", base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0, timeout=2
    )
    grader = CorrectnessGrader(model=judge)
    records = [
        {"query": f"Q{i}: what is it?", "response": r, "reference_response": g}
        for i, (r, g) in enumerate(_pairs()[:600])
    ]
    records += [  # gated before the rule: nothing is kept for them
        {"query": "What is 6 * 7?", "response": "What is 6 * 7?", "reference_response": "42"},
        {"query": "Name it.", "response": "", "reference_response": "42"},
    ]
    runner = GradingRunner({"c": GraderConfig(grader=grader)}, max_concurrency=8)
    clear_gate_memo()
    ran = await runner.arun(records)
    assert verify._ruled == {}  # every decision made ahead was taken by its call
    clear_gate_memo()
    alone = [await grader.aevaluate(**r) for r in records]
    assert verify._ruled == {}

    def view(r: Any) -> Any:
        meta = {k: v for k, v in getattr(r, "metadata", {}).items() if k != "latency_s"}
        return (type(r).__name__, getattr(r, "score", None), r.reason if hasattr(r, "reason")
                else r.error, getattr(r, "kind", None), meta)  # fmt: skip

    assert [view(r) for r in ran["c"]] == [view(r) for r in alone]
