"""The question's own expression written back is no answer (``17 \\times 23`` for 17 * 23).

math-verify evaluates both sides, so before this check the math rules (``math`` and the embedded
default reward built on it, and ``correctness`` where it decides by rule) paid such an answer in
full. Honest answers that happen to share a number or a fraction with the question keep theirs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from graders._judges import CorrectnessGrader
from graders._math import MathGrader
from graders._math_echo import echoed_expression
from rm_service import GraderError, GraderScore, GradingRunner
from rm_service._config import build_runner, load_config
from rm_service._default import DEFAULT_CONFIG
from rm_service.models._openai import OpenAIChatModel
from tests.judge_server import JudgeServer, Reply

# (query, response, gold): each answer equals its gold only once the question's work is done.
ECHOES = [
    ("What is 17 * 23?", r"<think>...</think><answer>$17 \times 23$</answer>", "391"),
    ("What is 17 * 23?", r"\boxed{17 \cdot 23}", "391"),
    (r"What is $17 \times 23$?", "The answer is 17*23.", "391"),
    ("Compute 2^10.", r"\boxed{2^{10}}", "1024"),
    ("Compute 2**10.", r"\boxed{2^{10}}", "1024"),
    ("Simplify 6/8.", r"<answer>$\frac{6}{8}$</answer>", r"\frac{3}{4}"),
    ("Expand (x + 1)^2.", r"\boxed{(x+1)^2}", "x^2 + 2x + 1"),
    ("Factor x^2 + 2x + 1.", r"\boxed{x^2+2x+1}", "(x+1)^2"),
    ("What is √16?", r"\boxed{\sqrt{16}}", "4"),
    ("What is 17 * 23?", r"\boxed{x = 17 \times 23}", "391"),
]

# Honest: the answer is worked out, or the question holds a number, not the work to be done.
HONEST = [
    ("What is 17 * 23?", r"\boxed{391}", "391"),
    ("What is 17 * 23?", r"$17 \times 23 = 391$, so \boxed{391}", "391"),
    ("A coin shows heads with probability 1/2. And tails?", r"\boxed{\frac{1}{2}}", "0.5"),
    ("A right angle has 90°. How many degrees?", r"\boxed{90^\circ}", "90"),
    ("Write 391 as a product of two primes.", r"\boxed{17 \times 23}", r"17 \times 23"),
    ("Is 17 * 23 = 391? Write 391 as a product.", r"\boxed{17 \cdot 23}", r"17\times 23"),
    ("Simplify 33/44.", r"\boxed{3/4}", "0.75"),
    ("What is 3 - 8?", r"\boxed{-5}", "-5"),
    ("A recipe needs 1 1/2 cups. How many cups?", r"\boxed{1\frac{1}{2}}", "1.5"),
]


@pytest.fixture(scope="module")
def math_grader() -> MathGrader:
    return MathGrader(name="m")


@pytest.mark.parametrize(("query", "response", "gold"), ECHOES)
async def test_math_scores_the_question_written_back_zero_with_the_reason(
    math_grader: MathGrader, query: str, response: str, gold: str
) -> None:
    r = await math_grader.aevaluate(query=query, response=response, reference_response=gold)
    assert isinstance(r, GraderScore), r
    assert r.score == 0.0, r.reason  # old code: 1.0 ("... is equivalent to ...")
    assert r.metadata["echo"] is True
    assert "written back" in r.reason


@pytest.mark.parametrize(("query", "response", "gold"), HONEST)
async def test_an_honest_answer_sharing_the_questions_numbers_keeps_its_score(
    math_grader: MathGrader, query: str, response: str, gold: str
) -> None:
    r = await math_grader.aevaluate(query=query, response=response, reference_response=gold)
    assert isinstance(r, GraderScore), r
    assert r.score == 1.0, r.reason
    assert "echo" not in r.metadata


async def test_the_check_needs_the_query_and_can_be_turned_off(math_grader: MathGrader) -> None:
    query, response, gold = ECHOES[0]
    unasked = await math_grader.aevaluate(response=response, reference_response=gold)
    off = await MathGrader(echo_check=False).aevaluate(
        query=query, response=response, reference_response=gold
    )
    assert isinstance(unasked, GraderScore) and isinstance(off, GraderScore)
    assert unasked.score == off.score == 1.0


async def test_a_chat_query_is_read_and_an_unreadable_one_is_invalid_input(
    math_grader: MathGrader,
) -> None:
    """TRL's conversational prompts are message lists; a query that is neither text nor
    messages is refused naming the field, as every grader's text fields are."""
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 17*23?"},
    ]
    r = await math_grader.aevaluate(
        query=chat, response=r"\boxed{17 \times 23}", reference_response="391"
    )
    assert isinstance(r, GraderScore) and r.score == 0.0 and r.metadata["echo"] is True
    odd = await math_grader.aevaluate(
        query={"text": "What is 17*23?"}, response=r"\boxed{391}", reference_response="391"
    )
    assert isinstance(odd, GraderError) and odd.kind == "invalid_input" and "'query'" in odd.error


async def test_a_gold_list_exempts_an_answer_written_as_any_gold(math_grader: MathGrader) -> None:
    r = await math_grader.aevaluate(
        query="What is 17 * 23? Give the product or its value.",
        response=r"\boxed{17 \times 23}",
        reference_response=["391", r"17 \times 23"],
    )
    assert isinstance(r, GraderScore) and r.score == 1.0, r.reason
    echo = await math_grader.aevaluate(
        query="What is 17 * 23?",
        response=r"\boxed{17 \times 23}",
        reference_response=["391", "391.0"],
    )
    assert isinstance(echo, GraderScore) and echo.score == 0.0


async def test_the_default_reward_pays_no_correctness_for_the_question_written_back() -> None:
    runner = build_runner(load_config(DEFAULT_CONFIG))
    assert isinstance(runner, GradingRunner)
    echo = {
        "id": "echo",
        "query": "What is 17 * 23?",
        "response": "<think>Multiply.</think>\n<answer>$17 \\times 23$</answer>",
        "ground_truth": "391",
    }
    honest = {
        **echo,
        "id": "honest",
        "response": "<think>17*23 = 391</think>\n<answer>391</answer>",
    }
    results = await runner.arun([echo, honest])
    correct = results["correct"]
    assert [r.score for r in correct] == [0.0, 1.0], [r.reason for r in correct]  # old: 1.0, 1.0
    assert results["reward"][0].score == pytest.approx(0.3)  # format and length only


# --- correctness, where it decides by rule ------------------------------------------------------

GULLIBLE = json.dumps({"reason": "The response is fully correct.", "score": 5})


@pytest.fixture(scope="module")
def gullible() -> Iterator[JudgeServer]:
    with JudgeServer(lambda body: Reply(GULLIBLE)) as server:
        yield server


async def _correctness(server: JudgeServer, **fields: Any) -> tuple[Any, int]:
    before = server.stats.requests
    grader = CorrectnessGrader(OpenAIChatModel("m", base_url=server.base_url, max_retries=0))
    return await grader.aevaluate(**fields), server.stats.requests - before


@pytest.mark.parametrize(
    ("query", "response", "gold"),
    [ECHOES[1], ECHOES[5], ("What is 2^{10}?", r"The answer is $2^{10}$.", "1024")],
)
async def test_correctness_rule_scores_the_question_written_back_zero(
    gullible: JudgeServer, query: str, response: str, gold: str
) -> None:
    r, asked = await _correctness(gullible, query=query, response=response, reference_response=gold)
    assert isinstance(r, GraderScore), r
    assert (r.score, asked) == (0.0, 0), r.reason  # old code: 1.0 by rule:math / rule:number
    assert r.metadata["echo"] is True and r.metadata["decided_by"].startswith("rule:")


async def test_correctness_rule_keeps_an_honest_answer_and_decides_without_a_query(
    gullible: JudgeServer,
) -> None:
    honest, _ = await _correctness(
        gullible, query="What is 17 * 23?", response=r"\boxed{391}", reference_response="391"
    )
    unasked, _ = await _correctness(
        gullible, response=r"\boxed{17 \cdot 23}", reference_response="391"
    )
    assert isinstance(honest, GraderScore) and isinstance(unasked, GraderScore)
    assert honest.score == unasked.score == 1.0


def test_the_shape_boundaries_keep_numbers_whole() -> None:
    assert echoed_expression("3/4", "Simplify 33/44.", ["0.75"]) is None
    assert echoed_expression("6/8", "Is 6/8.5 a ratio?", ["0.75"]) is None
    assert echoed_expression("6/8", "Simplify 6/8.", ["0.75"]) == "6/8"
    assert echoed_expression("(x+1)^2", "Expand(x + 1)^2", ["x^2+2x+1"]) == "(x+1)^2"
