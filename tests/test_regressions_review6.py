"""Regressions of bb89919 (agent graders against reward hacking), each an honest rollout that
the commit began to score 0 or leave unscored:

* ``final_answer``'s "is the answer a number" check refused numbers math-verify had read as
  equal to the gold: ``\\text{391}`` (what ``\\boxed{\\text{391}}``, ``\\mathbf{391}`` and
  ``\\textbf{391}`` become), a Unicode minus (``−5``), a degree sign (``90°``), ``\\cdot``
  scientific notation, ``≈`` (only ``=`` stated a number), ``2 / 3`` and ``(1/2)`` (math-verify
  keeps them as written), a signed numerator (``\\frac{-1}{2}``) and a mixed number
  (``1\\frac{1}{2}``): each scored 0.0 as "an expression still to be worked out";
* ``called_tool`` read ``available_tools`` through the schema check, so a list of tool names,
  or a numpy array (a parquet column), made every row ``invalid_input``;
* ``valid_tool_calls`` checked nested schemas but refused JSON Schema's boolean schemas
  (``"items": false`` closes a tuple), so a valid tool schema made every row ``invalid_input``;
* ``max_turns`` refused a numpy integer ``turn`` (a parquet column) as "not a turn index".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from graders import CalledToolGrader, FinalAnswerGrader, MaxTurnsGrader, ValidToolCallsGrader
from rm_service._result import GraderError, GraderScore
from tests.graders.test_agent_hacking_review import CALCULATE, QUESTION

CALL = {"type": "function", "function": {"name": "calculate", "arguments": {"expression": "17*23"}}}


def _conversation(answer: str = "391") -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "content": "391"},
        {"role": "assistant", "content": answer},
    ]


async def _score(grader: Any, **fields: Any) -> GraderScore:
    result = await grader.aevaluate(**fields)
    assert isinstance(result, GraderScore), result
    return result


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("\\boxed{\\text{391}}", "391"),
        ("\\mathbf{391}", "391"),
        ("\\textbf{391}", "391"),
        ("{391}", "391"),
        ("−5", "-5"),  # U+2212, the minus sign
        ("90°", "90"),
        ("5 \\cdot 10^{-3}", "0.005"),
        ("x \\approx 391", "391"),
        ("2 / 3", "2/3"),
        ("(1/2)", "0.5"),
        ("\\frac{-1}{2}", "-0.5"),
        ("1\\frac{1}{2}", "1.5"),
    ],
)
async def test_final_answer_pays_a_number_in_any_form_math_verify_reads(
    answer: str, gold: str
) -> None:
    result = await _score(
        FinalAnswerGrader(), messages=_conversation(answer), reference_response=gold
    )
    assert result.score == 1.0, result


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("\\text{17 \\times 23}", "391"),  # a wrapper does not make arithmetic a number
        ("x \\approx 17 \\cdot 23", "391"),
        ("144 / 12", "12"),
        ("(144/12)", "12"),
        ("\\frac{-144}{12}", "-12"),
        ("1\\frac{-1}{2}", "-0.5"),  # math-verify reads 1 * -1/2
        ("1\\frac{4}{2}", "3"),  # a mixed number's fraction is proper and in lowest terms
    ],
)
async def test_final_answer_still_refuses_arithmetic_in_those_forms(answer: str, gold: str) -> None:
    result = await _score(
        FinalAnswerGrader(), messages=_conversation(answer), reference_response=gold
    )
    assert result.score == 0.0, result


@pytest.mark.parametrize(
    "tools",
    [
        ["calculate", "search"],  # names, not schemas: all called_tool needs
        np.array([CALCULATE], dtype=object),  # a parquet column through pandas
        np.array(["calculate", "search"]),
    ],
    ids=["names", "numpy-schemas", "numpy-names"],
)
async def test_called_tool_reads_tool_names_and_numpy_arrays(tools: Any) -> None:
    grader = CalledToolGrader(tool="calculate")
    hit = await _score(grader, messages=_conversation(), available_tools=tools)
    assert hit.score == 1.0, hit
    miss = await grader.aevaluate(
        messages=_conversation(), available_tools=tools, required_tool="lookup"
    )
    assert isinstance(miss, GraderScore)  # tool= wins over required_tool
    absent = await CalledToolGrader(tool="lookup").aevaluate(
        messages=_conversation(), available_tools=tools
    )
    assert isinstance(absent, GraderError) and absent.kind == "invalid_input", absent
    assert "no available tool is named ['lookup']" in absent.error


async def test_called_tool_still_refuses_a_malformed_available_tools() -> None:
    for tools in ("calculate", [3], [""], [{"function": {"name": 3}}]):
        result = await CalledToolGrader(tool="calculate").aevaluate(
            messages=_conversation(), available_tools=tools
        )
        assert isinstance(result, GraderError) and result.kind == "invalid_input", tools
        assert "available_tools" in result.error


def _tool(prop: dict[str, Any]) -> dict[str, Any]:
    return {"name": "f", "parameters": {"type": "object", "properties": {"p": prop}}}


@pytest.mark.parametrize(
    ("prop", "value", "score"),
    [
        # a closed tuple (JSON Schema 2020-12): prefixItems, then "items": false
        ({"type": "array", "prefixItems": [{"type": "integer"}], "items": False}, [1], 1.0),
        ({"type": "array", "prefixItems": [{"type": "integer"}], "items": False}, [1, 2], 0.0),
        ({"type": "array", "items": True}, [1, "a", None], 1.0),
        ({"type": "object", "properties": {"a": True}}, {"a": [1]}, 1.0),
        ({"type": "object", "properties": {"a": False}}, {"a": 1}, 0.0),
        ({"type": "object", "properties": {"a": False}}, {"b": 1}, 1.0),
    ],
)
async def test_valid_tool_calls_reads_boolean_schemas(prop: Any, value: Any, score: float) -> None:
    result = await _score(
        ValidToolCallsGrader(),
        tool_calls=[{"name": "f", "arguments": {"p": value}}],
        available_tools=[_tool(prop)],
    )
    assert result.score == score, result


async def test_max_turns_reads_a_numpy_turn() -> None:
    history = _conversation()[:3]  # the step's history: one assistant turn before it
    grader = MaxTurnsGrader(max_turns=2)
    within = await _score(grader, messages=history, turn=np.int64(1))
    assert within.score == 1.0 and within.metadata["turn_count"] == 2, within
    past = await _score(MaxTurnsGrader(max_turns=1), messages=history, turn=np.int64(1))
    assert past.score == 0.0, past
    bad = await grader.aevaluate(messages=history, turn="1")
    assert isinstance(bad, GraderError) and bad.kind == "invalid_input", bad


async def test_valid_tool_calls_reads_a_numpy_available_tools_as_called_tool_does() -> None:
    """Both read ``available_tools`` through one entry reader now: ``called_tool`` took a numpy
    object array (a parquet column), ``valid_tool_calls`` refused it as "not a list"."""
    out = await ValidToolCallsGrader().aevaluate(
        tool_calls=[CALL], available_tools=np.array([CALCULATE], dtype=object)
    )
    assert isinstance(out, GraderScore) and out.score == 1.0, out
