"""Every built-in grader: a text field that is not text is ``invalid_input`` naming the field.

A JSON record can put anything in a field: ``1e999`` (read as ``inf``), ``NaN``, ``42``, ``true``,
a list, an object. None of that is a response or a question, and scoring it as if it were (the
text ``"nan"`` is 3 characters, so ``length_penalty`` paid 1.0) hands out a plausible number for
broken data. The one exception is a gold answer (``reference_response``): a finite JSON number
there is an answer (GSM8K golds are integers) and is read as its decimal text.

The graders are built the way a YAML config builds them (``load_config`` + ``build_runner``),
judges against the loopback judge server, which must see no request at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graders import CommitteeGrader, RelevanceGrader, list_graders
from graders._text import GOLD_LIST_GRADERS
from rm_service import GraderError, GraderScore, build_runner, load_config
from rm_service.models._openai import OpenAIChatModel
from tests.judge_server import JudgeServer, Reply
from tests.rm_support import make_tiny_rm

NOT_TEXT: dict[str, Any] = {
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "json 1e999": json.loads('{"x": 1e999}')["x"],  # Python's json reads it as inf
    "json NaN": json.loads('{"x": NaN}')["x"],
    "int": 42,
    "float": 4.5,
    "true": True,
    "false": False,
    "list": [1, 2],
    "dict": {"content": "4"},
}
"""Values no text field may hold."""

ANSWER_NUMBERS = ("int", "float")
"""Values a gold answer (``reference_response``) may hold: finite JSON numbers."""

TEXT: dict[str, str] = {
    "response": "<think>2+2</think><answer>4</answer>",
    "reference_response": "4",
    "query": "What is 2+2?",
}


CONVERSATION_FIELDS = frozenset(
    {"messages", "prompt", "completion", "tool_calls", "available_tools", "required_tool"}
)
"""Fields that may hold a conversation or structured data (a message list, tool calls, tool
schemas), not text only: the text check below skips them."""

AGENT_GRADERS = ("called_tool", "final_answer", "max_turns", "valid_tool_calls")
"""Graders of a whole tool rollout: they read ``messages``, never a text ``response``."""


def _yaml_specs(tmp: Path) -> dict[str, dict[str, Any]]:
    """One config entry per built-in grader that a YAML config can build on its own."""
    fake_model = str(tmp / "no-model")  # embedders load lazily: nothing here may reach one
    return {
        "called_tool": {"type": "called_tool", "tool": "add"},
        "final_answer": {"type": "final_answer"},
        "max_turns": {"type": "max_turns", "max_turns": 3},
        "valid_tool_calls": {"type": "valid_tool_calls"},
        "remote_reward_model": {"type": "remote_reward_model", "url": "http://127.0.0.1:9/x"},
        "reward_model": {"type": "reward_model", "path": str(make_tiny_rm(tmp / "rm"))},
        "correctness": {"type": "correctness"},
        "format": {"type": "format"},
        "harmfulness": {"type": "harmfulness"},
        "harmless_offline": {"type": "harmless_offline", "model": fake_model},
        "instruction_following": {"type": "instruction_following"},
        "length_penalty": {"type": "length_penalty", "max_len": 100},
        "llm_judge": {"type": "llm_judge", "rubric": "Is the response right?"},
        "math": {"type": "math"},
        "number": {"type": "number"},
        "relevance": {"type": "relevance"},
        "relevance_embedding": {"type": "relevance_embedding", "model": fake_model},
        "similarity": {"type": "similarity", "model": fake_model},
        "string_match": {"type": "string_match"},
    }


@pytest.fixture(scope="module")
def judge() -> Iterator[JudgeServer]:
    with JudgeServer(lambda body: Reply(json.dumps({"reason": "ok", "score": 5}))) as server:
        yield server


@pytest.fixture(scope="module")
def built(judge: JudgeServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every registered grader, built as a config builds it (the committee in Python: its
    members are grader objects, which YAML cannot spell)."""
    specs = _yaml_specs(tmp_path_factory.mktemp("graders"))
    cfg = load_config(
        {
            "judge": {"backend": "openai", "base_url": judge.base_url, "model": "m"},
            "graders": specs,
        }
    )
    graders = {n: c.grader for n, c in build_runner(cfg).grader_configs.items()}
    member = RelevanceGrader(OpenAIChatModel("m", base_url=judge.base_url, max_retries=0))
    graders["committee"] = CommitteeGrader([member])
    return graders


def test_every_registered_grader_is_covered(built: dict[str, Any]) -> None:
    assert sorted(built) == list_graders()


TEXT_GRADERS = sorted(
    {"committee", "correctness", "format", "harmfulness", "harmless_offline"}
    | {"instruction_following", "length_penalty", "llm_judge", "math", "number", "relevance"}
    | {"relevance_embedding", "similarity", "string_match", "reward_model", "remote_reward_model"}
)


def test_the_text_and_agent_lists_cover_every_grader() -> None:
    assert sorted([*TEXT_GRADERS, *AGENT_GRADERS]) == list_graders()


@pytest.mark.parametrize("name", TEXT_GRADERS)
async def test_a_text_field_that_is_not_text_is_invalid_input(
    name: str, built: dict[str, Any], judge: JudgeServer
) -> None:
    grader = built[name]
    fields = [*grader.required_fields, *grader.optional_fields]
    fields = [f for f in fields if f not in CONVERSATION_FIELDS]
    assert "response" in fields
    requests = judge.stats.requests
    wrong = []
    for field in fields:
        for label, value in NOT_TEXT.items():
            if field == "reference_response" and label in ANSWER_NUMBERS:
                continue
            if field == "reference_response" and label == "list" and name in GOLD_LIST_GRADERS:
                value = [value]  # a flat list is a list of golds there, a nested one is not
            record = {f: TEXT.get(f, "some text") for f in fields} | {field: value}
            result = await grader.aevaluate(**record)
            ok = (
                isinstance(result, GraderError)
                and result.kind == "invalid_input"
                and repr(field) in result.error
                and "must be" in result.error
            )
            if not ok:
                wrong.append(f"{field}={label}: {result!r}")
    assert not wrong, "\n".join(wrong)
    assert judge.stats.requests == requests  # refused before any judge was asked


@pytest.mark.parametrize("name", AGENT_GRADERS)
async def test_a_conversation_that_is_not_a_message_list_is_invalid_input(
    name: str, built: dict[str, Any]
) -> None:
    grader = built[name]
    for label, value in [*NOT_TEXT.items(), ("text", "some text")]:
        if label == "list":
            continue  # a list is a conversation's shape; its items are checked elsewhere
        result = await grader.aevaluate(
            messages=value, reference_response="4", available_tools=[], required_tool="add"
        )
        assert isinstance(result, GraderError) and result.kind == "invalid_input", (label, result)
        assert "messages must be a list of messages" in result.error, (label, result)


@pytest.mark.parametrize("name", ["number", "string_match", "correctness"])
async def test_a_gold_that_is_a_finite_number_is_read_as_its_text(
    name: str, built: dict[str, Any]
) -> None:
    result = await built[name].aevaluate(
        query="What is 2+2?", response="The answer is 4.", reference_response=4
    )
    assert isinstance(result, GraderScore), result


@pytest.mark.parametrize("name", ["format", "length_penalty", "number", "string_match"])
async def test_a_missing_field_is_still_invalid_input(name: str, built: dict[str, Any]) -> None:
    # None is a missing value, as before; it never reaches the text check. It is named as
    # null, not "missing", and not listed among the fields the record has.
    result = await built[name].aevaluate(response=None, reference_response="4")
    assert isinstance(result, GraderError) and result.kind == "invalid_input"
    assert "required field(s) 'response', which are null in the record" in result.error
    assert "record has: reference_response)" in result.error


def test_offline_run_unscores_non_text_responses(tmp_path: Path) -> None:
    """The reported case, through the CLI's path: ``format`` and ``length`` were 0.0 and 1.0."""
    from rm_service import grade_file

    rows = [
        '{"id": "inf", "response": 1e999, "ground_truth": "4"}',
        '{"id": "nan", "response": NaN, "ground_truth": "4"}',
        '{"id": "int", "response": 4, "ground_truth": "4"}',
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(rows) + "\n")
    cfg = load_config(
        {
            "graders": {
                "format": {"type": "format", "mode": "think_answer"},
                "length": {"type": "length_penalty", "max_len": 400, "buffer": 400},
                "number": {"type": "number", "mapper": {"reference_response": "ground_truth"}},
            }
        }
    )
    out = tmp_path / "out.jsonl"
    grade_file(build_runner(cfg), src, out, progress=False)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in got] == ["inf", "nan", "int"]
    for rec in got:
        # "error": the record's own data is at fault (invalid_input), on every face
        assert rec["status"] == "error" and rec["reward"] is None
        for name in ("format", "length", "number"):
            assert rec["scores"][name] is None, (rec["id"], name)
            error = rec["errors"][name]
            assert error["kind"] == "invalid_input", (rec["id"], name, error)
            assert "'response'" in error["error"]


# --- a gold with no math -------------------------------------------------------------------------

NO_MATH_GOLDS = [
    "abc",
    "é",
    "\x00",
    "a\x00b",
    "\x01",
    "ß",
    "é é",
    "??",
    "-",
    "…",
    "—",
    "()",
    "Q.E.D.",
]
"""Golds with nothing to compare. ``"abc"`` always was ``invalid_input``; the others scored 0.0,
because math-verify hands back the raw string when it cannot build an expression."""

MATH_GOLDS = ["4", "x", "π", "∞", "√2", "½", r"\text{Evelyn}", r"\infty", "{}", "4é"]
"""Golds that stay gradable, including ones math-verify only keeps as a string (``∞``, ``√2``,
``½``): they are compared as written."""


@pytest.mark.parametrize("gold", NO_MATH_GOLDS)
def test_a_gold_with_no_math_is_invalid_gold_whatever_its_characters(gold: str) -> None:
    from graders._math_worker import check_equivalence

    assert check_equivalence(gold, "The answer is 4.")["status"] == "invalid_gold"


@pytest.mark.parametrize("gold", MATH_GOLDS)
def test_a_gold_with_math_is_still_compared(gold: str) -> None:
    from graders._math_worker import check_equivalence

    assert check_equivalence(gold, "The answer is 4.")["status"] in ("equal", "not_equal")
    assert check_equivalence(gold, f"The answer is $\\boxed{{{gold}}}$.")["status"] == "equal"


async def test_math_grader_unscores_a_gold_with_no_math(built: dict[str, Any]) -> None:
    for gold in ("é", "\x00", "abc"):
        result = await built["math"].aevaluate(response="The answer is 4.", reference_response=gold)
        assert isinstance(result, GraderError), (gold, result)
        assert result.kind == "invalid_input" and "'reference_response'" in result.error
