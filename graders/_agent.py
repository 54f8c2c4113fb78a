"""Rule graders for tool-using agents: did the rollout call the tool it needed, were its calls
real tools with valid arguments, is its final answer right, did it stay within N turns?

They read the conversation in OpenAI/TRL form: ``messages``, where an assistant message may
carry ``tool_calls`` (``[{"type": "function", "function": {"name", "arguments"}}]`` or the flat
``{"name", "arguments"}``) and tool results are ``{"role": "tool", ...}`` messages. OpenAI's
legacy ``function_call`` (one call) and Anthropic's ``tool_use`` content blocks (``name``,
``input``) are read as calls too, so a rollout in those shapes is not scored as "did not call".
A call structure that is none of these (``tool_calls`` as one object or a JSON string, a call
that is no object, a name that is no string) is unscored (``invalid_input``, naming the message
and field): malformed data must never read as a rollout that made no call. That is the
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
import re
from collections.abc import Mapping, Sequence
from typing import Any

from graders._base import BaseGrader, Unscored, grader
from graders._math import MathGrader
from graders._text import as_text, is_content_parts, plain_value
from graders._tool_schema import check_arguments, tool_function, tool_schemas
from graders._tool_schema import is_list as _is_list
from rm_service._exceptions import ConfigError
from rm_service._result import GraderScore

__all__ = [
    "CalledToolGrader",
    "FinalAnswerGrader",
    "MaxTurnsGrader",
    "ValidToolCallsGrader",
    "tool_calls_of",
]


def _messages(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise Unscored(f"messages must be a list of messages, got {type(value).__name__}")
    bad = [i for i, m in enumerate(value) if not isinstance(m, Mapping)]
    if bad:
        raise Unscored(f"messages[{bad[0]}] is not a mapping")
    return list(value)


def _name(name: Any, where: str) -> str | None:
    """A call's tool name: a string, or ``None`` for a call that names no tool (the policy's
    fault, which ``valid_tool_calls`` scores as an invalid call). Anything else is malformed
    data: a list name would otherwise escape as an unhashable-type error."""
    if name is not None and not isinstance(name, str):
        raise Unscored(f"{where} is {type(name).__name__}, not a tool name (a string)")
    return name


def _arguments(arguments: Any) -> Any:
    """Arguments as an object where OpenAI's wire form sends a JSON string; text that is not
    JSON stays text, so the schema check says the policy wrote no object."""
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            return json.loads(arguments)
    return arguments


def _flat(call: Any, where: str) -> dict[str, Any]:
    """One tool call as ``{"name", "arguments"}`` from the nested OpenAI form, the flat TRL form
    or a legacy ``function_call``; ``where`` names it (``messages[2].tool_calls[0]``) when it
    is not a call object, so the record is unscored rather than read as a nameless call."""
    if not isinstance(call, Mapping):
        raise Unscored(f"{where} is {type(call).__name__}, not a tool call object")
    nested = "function" in call
    function = call["function"] if nested else call
    if not isinstance(function, Mapping):
        raise Unscored(f"{where}.function is {type(function).__name__}, not an object")
    prefix = f"{where}.function" if nested else where
    return {
        "name": _name(function.get("name"), f"{prefix}.name"),
        "arguments": _arguments(function.get("arguments")),
    }


def _call_list(calls: Any, where: str) -> list[dict[str, Any]]:
    """A ``tool_calls`` value as calls. It must be a list of call objects: one call object
    (whose keys would be iterated as calls) or a JSON string is malformed, not "no call".
    A numpy array (a parquet column read through pandas) counts as the list it holds."""
    calls = plain_value(calls)
    if not _is_list(calls):
        raise Unscored(f"{where} must be a list of tool call objects, got {type(calls).__name__}")
    return [_flat(call, f"{where}[{j}]") for j, call in enumerate(calls)]


def _tool_use_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """Anthropic's calls: ``{"type": "tool_use", "name", "input"}`` blocks in a content list."""
    if not _is_list(content):
        return []
    return [
        {"name": _name(block.get("name"), f"{where}[{j}].name"), "arguments": block.get("input")}
        for j, block in enumerate(content)
        if isinstance(block, Mapping) and block.get("type") == "tool_use"
    ]


def _message_calls(message: Mapping[str, Any], index: int) -> list[dict[str, Any]]:
    """The tool calls of one assistant message (``messages[index]``), in the first shape it
    holds: ``tool_calls``, else OpenAI's legacy ``function_call``, else Anthropic ``tool_use``
    blocks (a message that carries one call in two shapes made one call, not two). An empty
    value (``""``, ``{}``, ``[]``) is no call, as ``None`` is."""
    where = f"messages[{index}]"
    if not _empty(calls := message.get("tool_calls")):
        return _call_list(calls, f"{where}.tool_calls")
    if not _empty(call := message.get("function_call")):  # OpenAI's legacy single call
        return [_flat(call, f"{where}.function_call")]
    return _tool_use_blocks(message.get("content"), f"{where}.content")


def _empty(value: Any) -> bool:
    """No value at all: ``None``, or an empty string, list or object."""
    value = plain_value(value)
    return value is None or (isinstance(value, str | list | tuple | Mapping) and not value)


def tool_calls_of(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every tool call the assistant made in ``messages``, in order, as name and arguments.

    Raises:
        Unscored: a malformed call structure (``invalid_input``, naming the message and field).
    """
    return [
        call
        for i, m in enumerate(messages)
        if m.get("role") == "assistant"
        for call in _message_calls(m, i)
    ]


def _is_step(fields: Mapping[str, Any]) -> bool:
    """Whether the record gives one turn's own ``tool_calls`` (a step), where an empty list
    (or an empty numpy array, from parquet) is "this turn called nothing", not "no field"."""
    calls = plain_value(fields.get("tool_calls"))
    return _is_list(calls) or not _empty(calls)


def _calls(fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A step record's own ``tool_calls``, else every call in ``messages``."""
    if _is_step(fields):
        return _call_list(fields["tool_calls"], "tool_calls")
    if fields.get("messages") is None:
        raise Unscored("needs messages (a conversation) or tool_calls (one turn's calls)")
    return tool_calls_of(_messages(fields["messages"]))


def _wanted(value: Any) -> list[str]:
    """The tools a record's ``required_tool`` names: one name or a non-empty list of names.

    Anything else is unscored: an empty list would divide by zero, an empty name can never be
    called (a plausible 0), and a dict's keys would pass for a list of names."""
    value = plain_value(value)
    if value is None:
        raise Unscored("no tool to look for: set tool, or give the record required_tool")
    if isinstance(value, str):
        if not value.strip():
            raise Unscored("required_tool is an empty string, not a tool name")
        return [value]
    if not _is_list(value):
        raise Unscored(
            f"required_tool must be a tool name or a list of them, got {type(value).__name__}"
        )
    if not value:
        raise Unscored("required_tool is an empty list: no tool to look for")
    for i, tool in enumerate(value):
        if not isinstance(tool, str) or not tool.strip():
            raise Unscored(f"required_tool[{i}] is {tool!r}, not a tool name")
    return list(value)


@grader
class CalledToolGrader(BaseGrader):
    """1.0 if the assistant called the required tool at least once, else 0.0.

    The tool is ``tool`` (the same for every record) or the record's ``required_tool`` field
    (per prompt, e.g. a dataset column); a record with neither is unscored (``invalid_input``).
    ``required_tool`` may also be a list: then every tool in it must have been called, and the
    score is the share that were. When the record gives ``available_tools``, a tool to look
    for that none of them is unscored (``invalid_input``): no rollout could call it, so its
    0.0 would grade the data (a misspelt ``required_tool``, a row given the wrong
    environment), not the policy.

    A call counts only if its arguments are an object (or JSON text that parses to one), read
    as ``valid_tool_calls`` reads them: ``calculate`` with arguments that are not JSON, or a
    list, could call no tool, so counting it paid a policy for a malformed call. The reason
    names the call that did not count. Whether an object's arguments fit the tool's schema is
    ``valid_tool_calls``' question, not this one's.

    Args:
        tool: the tool's name; ``None`` to read ``required_tool`` from each record.
        name: the result name (default ``"called_tool"``).
    """

    required_fields = ()
    optional_fields = ("messages", "tool_calls", "required_tool", "available_tools")
    default_name = "called_tool"
    inline = True
    thread_safe = True  # a pure function of its input

    def __init__(self, *, tool: str | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        if tool is not None and (not isinstance(tool, str) or not tool.strip()):
            raise ConfigError(f"tool must be a non-empty string, got {tool!r}")
        self.tool = tool

    async def _aevaluate(self, **fields: Any) -> GraderScore:
        wanted = [self.tool] if self.tool is not None else _wanted(fields.get("required_tool"))
        calls = _calls(fields)  # a malformed conversation speaks first
        if fields.get("available_tools") is not None:
            tools = _tool_names(fields["available_tools"])
            absent = [t for t in wanted if t not in tools]
            if absent:
                raise Unscored(
                    f"no available tool is named {absent} (tools: {sorted(tools)}): no rollout "
                    "could call it"
                )
        called: set[str] = set()
        refused: dict[str, str] = {}  # per tool, its first call that does not count
        for i, call in enumerate(calls):
            name = call["name"]
            if not isinstance(name, str):
                continue
            why = check_arguments(call["arguments"], None)  # the shape, not the schema
            if why is None:
                called.add(name)
            else:
                refused.setdefault(name, f"call {i} ({name}): {why}")
        hit = [t for t in wanted if t in called]
        missed = [t for t in wanted if t not in called]
        reason = f"called {hit}" if not missed else f"did not call {missed}"
        invalid = [refused[t] for t in missed if t in refused]
        if invalid:
            reason += f"; a call with unreadable arguments is no call: {invalid[0]}"
        return GraderScore(
            name=self.name,
            score=len(hit) / len(wanted),
            reason=reason,
            metadata={"called": sorted(called), "invalid_calls": invalid},
        )


def _tool_names(value: Any) -> set[str]:
    """The names in a record's ``available_tools``: tool schemas (nested or flat) or bare
    names, in a list or a numpy array (a parquet column). ``called_tool`` needs only the names,
    so a schema's parameters are not checked here; anything that gives no name is unscored."""
    value = plain_value(value)
    if not _is_list(value):
        raise Unscored(f"available_tools must be a list of tools, got {type(value).__name__}")
    names = set()
    for i, tool in enumerate(value):
        function = tool_function(tool)
        name = function.get("name") if function is not None else plain_value(tool)
        if not isinstance(name, str) or not name.strip():
            raise Unscored(f"available_tools[{i}] is {tool!r}, not a tool name or schema")
        names.add(name)
    return names


@grader
class ValidToolCallsGrader(BaseGrader):
    """The share of tool calls that name a tool that exists, with arguments that fit its schema.

    Tools and their schemas come from the record's ``available_tools`` (JSON schemas, as
    ``rm-service train`` and OpenAI's ``tools`` give them). Each call is checked for an existing
    name, an arguments object, every required argument, no unknown argument, and the declared
    types; the reason names the first bad call. With no call at all the score is ``no_call``.
    By default that depends on the record: 0.0 for a conversation (``messages``: a rollout that
    should act but did not), 1.0 for one turn's ``tool_calls`` (a step, where a turn without
    calls, such as the final answer, has nothing invalid). A step default of 0.0 paid every
    tool-calling turn more than the answer turn, so the mean over a rollout's turns rose with
    each extra call: a policy gained by calling tools it did not need.

    Args:
        no_call: the score when there is no tool call, in ``[0, 1]``; ``None`` (the default)
            for 0.0 on a conversation and 1.0 on a step.
        name: the result name (default ``"valid_tool_calls"``).
    """

    required_fields = ("available_tools",)
    optional_fields = ("messages", "tool_calls")
    default_name = "valid_tool_calls"
    inline = True
    thread_safe = True  # a pure function of its input

    def __init__(self, *, no_call: float | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        if no_call is not None and (
            isinstance(no_call, bool)
            or not isinstance(no_call, int | float)
            or not 0.0 <= no_call <= 1.0
        ):
            raise ConfigError(f"no_call must be a number in [0, 1], got {no_call!r}")
        self.no_call = None if no_call is None else float(no_call)

    async def _aevaluate(self, **fields: Any) -> GraderScore:
        schemas = tool_schemas(fields["available_tools"])
        calls = _calls(fields)
        if not calls:
            step = _is_step(fields)
            score = self.no_call if self.no_call is not None else float(step)
            what = "this turn made no tool call" if step else "the rollout made no tool call"
            return GraderScore(name=self.name, score=score, reason=what)
        problems = []
        for i, call in enumerate(calls):
            schema = schemas.get(call["name"]) if isinstance(call["name"], str) else None
            why = (
                f"no tool named {call['name']!r} (tools: {sorted(schemas)})"
                if schema is None
                else check_arguments(call["arguments"], schema)
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


_SPACING = re.compile(r"\s|\\[,!;: ]|\{,\}|,|\$|\\left|\\right|\\?%|\^\{?\\circ\}?|\\degree|°")
"""What a number may carry around it: spaces, thousands separators, ``$``, ``%``, degrees."""
_RELATION = re.compile(r"=|\\approx|\\simeq|\\sim|≈")
"""What states the value after it (``17 * 23 = 391``, ``x \\approx 391``)."""
_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|boldsymbol)\{([^{}]*)\}")
"""Markup around a number (math-verify reads ``\\mathbf{391}`` and ``\\textbf{391}`` as
``\\text{391}``); what it holds is checked, so ``\\text{17 * 23}`` is still arithmetic."""
_DECIMAL = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:(?:\\times|\\cdot|×|·)10\^\{?[-+]?\d+\}?)?")
_FRACTION = re.compile(
    r"[-+]?(?P<whole>\d+)?\\[dt]?frac\{(?P<n>[-+]?\d+)\}\{(?P<d>[-+]?\d+)\}"
    r"|[-+]?(?P<sn>\d+)/(?P<sd>\d+)"
)


def _number_body(text: str) -> str:
    """The value ``text`` states (an answer or a gold as math-verify read it): what follows the
    last ``=`` or ``\\approx`` (``17 * 23 = 391`` states 391), without markup, spacing, a
    sentence's full stop (math-verify keeps it on ``1/2.``) and enclosing brackets."""
    body = _RELATION.split(text.replace("\u2212", "-"))[-1]  # U+2212, the minus sign
    count = 1
    while count:
        body, count = _WRAPPER.subn(r"\1", body)
    body = _SPACING.sub("", body).rstrip(".")  # "The answer is 1/2." ends a sentence
    sign, body = (body[0], body[1:]) if body[:1] in ("-", "+") else ("", body)
    while len(body) > 2 and (body[0], body[-1]) in (("(", ")"), ("{", "}")):
        body = body[1:-1]
    return sign + body


def _terms(fraction: re.Match[str]) -> tuple[int, int]:
    """A fraction's numerator and denominator, without their signs."""
    return abs(int(fraction["n"] or fraction["sn"])), abs(int(fraction["d"] or fraction["sd"]))


def _is_number(text: str) -> bool:
    """Whether ``text`` states one number (:func:`_number_body`): an integer, a decimal,
    scientific notation, a fraction (``\\frac{1}{2}``, ``1/2``, ``\\frac{-1}{2}``, and ``2/4``:
    an honest answer not reduced is still a number) or a mixed number (``1\\frac{1}{2}``).
    ``17 * 23``, ``400-9``, ``2^{10}`` are not, nor is a fraction whose value is a whole
    number (``\\frac{144}{12}``, ``24/2``): those are sums and divisions still to be done."""
    body = _number_body(text)
    if _DECIMAL.fullmatch(body):
        return True
    fraction = _FRACTION.fullmatch(body)
    if fraction is None:
        return False
    numerator, denominator = _terms(fraction)
    if fraction["whole"] is not None and (fraction["n"][0] in "-+" or numerator >= denominator):
        return False  # a mixed number's fraction is proper: 1\frac{4}{2} is a sum
    return denominator > 0 and numerator % denominator != 0


def _question(messages: Sequence[Mapping[str, Any]]) -> str:
    """The system and user messages' text, the question math's echo check reads; content in
    OpenAI's parts form is read as its text (one with a part that is not text is left out).
    Read as strings only, a question in parts form had no expression to find, so ``6/8`` for
    "Simplify 6/8" scored 1.0 there and 0.0 written as a string."""
    texts: list[str] = []
    for m in messages:
        content = m.get("content")
        if m.get("role") not in ("system", "user") or content is None:
            continue
        with contextlib.suppress(Unscored):
            texts.append(as_text(content, "messages"))
    return "\n".join(texts)


@grader
class FinalAnswerGrader(MathGrader):
    """:class:`MathGrader` on the conversation's final answer: the last assistant message's
    text, so a rollout that ends on a tool call with no text scores 0.0 (no answer), and text
    before tool calls in earlier turns is not an answer. Content that is not a string (a list
    of parts) is unscored, not read, and so is a malformed call on the last message.

    Where the gold is a number, the answer must be a number too: math-verify finds ``17 * 23``
    equal to ``391``, so copying a question's arithmetic back ("What is 17 * 23?") would score
    1.0 without calling the tool or doing the sum. Such an answer scores 0.0, with
    ``unevaluated`` in the metadata; ``17 * 23 = 391`` states the number and counts. A
    fraction not in lowest terms is a number (``2/4`` for the gold ``1/2`` is right), unless
    its value is whole (``144/12``: a division to do). The question's own expression copied
    back (``6/8`` for "Simplify 6/8") scores 0.0 with ``echo``, as in ``math``, the system and
    user messages being the question.

    Takes ``messages`` and ``reference_response`` (map the gold column to it); the same
    arguments as ``math``. Default name ``"final_answer"``.
    """

    required_fields = ("messages", "reference_response")
    optional_fields = ()  # the question is read from the messages
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
        turns = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
        if not turns:
            raise Unscored("no assistant message in messages")
        last = messages[turns[-1]]
        text = last.get("content") or ""
        if is_content_parts(text):  # read as every grader reads a text field
            text = as_text(text, "messages")
        if not isinstance(text, str):
            raise Unscored(f"the final assistant content is {type(text).__name__}, not text")
        called = bool(_message_calls(last, turns[-1]))  # every shape; malformed is unscored
        if called and not text.strip():
            return self._score(0.0, "the rollout ended on a tool call, with no answer", {})
        question = _question(messages)
        gold = fields["reference_response"]
        result = await self._equivalence({"response": text, "reference_response": gold})
        meta = result.metadata or {}
        pred, read = meta.get("pred"), meta.get("gold")
        if (
            result.score > 0.0
            and isinstance(pred, str)
            and isinstance(read, str)
            and _is_number(read)
            and not _is_number(pred)
        ):
            reason = (
                f"{pred!r} is an expression still to be worked out, not a number like the gold "
                f"{read!r}: a final answer states the result"
            )
            return self._score(0.0, reason, {**meta, "unevaluated": True})
        return self._unechoed(result, question if self.echo_check else None, gold)


@grader
class MaxTurnsGrader(BaseGrader):
    """1.0 if the conversation has at most ``max_turns`` assistant turns, else 0.0.

    A cap on rollouts that loop on tools. The count is of assistant messages in ``messages``
    (``turn_count`` in the metadata); several calls in one turn are one turn. A conversation
    with no assistant message is unscored (``invalid_input``): it is no rollout, and a 1.0
    for it would pay an empty one. In a step record (one with ``turn``, where ``messages`` is
    the history before the turn) the turn itself is counted too, so the turn past the limit
    is the one that scores 0.0.

    Args:
        max_turns: the most assistant turns that still score 1.0 (>= 1).
        name: the result name (default ``"max_turns"``).
    """

    required_fields = ("messages",)
    optional_fields = ("turn",)
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
        step = plain_value(fields.get("turn"))  # a numpy integer from parquet is its int
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise Unscored(f"turn is {step!r}, not a turn index (an integer >= 0)")
            turns += 1  # the step's own turn, which its history does not hold
        elif not turns:
            raise Unscored("no assistant message in messages: no turn to count")
        ok = turns <= self.max_turns
        return GraderScore(
            name=self.name,
            score=1.0 if ok else 0.0,
            reason=f"{turns} assistant turn(s), limit {self.max_turns}",
            metadata={"turn_count": turns},
        )
