"""Rule graders for tool-using agents: did the rollout call the tool it needed, were its calls
real tools with valid arguments, is its final answer right, did it stay within N turns?

They read the conversation in OpenAI/TRL form: ``messages``, where an assistant message may
carry ``tool_calls`` (``[{"type": "function", "function": {"name", "arguments"}}]`` or the flat
``{"name", "arguments"}``) and tool results are ``{"role": "tool", ...}`` messages. That is the
record :class:`~rm_service._rollout.RolloutRewardCalculator` gives rollout-level graders, and
``rm-service train``'s agent reward adds ``available_tools`` (the JSON schemas of the tools the
rollout could call) and, per assistant turn, ``tool_calls``. So each grader works as a rollout
grader (the whole conversation) and the tool-call ones as step graders (one turn's calls), and
any JSONL of conversations can be graded offline with the same config.

Why rules: these are the checks an agent reward needs on every rollout, at GRPO volume; a judge
adds latency and noise to questions a few lines answer exactly.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from graders._base import BaseGrader, Unscored, grader
from graders._math import MathGrader
from rm_service._exceptions import ConfigError
from rm_service._result import GraderScore

__all__ = [
    "CalledToolGrader",
    "FinalAnswerGrader",
    "MaxTurnsGrader",
    "ValidToolCallsGrader",
    "tool_calls_of",
]

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


def _messages(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise Unscored(f"messages must be a list of messages, got {type(value).__name__}")
    bad = [i for i, m in enumerate(value) if not isinstance(m, Mapping)]
    if bad:
        raise Unscored(f"messages[{bad[0]}] is not a mapping")
    return list(value)


def _flat(call: Any) -> dict[str, Any]:
    """One tool call as ``{"name", "arguments"}`` (from the nested or the flat form)."""
    if not isinstance(call, Mapping):
        return {"name": None, "arguments": call}
    function = call.get("function", call)
    if not isinstance(function, Mapping):
        return {"name": None, "arguments": None}
    arguments = function.get("arguments")
    if isinstance(arguments, str):  # OpenAI's wire form: arguments as a JSON string
        with contextlib.suppress(ValueError):  # not JSON: the check says what it is
            arguments = json.loads(arguments)
    return {"name": function.get("name"), "arguments": arguments}


def tool_calls_of(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every tool call the assistant made in ``messages``, in order, as name and arguments."""
    return [
        _flat(call)
        for m in messages
        if m.get("role") == "assistant"
        for call in (m.get("tool_calls") or [])
    ]


def _calls(fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A step record's own ``tool_calls``, else every call in ``messages``."""
    if fields.get("tool_calls") is not None:
        calls = fields["tool_calls"]
        if not isinstance(calls, Sequence) or isinstance(calls, str | bytes):
            raise Unscored(f"tool_calls must be a list, got {type(calls).__name__}")
        return [_flat(c) for c in calls]
    if fields.get("messages") is None:
        raise Unscored("needs messages (a conversation) or tool_calls (one turn's calls)")
    return tool_calls_of(_messages(fields["messages"]))


@grader
class CalledToolGrader(BaseGrader):
    """1.0 if the assistant called the required tool at least once, else 0.0.

    The tool is ``tool`` (the same for every record) or the record's ``required_tool`` field
    (per prompt, e.g. a dataset column); a record with neither is unscored (``invalid_input``).
    ``required_tool`` may also be a list: then every tool in it must have been called, and the
    score is the share that were.

    Args:
        tool: the tool's name; ``None`` to read ``required_tool`` from each record.
        name: the result name (default ``"called_tool"``).
    """

    required_fields = ()
    optional_fields = ("messages", "tool_calls", "required_tool")
    default_name = "called_tool"
    inline = True
    thread_safe = True  # a pure function of its input

    def __init__(self, *, tool: str | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        if tool is not None and (not isinstance(tool, str) or not tool):
            raise ConfigError(f"tool must be a non-empty string, got {tool!r}")
        self.tool = tool

    async def _aevaluate(self, **fields: Any) -> GraderScore:
        wanted: Any = self.tool if self.tool is not None else fields.get("required_tool")
        if wanted is None:
            raise Unscored("no tool to look for: set tool, or give the record required_tool")
        wanted = [wanted] if isinstance(wanted, str) else list(wanted)
        called = {c["name"] for c in _calls(fields)}
        hit = [t for t in wanted if t in called]
        missed = [t for t in wanted if t not in called]
        reason = f"called {hit}" if not missed else f"did not call {missed}"
        return GraderScore(
            name=self.name,
            score=len(hit) / len(wanted),
            reason=reason,
            metadata={"called": sorted(n for n in called if isinstance(n, str))},
        )


def _check_arguments(arguments: Any, schema: Mapping[str, Any]) -> str | None:
    """Why ``arguments`` do not fit the tool's JSON schema, or ``None`` when they do.

    The subset of JSON Schema that transformers' ``get_json_schema`` writes for a Python
    function: an object with typed ``properties``, ``required`` names, ``enum`` and
    ``nullable``. Unknown keys are invalid: Python would raise on an unexpected argument."""
    if not isinstance(arguments, Mapping):
        return f"arguments are {type(arguments).__name__}, not an object"
    params = schema.get("parameters") or {}
    props: Mapping[str, Any] = params.get("properties") or {}
    missing = [p for p in params.get("required") or [] if p not in arguments]
    if missing:
        return f"missing required argument(s) {missing}"
    unknown = [k for k in arguments if k not in props]
    if unknown:
        return f"unknown argument(s) {unknown}"
    for key, value in arguments.items():
        spec = props[key]
        if value is None and spec.get("nullable"):
            continue
        types = spec.get("type")
        names = [types] if isinstance(types, str) else list(types or [])
        allowed = tuple(t for n in names for t in _JSON_TYPES.get(n, (object,)))
        bad_bool = isinstance(value, bool) and "boolean" not in names
        if allowed and (not isinstance(value, allowed) or bad_bool):
            return f"argument {key!r} is {type(value).__name__}, expected {types}"
        if "enum" in spec and value not in spec["enum"]:
            return f"argument {key!r} is {value!r}, not one of {spec['enum']}"
    return None


def _schemas(value: Any) -> dict[str, Mapping[str, Any]]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise Unscored(f"available_tools must be a list of tool schemas, got {value!r}")
    out: dict[str, Mapping[str, Any]] = {}
    for schema in value:
        function = schema.get("function", schema) if isinstance(schema, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise Unscored(f"available_tools holds {schema!r}, not a tool schema with a name")
        out[function["name"]] = function
    return out


@grader
class ValidToolCallsGrader(BaseGrader):
    """The share of tool calls that name a tool that exists, with arguments that fit its schema.

    Tools and their schemas come from the record's ``available_tools`` (JSON schemas, as
    ``rm-service train`` and OpenAI's ``tools`` give them). Each call is checked for an existing
    name, an arguments object, every required argument, no unknown argument, and the declared
    types; the reason names the first bad call. With no call at all the score is ``no_call``:
    0.0 by default (a rollout that should act but did not), 1.0 for a step grader where a turn
    without calls has nothing invalid.

    Args:
        no_call: the score when there is no tool call, in ``[0, 1]``.
        name: the result name (default ``"valid_tool_calls"``).
    """

    required_fields = ("available_tools",)
    optional_fields = ("messages", "tool_calls")
    default_name = "valid_tool_calls"
    inline = True
    thread_safe = True  # a pure function of its input

    def __init__(self, *, no_call: float = 0.0, name: str | None = None) -> None:
        super().__init__(name=name)
        if isinstance(no_call, bool) or not isinstance(no_call, int | float):
            raise ConfigError(f"no_call must be a number in [0, 1], got {no_call!r}")
        if not 0.0 <= no_call <= 1.0:
            raise ConfigError(f"no_call must be a number in [0, 1], got {no_call!r}")
        self.no_call = float(no_call)

    async def _aevaluate(self, **fields: Any) -> GraderScore:
        schemas = _schemas(fields["available_tools"])
        calls = _calls(fields)
        if not calls:
            return GraderScore(name=self.name, score=self.no_call, reason="no tool call")
        problems = []
        for i, call in enumerate(calls):
            schema = schemas.get(call["name"]) if isinstance(call["name"], str) else None
            why = (
                f"no tool named {call['name']!r} (tools: {sorted(schemas)})"
                if schema is None
                else _check_arguments(call["arguments"], schema)
            )
            if why is not None:
                problems.append(f"call {i} ({call['name']}): {why}")
        valid = len(calls) - len(problems)
        reason = problems[0] if problems else f"all {len(calls)} call(s) valid"
        return GraderScore(
            name=self.name,
            score=valid / len(calls),
            reason=reason,
            metadata={"calls": len(calls), "invalid": problems},
        )


@grader
class FinalAnswerGrader(MathGrader):
    """:class:`MathGrader` on the conversation's final answer: the last assistant message with
    text, so a rollout that ends on a tool call with no text scores 0.0 (no answer), and text
    before tool calls in earlier turns is not an answer.

    Takes ``messages`` and ``reference_response`` (map the gold column to it); the same
    arguments as ``math``. Default name ``"final_answer"``.
    """

    required_fields = ("messages", "reference_response")
    default_name = "final_answer"

    async def aload(self) -> None:
        """Start the math worker pool with one check (see :meth:`MathGrader.aload`)."""
        result = await self.aevaluate(
            messages=[{"role": "assistant", "content": "\\boxed{1}"}], reference_response="1"
        )
        if not isinstance(result, GraderScore):
            raise RuntimeError(f"a math check failed: {result.error}")

    async def _aevaluate(self, **fields: Any) -> GraderScore:
        messages = _messages(fields["messages"])
        assistant = [m for m in messages if m.get("role") == "assistant"]
        if not assistant:
            raise Unscored("no assistant message in messages")
        last = assistant[-1]
        text = last.get("content") or ""
        if not isinstance(text, str):
            raise Unscored(f"the final assistant content is {type(text).__name__}, not text")
        if last.get("tool_calls") and not text.strip():
            return self._score(0.0, "the rollout ended on a tool call, with no answer", {})
        return await super()._aevaluate(
            response=text, reference_response=fields["reference_response"]
        )


@grader
class MaxTurnsGrader(BaseGrader):
    """1.0 if the conversation has at most ``max_turns`` assistant turns, else 0.0.

    A cap on rollouts that loop on tools. The count is of assistant messages in ``messages``
    (``turn_count`` in the metadata).

    Args:
        max_turns: the most assistant turns that still score 1.0 (>= 1).
        name: the result name (default ``"max_turns"``).
    """

    required_fields = ("messages",)
    default_name = "max_turns"
    inline = True
    thread_safe = True  # a pure function of its input

    def __init__(self, *, max_turns: int, name: str | None = None) -> None:
        super().__init__(name=name)
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
            raise ConfigError(f"max_turns must be an integer >= 1, got {max_turns!r}")
        self.max_turns = max_turns

    async def _aevaluate(self, **fields: Any) -> GraderScore:
        messages = _messages(fields["messages"])
        turns = sum(1 for m in messages if m.get("role") == "assistant")
        ok = turns <= self.max_turns
        return GraderScore(
            name=self.name,
            score=1.0 if ok else 0.0,
            reason=f"{turns} assistant turn(s), limit {self.max_turns}",
            metadata={"turn_count": turns},
        )
