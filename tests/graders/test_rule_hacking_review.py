"""Rule graders as a GRPO policy would game them: exploits found by review, each a regression test.

Every case here scored higher than it deserved before its fix:

* A unit after the answer's math (``<answer>$5$ cm</answer>``, ``\\boxed{5} cm``) went unseen by
  the math grader's unit check, and math-verify (which drops units) called it equal to ``5 m``.
* A unit hedge (``$5$ cm or $5$ m``, ``$5$ cm (0.05 m)``) was read as no unit, so one response
  matched a gold in either unit.
* The math grader shared one worker verdict between responses whose final parts read the same
  but whose units are checked differently (inside an ``<answer>`` block or in bare prose, ``$5$
  cm`` and ``$5$ m``): a tagged wrong unit scored 1.0 once another completion of the group wrote
  the same text untagged.
"""

from __future__ import annotations

from typing import Any

import pytest

from graders._math import MathGrader
from graders._math_units import unit_of
from rm_service import GraderScore
from rm_service._config import load_runner

DEFAULT_REWARD = "rm_service/defaults/reward.yaml"


async def score(grader: MathGrader, gold: Any, response: str) -> float:
    result = await grader.aevaluate(response=response, reference_response=gold)
    assert isinstance(result, GraderScore), result
    return result.score


def tagged(answer: str) -> str:
    return f"<think>working</think> <answer>{answer}</answer>"


@pytest.mark.parametrize(
    ("gold", "answer"),
    [
        ("5 m", "$5$ cm"),
        ("5 m", r"\(5\) cm"),
        ("5 m", r"\boxed{5} cm"),
        ("5 m", r"\boxed{5}\text{ cm}"),
        (r"\frac{1}{2} m", r"$\frac{1}{2}$ cm"),
        (r"3 \text{ minutes}", "$3$ hours"),
        ("5000 m", r"$5 \cdot 10^{3}$ cm"),
    ],
)
async def test_a_unit_after_the_answers_math_is_checked(gold: str, answer: str) -> None:
    assert await score(MathGrader(), gold, tagged(answer)) == 0.0


@pytest.mark.parametrize(
    "answer",
    [
        "$5$ cm or $5$ m",
        "5 cm or 5 m",
        "$5$ cm (or 5.0 m)",
        "$5$ cm (0.05 m)",
        r"\boxed{5} (cm or m)",
    ],
)
async def test_a_unit_hedge_matches_at_most_one_unit(answer: str) -> None:
    grader = MathGrader()
    scores = [await score(grader, gold, tagged(answer)) for gold in ("5 m", "5 cm")]
    assert sum(scores) <= 1.0, scores


@pytest.mark.parametrize(
    ("gold", "answer"),
    [
        ("5 m", "$5$ m"),
        ("5 m", r"\boxed{5} m"),
        ("5 m", r"\boxed{5}"),  # a unit on one side only changes nothing
        ("3", "$3$ hours"),
        ("5000 m", r"$5 \cdot 10^{3}$ m"),
        (r"6 \text{ days}", "6 days (144 hours)"),  # a restatement after the first unit
    ],
)
async def test_the_right_unit_after_the_math_still_scores(gold: str, answer: str) -> None:
    assert await score(MathGrader(), gold, tagged(answer)) == 1.0


def test_unit_of_reads_the_first_unit_and_names_a_hedge() -> None:
    assert unit_of("$5$ cm") == "cm"
    assert unit_of(r"\boxed{5} \text{ cm}") == "cm"
    assert unit_of(r"\boxed{5} (that is 0.05 m)") is None  # a later word is not the box's unit
    assert unit_of("6 days (144 hours)") == "day"
    assert unit_of("$5$ cm or $5.0$ m") == "cm or m"
    assert unit_of("no unit here: 5") is None


async def test_a_shared_check_never_skips_the_unit_check() -> None:
    """The untagged completion may score 1.0 (a unit in prose may be a remark's); the tagged
    one of the same group must still be unit-checked, in either order."""
    for untagged_first in (True, False):
        grader = MathGrader()
        responses = ["<think>w</think>5 cm", tagged("5 cm")]
        if not untagged_first:
            responses.reverse()
        for response in responses:
            result = await grader.aevaluate(response=response, reference_response="5 m")
            assert isinstance(result, GraderScore)
            if "<answer>" in response:
                assert result.score == 0.0, (untagged_first, result.reason)


async def test_shared_checks_of_one_answer_in_two_units_stay_apart() -> None:
    grader = MathGrader()
    assert await score(grader, "5 m", tagged("$5$ m")) == 1.0
    assert await score(grader, "5 m", tagged("$5$ cm")) == 0.0
    assert await score(grader, "5 m", tagged(r"\boxed{5} cm")) == 0.0


async def test_default_reward_gives_a_wrong_unit_no_correctness() -> None:
    runner = load_runner(DEFAULT_REWARD)
    records = [
        {"query": "How far?", "response": tagged(answer), "ground_truth": "5 m"}
        for answer in ("$5$ cm", "$5$ m")
    ]
    out = await runner.arun(records)
    correct, reward = out["correct"], out["reward"]
    assert all(isinstance(r, GraderScore) for r in (*correct, *reward)), out
    assert [getattr(r, "score", None) for r in correct] == [0.0, 1.0]
    assert [getattr(r, "score", None) for r in reward] == pytest.approx([0.3, 1.0])
