"""The agent rule graders on conversations in OpenAI/TRL form, and through a reward config as
``rm-service train`` uses them (rollout level: messages; step level: one turn's tool_calls)."""

from __future__ import annotations

from typing import Any

import pytest

from graders import (
    CalledToolGrader,
    FinalAnswerGrader,
    MaxTurnsGrader,
    ValidToolCallsGrader,
    get_grader,
)
from rm_service._exceptions import ConfigError
from rm_service._result import GraderError, GraderScore

SCHEMAS = [
    {
        "type": "function",
        "function": {
            "name": "calculate",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string"}, "digits": {"type": "integer"}},
                "required": ["expression"],
            },
        },
    }
]


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def _rollout(*calls: dict[str, Any], answer: str = "The answer is 391") -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "17 * 23?"}]
    for call in calls:
        msgs.append({"role": "assistant", "content": "", "tool_calls": [call]})
        msgs.append({"role": "tool", "name": "calculate", "content": "391"})
    msgs.append({"role": "assistant", "content": answer})
    return msgs


async def _score(grader: Any, **fields: Any) -> float:
    result = await grader.aevaluate(**fields)
    assert isinstance(result, GraderScore), result
    return result.score


async def test_called_tool_from_the_grader_or_the_record() -> None:
    messages = _rollout(_call("calculate", expression="17*23"))
    assert await _score(CalledToolGrader(tool="calculate"), messages=messages) == 1.0
    assert await _score(CalledToolGrader(tool="search"), messages=messages) == 0.0
    grader = CalledToolGrader()
    assert await _score(grader, messages=messages, required_tool="calculate") == 1.0
    both = ["calculate", "search"]
    assert await _score(grader, messages=messages, required_tool=both) == 0.5
    assert await _score(grader, messages=_rollout(), required_tool="calculate") == 0.0
    # OpenAI's wire form: arguments as a JSON string, flat or nested calls
    flat = [{"role": "assistant", "tool_calls": [{"name": "calculate", "arguments": "{}"}]}]
    assert await _score(grader, messages=flat, required_tool="calculate") == 1.0
    unscored = await grader.aevaluate(messages=messages)
    assert isinstance(unscored, GraderError) and unscored.kind == "invalid_input"


async def test_valid_tool_calls_checks_name_and_arguments_against_the_schema() -> None:
    grader = ValidToolCallsGrader()
    good = _call("calculate", expression="1+1", digits=2)
    cases = [
        (_call("calculate", expression="1+1"), 1.0),
        (good, 1.0),
        (_call("calc", expression="1+1"), 0.0),  # no such tool
        (_call("calculate"), 0.0),  # required argument missing
        (_call("calculate", expression="1", base=2), 0.0),  # unknown argument
        (_call("calculate", expression=5), 0.0),  # wrong type
        (_call("calculate", expression="1", digits=True), 0.0),  # a bool is not an integer
    ]
    for call, expected in cases:
        got = await _score(grader, messages=_rollout(call), available_tools=SCHEMAS)
        assert got == expected, call
    mixed = _rollout(good, _call("calc"))
    result = await grader.aevaluate(messages=mixed, available_tools=SCHEMAS)
    assert isinstance(result, GraderScore) and result.score == 0.5
    assert "call 1 (calc): no tool named 'calc'" in result.reason
    # no call: 0.0 by default, no_call for a step grader; one turn's calls via tool_calls
    assert await _score(grader, messages=_rollout(), available_tools=SCHEMAS) == 0.0
    step = ValidToolCallsGrader(no_call=1.0)
    assert await _score(step, tool_calls=[], available_tools=SCHEMAS) == 1.0
    turn = [{"name": "calculate", "arguments": {"expression": 3}}]
    assert await _score(step, tool_calls=turn, available_tools=SCHEMAS) == 0.0
    with pytest.raises(ConfigError, match="no_call must be a number in"):
        ValidToolCallsGrader(no_call=2)


async def test_final_answer_reads_the_last_assistant_text() -> None:
    grader = FinalAnswerGrader()
    messages = _rollout(_call("calculate", expression="17*23"))
    assert await _score(grader, messages=messages, reference_response="391") == 1.0
    wrong = _rollout(answer="It is 392")
    assert await _score(grader, messages=wrong, reference_response="391") == 0.0
    ends_on_call = _rollout(_call("calculate", expression="17*23"))[:-2]
    assert await _score(grader, messages=ends_on_call, reference_response="391") == 0.0


async def test_max_turns_counts_assistant_messages() -> None:
    two_calls = _rollout(_call("calculate", expression="1"), _call("calculate", expression="2"))
    assert await _score(MaxTurnsGrader(max_turns=3), messages=two_calls) == 1.0
    assert await _score(MaxTurnsGrader(max_turns=2), messages=two_calls) == 0.0
    with pytest.raises(ConfigError, match="max_turns must be an integer >= 1"):
        MaxTurnsGrader(max_turns=0)


def test_registered_for_configs() -> None:
    assert isinstance(get_grader("called_tool", tool="x"), CalledToolGrader)
    assert isinstance(get_grader("valid_tool_calls"), ValidToolCallsGrader)
    assert isinstance(get_grader("final_answer"), FinalAnswerGrader)
    assert isinstance(get_grader("max_turns", max_turns=2), MaxTurnsGrader)
