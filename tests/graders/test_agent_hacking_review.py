"""Review of the agent graders and the rollout calculator as a GRPO policy would game them.

Each test is an exploit or a silent plausible number that the graders gave before:

* ``final_answer`` paid the question's arithmetic copied back (``17 * 23`` for 391): math-verify
  finds them equal, so a calculator task scored 1.0 without the tool or the sum;
* ``valid_tool_calls`` passed any item of an array, any value of a dict, and NaN or infinity
  (Python's ``json.loads`` reads them; JSON has neither);
* ``valid_tool_calls`` scored a turn without calls 0.0 by default as a step grader, so the mean
  over a rollout's turns rose with every extra tool-calling turn (a length hack);
* step graders in the calculator saw only the history before the turn, so offline a turn's
  calls were graded as the next turn's;
* ``called_tool`` gave a silent 0.0 when no available tool has the required name;
* ``max_turns`` gave 1.0 to a conversation with no assistant turn, and as a step grader let the
  turn past the limit through.
"""

from __future__ import annotations

from typing import Any

import pytest

from graders import CalledToolGrader, FinalAnswerGrader, MaxTurnsGrader, ValidToolCallsGrader
from rm_service import GradingRunner, RolloutRewardCalculator
from rm_service._result import GraderError, GraderScore

QUESTION = "What is 17 * 23? Use the calculate tool, then answer with the number."
CALCULATE = {
    "type": "function",
    "function": {
        "name": "calculate",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}


def _call(arguments: Any, name: str = "calculate") -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def _conversation(*calls: dict[str, Any], answer: str | None = "391") -> list[dict[str, Any]]:
    """The question, one assistant turn per call (each followed by its result), the answer."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    for call in calls:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "content": "391"})
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


async def _result(grader: Any, **fields: Any) -> GraderScore:
    result = await grader.aevaluate(**fields)
    assert isinstance(result, GraderScore), result
    return result


async def _unscored(grader: Any, **fields: Any) -> str:
    result = await grader.aevaluate(**fields)
    assert isinstance(result, GraderError) and result.kind == "invalid_input", result
    return result.error


# --- final_answer: the question's arithmetic is not its answer --------------------------------


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("17 * 23", "391"),  # the question's expression, copied back
        ("\\boxed{17 \\times 23}", "391"),
        ("$17 \\cdot 23$", "391"),
        ("144 / 12", "12"),
        ("\\boxed{400-9}", "391"),
        ("2^{10}", "1024"),
        ("\\sqrt{4}", "2"),
        ("48 + 12", ["60", "sixty"]),  # a list of golds: the matching gold decides
    ],
)
async def test_final_answer_refuses_an_unevaluated_expression_for_a_number(
    answer: str, gold: Any
) -> None:
    result = await _result(
        FinalAnswerGrader(), messages=_conversation(answer=answer), reference_response=gold
    )
    assert result.score == 0.0, result
    assert result.metadata["unevaluated"] is True
    assert "still to be worked out" in result.reason


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("391", "391"),
        ("The answer is 391.", "391"),
        ("17 * 23 = 391", "391"),  # the working, then the number
        ("\\boxed{17 \\times 23 = 391}", "391"),
        ("(391)", "391"),
        ("-(3)", "-3"),
        ("\\boxed{1{,}000}", "1000"),
        ("3.0", "3"),
        ("1/2", "0.5"),  # a fraction in lowest terms is a number
        ("\\boxed{-\\frac{1}{2}}", "-0.5"),
        ("\\boxed{30^\\circ}", "30"),
        ("1e3", "1000"),
        ("2 \\pi", "2\\pi"),  # a gold that is no plain number: any equivalent form
        ("\\frac{2}{4}", "\\frac{1}{2} + 0"),
    ],
)
async def test_final_answer_still_pays_a_stated_number(answer: str, gold: str) -> None:
    result = await _result(
        FinalAnswerGrader(), messages=_conversation(answer=answer), reference_response=gold
    )
    assert result.score == 1.0, result


async def test_final_answer_on_a_malformed_last_call_is_invalid_input() -> None:
    """A ``tool_calls`` string on the last message was read as "ended on a call" (0.0)."""
    messages = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "", "tool_calls": '[{"name": "calculate"}]'},
    ]
    error = await _unscored(FinalAnswerGrader(), messages=messages, reference_response="391")
    assert "messages[1].tool_calls must be a list" in error


# --- valid_tool_calls: nested types and numbers JSON does not have -----------------------------

NESTED: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "stats",
        "parameters": {
            "type": "object",
            "properties": {
                "xs": {"type": "array", "items": {"type": "integer"}},
                "weights": {"type": "object", "additionalProperties": {"type": "number"}},
                "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]},
                "grid": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
                "opts": {
                    "type": "object",
                    "properties": {"mode": {"type": "string", "enum": ["fast", "exact"]}},
                    "required": ["mode"],
                },
                "scale": {"type": "number"},
                "strict": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}},
                    "additionalProperties": False,
                },
            },
            "required": ["xs"],
        },
    },
}


@pytest.mark.parametrize(
    ("arguments", "why"),
    [
        ({"xs": ["1", {"a": 1}]}, "argument 'xs' is an array whose item 0 is str"),
        ({"xs": [1], "weights": {"a": "heavy"}}, "argument 'weights' is an object whose key 'a'"),
        ({"xs": [1], "pair": ["a", 1]}, "argument 'pair' is an array whose item 0 is str"),
        ({"xs": [1], "grid": [["a"], [1]]}, "item 1 is an array whose item 0 is int"),
        ({"xs": [1], "opts": {}}, "argument 'opts' is an object whose missing required key"),
        ({"xs": [1], "opts": {"mode": "FAST"}}, "'FAST', not one of ['fast', 'exact']"),
        ('{"xs": [1], "scale": NaN}', "argument 'scale' is nan, not a JSON number"),
        ('{"xs": [1], "scale": -Infinity}', "argument 'scale' is -inf, not a JSON number"),
        ({"xs": [1], "scale": float("inf")}, "argument 'scale' is inf, not a JSON number"),
        ({"xs": [1], "weights": {"a": float("nan")}}, "key 'a' is nan, not a JSON number"),
        ({"xs": [1], "strict": {"a": 1, "b": 2}}, "an object whose unknown key(s) ['b']"),
    ],
    ids=[
        "items",
        "additionalProperties",
        "prefixItems",
        "nested-items",
        "nested-required",
        "nested-enum",
        "json-NaN",
        "json-Infinity",
        "inf",
        "nested-nan",
        "nested-closed",
    ],
)
async def test_valid_tool_calls_checks_nested_values_and_refuses_non_finite(
    arguments: Any, why: str
) -> None:
    result = await _result(
        ValidToolCallsGrader(),
        messages=_conversation(_call(arguments, "stats")),
        available_tools=[NESTED],
    )
    assert result.score == 0.0, result
    assert why in result.reason


async def test_valid_tool_calls_still_passes_fitting_nested_arguments() -> None:
    arguments = {
        "xs": [1, 2],
        "weights": {"a": 0.5, "b": 2},
        "pair": [1, "a", "extra"],  # past prefixItems, with no items: anything
        "grid": [["a"], []],
        "opts": {"mode": "exact", "verbose": True},  # a nested object admits other keys
        "scale": 1e300,
    }
    result = await _result(
        ValidToolCallsGrader(),
        messages=_conversation(_call(arguments, "stats")),
        available_tools=[NESTED],
    )
    assert result.score == 1.0, result
    # the function's own arguments stay closed, whatever additionalProperties says
    lax: dict[str, Any] = {"name": "stats", "parameters": {**NESTED["function"]["parameters"]}}
    lax["parameters"]["additionalProperties"] = True
    extra = await _result(
        ValidToolCallsGrader(),
        messages=_conversation(_call({"xs": [1], "answer": 391}, "stats")),
        available_tools=[lax],
    )
    assert extra.score == 0.0 and "unknown argument(s) ['answer']" in extra.reason


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"type": "array", "items": "integer"}, "properties.xs.items is str"),
        ({"type": "array", "prefixItems": {"type": "integer"}}, "properties.xs.prefixItems is"),
        ({"type": "object", "additionalProperties": 3}, "properties.xs.additionalProperties"),
        ({"type": "object", "properties": {"a": {"type": 1}}}, "properties.xs.properties.a.type"),
    ],
)
async def test_a_malformed_nested_schema_is_invalid_input(spec: Any, field: str) -> None:
    parameters = {"properties": {"xs": spec}}
    schema = {"type": "function", "function": {"name": "f", "parameters": parameters}}
    error = await _unscored(
        ValidToolCallsGrader(),
        messages=_conversation(_call({"xs": []}, "f")),
        available_tools=[schema],
    )
    assert field in error


# --- valid_tool_calls as a step grader: no length hack by default ------------------------------


async def test_valid_tool_calls_default_no_call_depends_on_the_record() -> None:
    grader = ValidToolCallsGrader()
    step = await _result(grader, tool_calls=[], available_tools=[CALCULATE])
    assert step.score == 1.0 and step.reason == "this turn made no tool call"
    rollout = await _result(grader, messages=_conversation(), available_tools=[CALCULATE])
    assert rollout.score == 0.0 and rollout.reason == "the rollout made no tool call"
    # a value set in the config applies to both
    assert (
        await _result(ValidToolCallsGrader(no_call=0.0), tool_calls=[], available_tools=[CALCULATE])
    ).score == 0.0


async def test_more_tool_turns_do_not_raise_the_rollout_reward_by_default() -> None:
    """The trainer's rollout reward is the mean of its turn rewards; with a step default of 0.0
    the answer turn dragged it down less the more calls came before it (0.75, 0.83, 0.95)."""
    calc = RolloutRewardCalculator(
        step_runner=GradingRunner({"valid": ValidToolCallsGrader()}),
        rollout_runner=GradingRunner({"called": CalledToolGrader(tool="calculate")}),
        distribution="all_steps",
    )
    means = []
    for n in (1, 3, 10):
        call = _call({"expression": "17 * 23"})
        turns = await calc.acompute(
            {"messages": _conversation(*[call] * n), "available_tools": [CALCULATE]}
        )
        rewards = [t.reward for t in turns]
        assert None not in rewards, turns
        means.append(sum(r for r in rewards if r is not None) / len(rewards))
    assert means == [1.0, 1.0, 1.0]


# --- the calculator: a step grader reads the turn's own calls ----------------------------------


async def test_step_graders_see_the_turns_own_calls_offline() -> None:
    """Without step_infos, a step record held only the history before the turn: the turn with
    a bad call passed and the answer turn after it failed for it."""
    calc = RolloutRewardCalculator(
        step_runner=GradingRunner(
            {
                "valid": ValidToolCallsGrader(no_call=1.0),
                "called": CalledToolGrader(tool="calculate"),
            }
        )
    )
    messages = _conversation(_call('{"expression": 17}'), _call({"expression": "17*23"}))
    legacy = {
        "role": "assistant",
        "content": "",
        "function_call": _call({"expression": "1"})["function"],
    }
    messages[-1:-1] = [legacy, {"role": "tool", "content": "1"}]
    turns = await calc.acompute({"messages": messages, "available_tools": [CALCULATE]})
    valid = [t.components["step/valid"] for t in turns]
    called = [t.components["step/called"] for t in turns]
    assert valid == [0.0, 1.0, 1.0, 1.0]  # the answer turn made no call: nothing invalid
    assert called == [1.0, 1.0, 1.0, 0.0]
    steps, _ = RolloutRewardCalculator.records({"messages": messages})
    assert [len(s["tool_calls"]) for s in steps] == [1, 1, 1, 0]


async def test_a_step_info_still_gives_the_turns_calls() -> None:
    """The trainer's step infos win over the turn's own calls, as before (a guard)."""
    grader = ValidToolCallsGrader(no_call=1.0)
    calc = RolloutRewardCalculator(step_runner=GradingRunner({"valid": grader}))
    rollout = {
        "messages": _conversation(_call({"expression": "1"})),
        "available_tools": [CALCULATE],
        "step_infos": [{"tool_calls": [{"name": "nope", "arguments": {}}]}, {"tool_calls": []}],
    }
    turns = await calc.acompute(rollout)
    assert [t.components["step/valid"] for t in turns] == [0.0, 1.0]


# --- called_tool: a tool no rollout could call ------------------------------------------------


@pytest.mark.parametrize(
    ("grader", "fields"),
    [
        (CalledToolGrader(), {"required_tool": "calculate "}),  # a typo in the data
        (CalledToolGrader(), {"required_tool": ["calculate", "search"]}),
        (CalledToolGrader(tool="search"), {}),  # a row given another environment
        (CalledToolGrader(tool="calculate"), {"available_tools": []}),  # no tools at all
    ],
)
async def test_called_tool_for_a_tool_none_available_is_invalid_input(
    grader: CalledToolGrader, fields: dict[str, Any]
) -> None:
    fields = {"available_tools": [CALCULATE], **fields}
    messages = _conversation(_call({"expression": "17*23"}))
    error = await _unscored(grader, messages=messages, **fields)
    assert "no available tool is named" in error


async def test_called_tool_with_the_tool_available_still_scores() -> None:
    messages = _conversation(_call({"expression": "17*23"}))
    grader = CalledToolGrader()
    hit = await _result(
        grader, messages=messages, required_tool="calculate", available_tools=[CALCULATE]
    )
    assert hit.score == 1.0
    miss = await _result(
        grader, messages=_conversation(), required_tool="calculate", available_tools=[CALCULATE]
    )
    assert miss.score == 0.0


# --- max_turns: no turn is no rollout; a step counts itself ------------------------------------


@pytest.mark.parametrize("messages", [[], [{"role": "user", "content": QUESTION}]])
async def test_max_turns_without_an_assistant_turn_is_invalid_input(messages: Any) -> None:
    error = await _unscored(MaxTurnsGrader(max_turns=2), messages=messages)
    assert "no assistant message" in error


async def test_max_turns_as_a_step_grader_counts_the_turn_itself() -> None:
    calc = RolloutRewardCalculator(
        step_runner=GradingRunner({"within": MaxTurnsGrader(max_turns=2)})
    )
    call = _call({"expression": "1"})
    turns = await calc.acompute({"messages": _conversation(call, call)})  # 3 assistant turns
    assert [t.components["step/within"] for t in turns] == [1.0, 1.0, 0.0]
    error = await _unscored(MaxTurnsGrader(max_turns=2), messages=[], turn=-1)
    assert "turn is -1" in error
