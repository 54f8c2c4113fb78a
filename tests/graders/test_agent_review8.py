"""Review of the agent graders: ``called_tool`` counted a call whose arguments no tool could
take (text that is not JSON, a list) as the tool having been called, so a policy earned it with
a malformed call; ``final_answer`` gave 0.0 to an honest fraction not in lowest terms (``2/4``
for the gold ``1/2``) as if it were arithmetic copied from the question, and to a fraction
that ends a sentence (``The answer is 1/2.``)."""

from __future__ import annotations

from typing import Any

import pytest

from graders import CalledToolGrader, FinalAnswerGrader
from rm_service._result import GraderScore
from tests.graders.test_agent_hacking_review import CALCULATE


def _called(arguments: Any, question: str = "What is 17 * 23?") -> list[dict[str, Any]]:
    call = {"type": "function", "function": {"name": "calculate", "arguments": arguments}}
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": "{'error': 'bad arguments'}"},
        {"role": "assistant", "content": "391"},
    ]


async def _score(grader: Any, **fields: Any) -> GraderScore:
    result = await grader.aevaluate(**fields)
    assert isinstance(result, GraderScore), result
    return result


# --- called_tool: a call with unreadable arguments is no call ----------------------------------


@pytest.mark.parametrize("arguments", ["garbage{{", '{"expression": ', "[1, 2]", [1, 2], None])
@pytest.mark.parametrize("tools", [[CALCULATE], ["calculate"], None])
async def test_called_tool_does_not_count_a_call_with_unreadable_arguments(
    arguments: Any, tools: Any
) -> None:
    fields: dict[str, Any] = {"messages": _called(arguments)}
    if tools is not None:
        fields["available_tools"] = tools
    result = await _score(CalledToolGrader(tool="calculate"), **fields)
    assert result.score == 0.0, result
    assert "did not call ['calculate']" in result.reason
    assert "call 0 (calculate): arguments are" in result.reason  # why it did not count
    assert result.metadata["called"] == []


async def test_called_tool_as_a_step_grader_reads_the_turns_own_calls_the_same_way() -> None:
    bad = [{"name": "calculate", "arguments": "not json"}]
    good = [{"name": "calculate", "arguments": '{"expression": "1+1"}'}]
    grader = CalledToolGrader(tool="calculate")
    assert (await _score(grader, tool_calls=bad)).score == 0.0
    assert (await _score(grader, tool_calls=good)).score == 1.0
    # one good call among bad ones is enough: the tool was called
    assert (await _score(grader, tool_calls=[*bad, *good])).score == 1.0


@pytest.mark.parametrize("arguments", ['{"expression": "17 * 23"}', {"expression": "17 * 23"}])
async def test_called_tool_still_counts_a_readable_call(arguments: Any) -> None:
    result = await _score(
        CalledToolGrader(tool="calculate"), messages=_called(arguments), available_tools=[CALCULATE]
    )
    assert result.score == 1.0 and result.metadata["called"] == ["calculate"], result


# --- final_answer: an equal fraction in other terms is the answer ------------------------------


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("2/4", "1/2"),
        ("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}"),
        ("The answer is 2/4.", "0.5"),
        ("The answer is 1/2.", "0.5"),  # a sentence's full stop: math-verify reads '1/2.'
        ("6/8", "3/4"),
        ("\\frac{4}{6}", "2/3"),
        ("1\\frac{2}{4}", "1.5"),  # a mixed number whose fraction is not reduced
        ("0.5", "1/2"),
    ],
)
async def test_final_answer_pays_an_honest_fraction_not_in_lowest_terms(
    answer: str, gold: str
) -> None:
    messages = [
        {"role": "user", "content": "What is 1/4 + 1/4? Answer with a fraction."},
        {"role": "assistant", "content": answer},
    ]
    result = await _score(FinalAnswerGrader(), messages=messages, reference_response=gold)
    assert result.score == 1.0, result


@pytest.mark.parametrize(
    ("question", "answer", "gold"),
    [
        ("Simplify 6/8.", "6/8", "3/4"),  # the question's fraction copied back
        ("Simplify $\\frac{6}{8}$.", "\\boxed{\\frac{6}{8}}", "3/4"),
        ("Reduce 10 / 4 to lowest terms.", "10/4", "5/2"),
        ("What is 24 divided by 2?", "24/2", "12"),  # a whole number as a division to do
    ],
)
async def test_final_answer_still_refuses_a_fraction_still_to_be_worked_out(
    question: str, answer: str, gold: str
) -> None:
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    result = await _score(FinalAnswerGrader(), messages=messages, reference_response=gold)
    assert result.score == 0.0, result
    # a division to do is unevaluated; the question's own fraction, the question written back
    assert result.metadata.get("unevaluated") or result.metadata.get("echo"), result


async def test_final_answer_pays_a_question_fraction_that_is_the_gold_itself() -> None:
    messages = [
        {"role": "user", "content": "Which is larger, 2/4 or 1/3?"},
        {"role": "assistant", "content": "2/4"},
    ]
    result = await _score(FinalAnswerGrader(), messages=messages, reference_response="2/4")
    assert result.score == 1.0, result
