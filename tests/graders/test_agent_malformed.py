"""The agent graders on malformed tool-call data and on the other vendors' call shapes.

A broken structure (``tool_calls`` as one object or a JSON string, a call name that is a list, a
schema whose ``parameters`` is a string) is unscored (``invalid_input``, naming the field): it
was read as "did not call" (a plausible 0.0) or escaped as ``internal`` with a raw Python error.
OpenAI's legacy ``function_call`` and Anthropic's ``tool_use`` blocks are read as calls.
"""

from __future__ import annotations

from typing import Any

import pytest

from graders import CalledToolGrader, ValidToolCallsGrader
from rm_service._exceptions import ConfigError
from rm_service._result import GraderError, GraderScore

SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "parameters": {
            "type": "object",
            "properties": {"q": {"type": "string"}},
            "required": ["q"],
        },
    },
}
CALL = {"type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}}


def _assistant(**fields: Any) -> list[dict[str, Any]]:
    """A user turn, then one assistant message with ``fields``."""
    return [{"role": "user", "content": "find x"}, {"role": "assistant", "content": None, **fields}]


async def _unscored(grader: Any, **fields: Any) -> str:
    result = await grader.aevaluate(**fields)
    assert isinstance(result, GraderError) and result.kind == "invalid_input", result
    return result.error


async def _score(grader: Any, **fields: Any) -> float:
    result = await grader.aevaluate(**fields)
    assert isinstance(result, GraderScore), result
    return result.score


GRADERS = [CalledToolGrader(tool="search"), ValidToolCallsGrader()]


@pytest.mark.parametrize("grader", GRADERS, ids=lambda g: g.name)
@pytest.mark.parametrize(
    ("tool_calls", "field"),
    [
        (CALL, "messages[1].tool_calls must be a list"),  # one call, not a list of them
        ('[{"type": "function", "function": {"name": "search"}}]', "messages[1].tool_calls"),
        (5, "messages[1].tool_calls must be a list"),
        (["search"], "messages[1].tool_calls[0] is str, not a tool call object"),
        ([{"type": "function", "function": "search"}], "messages[1].tool_calls[0].function"),
        ([{"function": {"name": ["search"], "arguments": {}}}], "tool_calls[0].function.name"),
        ([{"name": 7, "arguments": {}}], "messages[1].tool_calls[0].name is int"),
    ],
    ids=["one-dict", "json-string", "int", "str-call", "str-function", "list-name", "int-name"],
)
async def test_a_malformed_tool_calls_in_messages_is_invalid_input(
    grader: Any, tool_calls: Any, field: str
) -> None:
    error = await _unscored(
        grader, messages=_assistant(tool_calls=tool_calls), available_tools=[SEARCH]
    )
    assert field in error


@pytest.mark.parametrize("grader", GRADERS, ids=lambda g: g.name)
async def test_a_malformed_step_tool_calls_is_invalid_input(grader: Any) -> None:
    error = await _unscored(grader, tool_calls=["search"], available_tools=[SEARCH])
    assert "tool_calls[0] is str" in error
    error = await _unscored(grader, tool_calls=CALL, available_tools=[SEARCH])
    assert "tool_calls must be a list" in error


async def test_a_legacy_function_call_is_one_call() -> None:
    messages = _assistant(function_call={"name": "search", "arguments": '{"q": "x"}'})
    assert await _score(CalledToolGrader(tool="search"), messages=messages) == 1.0
    assert await _score(ValidToolCallsGrader(), messages=messages, available_tools=[SEARCH]) == 1.0
    bad_args = _assistant(function_call={"name": "search", "arguments": "{}"})
    assert await _score(ValidToolCallsGrader(), messages=bad_args, available_tools=[SEARCH]) == 0.0
    error = await _unscored(CalledToolGrader(tool="search"), messages=_assistant(function_call=1))
    assert "messages[1].function_call is int" in error


async def test_anthropic_tool_use_blocks_are_calls() -> None:
    content: list[dict[str, Any]] = [
        {"type": "text", "text": "Let me search."},
        {"type": "tool_use", "id": "t1", "name": "search", "input": {"q": "x"}},
    ]
    messages = [{"role": "user", "content": "find x"}, {"role": "assistant", "content": content}]
    assert await _score(CalledToolGrader(tool="search"), messages=messages) == 1.0
    assert await _score(ValidToolCallsGrader(), messages=messages, available_tools=[SEARCH]) == 1.0
    assert await _score(CalledToolGrader(tool="fetch"), messages=messages) == 0.0
    content[1]["name"] = ["search"]
    error = await _unscored(CalledToolGrader(tool="search"), messages=messages)
    assert "messages[1].content[1].name is list" in error


async def test_well_formed_calls_still_score() -> None:
    """The checks refuse broken structure only: a real call, or none, is scored as before."""
    messages = _assistant(tool_calls=[CALL])
    assert await _score(CalledToolGrader(tool="search"), messages=messages) == 1.0
    assert await _score(ValidToolCallsGrader(), messages=messages, available_tools=[SEARCH]) == 1.0
    none = _assistant(tool_calls=None, content="no tool needed")
    assert await _score(CalledToolGrader(tool="search"), messages=none) == 0.0
    nameless = _assistant(tool_calls=[{"name": None, "arguments": {}}])
    assert await _score(ValidToolCallsGrader(), messages=nameless, available_tools=[SEARCH]) == 0.0


@pytest.mark.parametrize(
    ("required_tool", "field"),
    [
        ([], "required_tool is an empty list"),  # was ZeroDivisionError (internal)
        (5, "required_tool must be a tool name"),  # was TypeError (internal)
        ({"search": 1}, "required_tool must be a tool name"),  # was 1.0 from the dict's keys
        ("", "required_tool is an empty string"),  # was 0.0
        ("  ", "required_tool is an empty string"),
        (["search", 5], "required_tool[1] is 5"),
        ([""], "required_tool[0] is ''"),
    ],
)
async def test_a_bad_required_tool_is_invalid_input(required_tool: Any, field: str) -> None:
    error = await _unscored(
        CalledToolGrader(), messages=_assistant(tool_calls=[CALL]), required_tool=required_tool
    )
    assert field in error


async def test_required_tool_from_a_numpy_column() -> None:
    np = pytest.importorskip("numpy")
    messages = _assistant(tool_calls=[CALL])
    wanted = np.array(["search", "fetch"])
    assert await _score(CalledToolGrader(), messages=messages, required_tool=wanted) == 0.5


def test_a_blank_tool_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="tool must be a non-empty string"):
        CalledToolGrader(tool="  ")


def _tool(parameters: Any) -> dict[str, Any]:
    return {"name": "search", "parameters": parameters}


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ("x", "available_tools[0] ('search'): parameters is str"),  # was AttributeError
        ({"properties": {"q": "string"}}, "parameters.properties.q is str"),  # AttributeError
        ({"properties": ["q"]}, "parameters.properties is list"),
        ({"properties": {"q": {}}, "required": "q"}, "parameters.required is 'q'"),
        ({"properties": {"q": {"type": [["string"]]}}}, "parameters.properties.q.type"),
        ({"properties": {"q": {"enum": "celsius"}}}, "parameters.properties.q.enum is str"),
    ],
    ids=["parameters-str", "spec-str", "properties-list", "required-str", "type-nested", "enum"],
)
async def test_a_malformed_tool_schema_is_invalid_input(parameters: Any, field: str) -> None:
    error = await _unscored(
        ValidToolCallsGrader(),
        messages=_assistant(tool_calls=[CALL]),
        available_tools=[_tool(parameters)],
    )
    assert field in error


async def test_enum_is_list_membership() -> None:
    """A string enum was tested as a substring ("el" passed "celsius"); now it is refused (see
    above), and a list enum is membership, where ``True`` is not ``1``."""
    grader = ValidToolCallsGrader()
    units = [_tool({"properties": {"u": {"type": "string", "enum": ["celsius", "kelvin"]}}})]
    for value, expected in [("celsius", 1.0), ("el", 0.0), ("Celsius", 0.0)]:
        calls = [{"name": "search", "arguments": {"u": value}}]
        assert await _score(grader, tool_calls=calls, available_tools=units) == expected, value
    flags = [_tool({"properties": {"n": {"enum": [1, 2]}}})]
    assert await _score(grader, tool_calls=[_args(n=1)], available_tools=flags) == 1.0
    assert await _score(grader, tool_calls=[_args(n=True)], available_tools=flags) == 0.0


def _args(**arguments: Any) -> dict[str, Any]:
    return {"name": "search", "arguments": arguments}


async def test_tool_calls_from_a_numpy_column() -> None:
    """pandas reads a parquet list column as a numpy array: the calls it holds are read."""
    np = pytest.importorskip("numpy")
    calls = np.array([{"name": "search", "arguments": {"q": "x"}}], dtype=object)
    grader = ValidToolCallsGrader()
    assert await _score(grader, tool_calls=calls, available_tools=[SEARCH]) == 1.0


@pytest.mark.parametrize(
    "fields", [{"tool_calls": ""}, {"tool_calls": {}}, {"function_call": {}}, {"tool_calls": []}]
)
async def test_an_empty_call_field_is_no_call(fields: dict[str, Any]) -> None:
    """'' and {} were made invalid_input (was: no call, 0), and function_call {} a call named
    None; an empty value says the assistant called nothing."""
    result = await CalledToolGrader(tool="search").aevaluate(messages=_assistant(**fields))
    assert isinstance(result, GraderScore) and result.score == 0.0, result
    assert "did not call" in result.reason


async def test_one_call_in_two_shapes_counts_once() -> None:
    """A message with tool_calls and the same call as a legacy function_call was two calls."""
    both = _assistant(tool_calls=[CALL], function_call=CALL["function"])
    result = await ValidToolCallsGrader().aevaluate(messages=both, available_tools=[SEARCH])
    assert isinstance(result, GraderScore) and result.metadata.get("calls", 1) == 1, result
    assert "2 call" not in result.reason


async def test_a_rollout_ending_on_numpy_tool_calls_is_no_answer() -> None:
    """A parquet column hands ``tool_calls`` over as a numpy array: ``tool_calls or
    function_call`` raised "truth value is ambiguous" for two calls (unscored as internal)."""
    np = pytest.importorskip("numpy")
    from graders import FinalAnswerGrader

    calls = np.array(
        [
            {"type": "function", "function": {"name": "calc", "arguments": "{}"}},
            {"type": "function", "function": {"name": "calc", "arguments": "{}"}},
        ],
        dtype=object,
    )
    messages = [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "", "tool_calls": calls},
    ]
    out = await FinalAnswerGrader(workers=1).aevaluate(messages=messages, reference_response="4")
    assert isinstance(out, GraderScore) and out.score == 0.0, out
    assert "tool call" in out.reason
