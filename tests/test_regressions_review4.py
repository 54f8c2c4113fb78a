"""Regressions found reviewing 226d56f..5f0083c.

* The unit pattern of c76712b (``_UNIT_AFTER``) read a ``\\text{...}`` unit with two
  overlapping runs (``[A-Za-z]+`` then ``[^{}]*``): quadratic in a run of letters with no
  closing brace. ``answer_unit`` now runs in the service's process for every single-gold math
  check (the shared check's key), so a 100k-character response of ``1\\text{aaa...`` held the
  event loop for about 40 s, and every request of the service with it.
* c76712b reads a unit after the answer's math (``}``, ``$``, ``(``, ``\\)``): the English
  "in" after it was read as inches, and an honest ``\\boxed{12} in total``, ``$12$ in
  centimetres`` scored 0 against a gold of ``12 cm`` ("the units differ: cm and in").
* c76712b took the first of several units for the answer's. In prose math-verify reads the last
  number: ``<answer>500 cm, i.e. 5 m</answer>`` and ``<answer>2 kg = 2000 g</answer>`` scored 0
  against golds of ``5 m`` and ``2000 g``, with the unit of a number nobody compared. The unit
  now is that of the number math-verify read, where one number of that value has one.
* 5f0083c compared a request's deadline with ``queue_timeout`` unguarded: an app built with
  ``ServiceSettings(queue_timeout=None)`` (no queue limit, which ``admit`` handled before)
  raised ``TypeError`` on every ``/grade`` and ``/get_reward``.
"""

from __future__ import annotations

import time

import pytest

from graders._math import MathGrader
from graders._math_answer_units import answer_unit
from graders._math_units import unit_of
from graders._math_worker import check_equivalence, check_golds
from rm_service import GraderScore
from tests.app import client, make_app


def test_a_text_unit_with_no_closing_brace_is_read_in_linear_time() -> None:
    """30k letters took ~4 s (quadratic: 100k, ~40 s, on the event loop); now milliseconds."""
    for response in (
        "<answer>1\\text{" + "a" * 30_000 + "</answer>",
        "\\boxed{1\\text{" + "a" * 30_000,
    ):
        start = time.perf_counter()
        assert answer_unit(response) is None
        assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(
    ("gold", "response"),
    [
        ("12 cm", "The answer is \\boxed{12} in total."),
        ("12 cm", "The length is \\boxed{12} (in centimetres)."),
        ("12 cm", "<answer>$12$ in centimetres</answer>"),
        ("12 \\text{ meters}", "So \\boxed{12} In meters."),
        ("2 \\text{ cm}", "<answer>\\(2\\) in both cases</answer>"),
    ],
)
def test_in_after_the_answer_s_math_is_a_word_not_inches(gold: str, response: str) -> None:
    assert check_equivalence(gold, response)["status"] == "equal"


def test_inches_are_still_read_where_they_are_written_as_a_unit() -> None:
    assert unit_of("12 in") == "in"
    assert unit_of("\\boxed{12}\\text{ in}") == "in"
    assert unit_of("\\boxed{12 \\text{ in}}") == "in"
    assert check_equivalence("12 cm", "\\boxed{12}\\text{ in}")["status"] == "not_equal"


@pytest.mark.parametrize(
    ("gold", "response"),
    [
        ("5 m", "<answer>500 cm, i.e. 5 m</answer>"),
        ("5 m", "<answer>$500$ cm $= 5$ m</answer>"),
        ("5 m", "<answer>500 cm = 5 m</answer>"),
        ("2000 \\text{ g}", "<answer>2 kg = 2000 g</answer>"),
        ("3 hours", "<answer>It takes 180 min, that is 3 hours</answer>"),
    ],
)
def test_the_unit_checked_is_that_of_the_number_math_verify_read(gold: str, response: str) -> None:
    assert check_equivalence(gold, response)["status"] == "equal"
    assert check_golds([gold], response, 5.0)["status"] == "equal"


@pytest.mark.parametrize(
    ("gold", "response"),
    [
        ("5 m", "<answer>$5$ cm (0.05 m)</answer>"),  # c76712b's cases stay 0
        ("5 m", "<answer>$5$ cm or $5$ m</answer>"),
        ("5 cm", "<answer>$5$ cm or $5$ m</answer>"),
        ("5 m", "<answer>$5$ cm</answer>"),
        ("5 m", "\\boxed{5} cm"),
        ("500 cm", "<answer>$500$ cm $= 5$ m</answer>"),
    ],
)
def test_a_unit_that_differs_still_scores_0(gold: str, response: str) -> None:
    assert check_equivalence(gold, response)["status"] == "not_equal"
    assert check_golds([gold], response, 5.0)["status"] == "not_equal"


async def test_the_math_grader_scores_an_honest_prose_answer_1() -> None:
    """Through the grader (its shared check's key and the worker): honest answers scored 0."""
    grader = MathGrader()
    for gold, response in [
        ("5 m", "<think>x</think><answer>500 cm, i.e. 5 m</answer>"),
        ("12 cm", "<think>x</think>The answer is \\boxed{12} in total."),
        ("5 m", "<think>x</think><answer>$5$ cm (0.05 m)</answer>"),
    ]:
        result = await grader.aevaluate(response=response, reference_response=gold)
        assert isinstance(result, GraderScore), result
        assert result.score == (0.0 if "0.05" in response else 1.0), (gold, response, result)


async def test_no_queue_timeout_with_a_deadline_grades() -> None:
    app = make_app(
        {"a": {"graders": {"n": {"type": "length_penalty", "max_len": 5}}}}, queue_timeout=None
    )
    async with client(app) as c:
        graded = await c.post("/grade", json={"records": [{"response": "x"}], "deadline": 5})
        reward = await c.post("/get_reward", json={"query": ["x"]})
    assert graded.status_code == 200, graded.text
    assert graded.json()["results"][0]["reward"] == 1.0
    assert reward.status_code == 200, reward.text
    assert reward.json()["rewards"] == [1.0]


async def test_the_service_s_process_reads_a_unit_only_for_a_shared_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """c76712b read the answer's unit on the event loop for every math check, shared or not:
    a final part of 100k characters with 24k numbers held the loop ~60 ms a record (its answer
    key, all the loop read before, ~0.4 ms). A check too long to share needs no unit there."""
    import graders._math as math_grader

    calls: list[str] = []

    def counted(response: str) -> str | None:
        calls.append(response)
        return answer_unit(response)

    monkeypatch.setattr(math_grader, "answer_unit", counted)
    grader = MathGrader()
    long = "<answer>" + "1 m " * 24_000 + "</answer>"
    result = await grader.aevaluate(response=long, reference_response="5 m")
    assert isinstance(result, GraderScore) and result.score == 0.0, result
    assert calls == []
    short = "<answer>$5$ cm</answer>"  # shared: its unit is part of the key
    result = await grader.aevaluate(response=short, reference_response="5 m")
    assert isinstance(result, GraderScore) and result.score == 0.0, result
    assert calls == [short]
