"""Text in OpenAI's content-parts form (``[{"type": "text", "text": "..."}]``), as
OpenAI-format datasets and chat templates write a message's ``content``, is valid input: the
graders' one text reader (``graders._text.as_text``) reads it as its text parts joined. A part
that is not text (an image, audio) is ``invalid_input`` naming the field and the part."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from graders import _text
from graders._base import Unscored
from graders._text import as_gold_list, as_text
from rm_service import GraderError, GraderScore, build_runner, load_config
from tests.judge_server import JudgeServer, Reply

ANSWER = "<think>7*8</think><answer>56</answer>"


def _parts(*texts: str, kind: str = "text") -> list[dict[str, str]]:
    return [{"type": kind, "text": t} for t in texts]


def test_as_text_joins_the_text_parts() -> None:
    assert as_text(_parts(ANSWER), "response") == ANSWER
    assert as_text(_parts("<think>7*8</think>", "<answer>56</answer>"), "response") == ANSWER
    assert as_text(tuple(_parts("a", "b")), "query") == "ab"
    assert as_text(_parts("x", kind="output_text"), "response") == "x"  # the Responses API
    assert as_text([{"type": "refusal", "refusal": "I can't."}], "response") == "I can't."
    assert as_text(_parts("56"), "reference_response") == "56"


def test_content_parts_are_one_gold_not_a_list_of_golds() -> None:
    assert as_gold_list(_parts("56"), "reference_response") is None
    assert as_gold_list(["56", 7], "reference_response") == ["56", "7"]


def test_a_list_of_messages_is_not_content_parts() -> None:
    """A conversation is read by the conversation readers (a judge's prompt fields), never as
    one text: every message has a ``role``."""
    is_parts = _text.is_content_parts
    assert is_parts(_parts("a"))
    assert not is_parts([{"role": "user", "content": "a"}])
    assert not is_parts([])
    assert not is_parts(["a", "b"])


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ([{"type": "image_url", "image_url": {"url": "http://x/a.png"}}], "'image_url'"),
        ([*_parts("a"), {"type": "input_audio", "input_audio": {}}], "(item 1)"),
        ([{"text": "no type"}], 'item 0 has no "type"'),
        ([{"type": "text", "text": 5}], "got int"),
        ([{"type": "text"}], "got NoneType"),
        ([{"role": "user", "content": "hi"}], "or a list of text content parts, got list"),
        (["a", "b"], "or a list of text content parts, got list"),
    ],
)
def test_a_part_that_is_not_text_is_invalid_input_naming_the_field(value: Any, says: str) -> None:
    with pytest.raises(Unscored) as exc:
        as_text(value, "response")
    assert exc.value.kind == "invalid_input"
    assert "'response'" in exc.value.reason and "must " in exc.value.reason
    assert says in exc.value.reason, exc.value.reason


RULE_GRADERS: dict[str, dict[str, Any]] = {
    "format": {"type": "format", "mode": "think_answer"},
    "length_penalty": {"type": "length_penalty", "max_len": 100},
    "number": {"type": "number"},
    "string_match": {"type": "string_match", "mode": "contains"},
    "math": {"type": "math"},
}


@pytest.fixture(scope="module")
def judge() -> Iterator[JudgeServer]:
    with JudgeServer(lambda body: Reply(json.dumps({"reason": "ok", "score": 5}))) as server:
        yield server


def _graders(specs: dict[str, Any], judge: JudgeServer | None = None) -> dict[str, Any]:
    cfg: dict[str, Any] = {"graders": specs}
    if judge is not None:
        cfg["judge"] = {"backend": "openai", "base_url": judge.base_url, "model": "m"}
    return {n: c.grader for n, c in build_runner(load_config(cfg)).grader_configs.items()}


@pytest.mark.parametrize("name", sorted(RULE_GRADERS))
async def test_every_rule_grader_scores_parts_as_it_scores_the_text(name: str) -> None:
    grader = _graders({name: RULE_GRADERS[name]})[name]
    text = await grader.aevaluate(response=ANSWER, reference_response="56")
    parts = await grader.aevaluate(
        response=_parts("<think>7*8</think>", "<answer>56</answer>"),
        reference_response=_parts("56"),
    )
    assert isinstance(text, GraderScore), text
    assert isinstance(parts, GraderScore), parts
    assert parts.score == text.score


async def test_a_judge_reads_messages_whose_content_is_parts(judge: JudgeServer) -> None:
    """A judge's ``query`` given as OpenAI messages with content parts was ``invalid_input``
    ("must be a string, got list"); the judge now sees the question's text."""
    grader = _graders({"j": {"type": "llm_judge", "rubric": "Is it right?"}}, judge)["j"]
    query = [{"role": "user", "content": _parts("What is ", "7*8?")}]
    result = await grader.aevaluate(query=query, response=ANSWER)
    assert isinstance(result, GraderScore), result
    sent = json.dumps(judge.stats.last_body)
    assert "What is 7*8?" in sent


async def test_a_judge_refuses_an_image_part_before_asking(judge: JudgeServer) -> None:
    grader = _graders({"j": {"type": "llm_judge", "rubric": "Is it right?"}}, judge)["j"]
    requests = judge.stats.requests
    content = [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]
    result = await grader.aevaluate(query=[{"role": "user", "content": content}], response="x")
    assert isinstance(result, GraderError) and result.kind == "invalid_input", result
    assert "'image_url'" in result.error
    assert judge.stats.requests == requests


# --- a top-level query and response in parts reach every judge as their text -------------------

JUDGES = ["correctness", "harmfulness", "instruction_following", "llm_judge", "relevance"]


@pytest.mark.parametrize("name", JUDGES)
async def test_a_judge_reads_a_query_and_response_in_content_parts(
    name: str, judge: JudgeServer
) -> None:
    spec = {"type": name} | ({"rubric": "Is it right?"} if name == "llm_judge" else {})
    grader = _graders({name: spec}, judge)[name]
    other = {"reference_response": "56", "instruction": "Answer with a number."}
    fields = {
        f: other.get(f, "x") for f in grader.required_fields if f not in ("query", "response")
    }
    text = await grader.aevaluate(query="What is 7*8?", response=ANSWER, **fields)
    parts = await grader.aevaluate(
        query=_parts("What is ", "7*8?"), response=_parts(ANSWER), **fields
    )
    assert isinstance(parts, GraderScore), parts
    assert isinstance(text, GraderScore) and parts.score == text.score


# --- a reward model reads a prompt in parts as its text, not as a conversation ------------------


async def test_a_reward_model_reads_a_prompt_in_content_parts_as_its_text(tmp_path: Any) -> None:
    """A list of mappings without roles was taken for a conversation (every mapping counted as
    a chat message), so a prompt in parts reached the chat template as messages with no role.
    Read as its text, it scores as the same prompt written as a string."""
    from graders import RewardModelGrader
    from tests.rm_support import make_tiny_rm

    grader = RewardModelGrader(path=str(make_tiny_rm(tmp_path / "rm")))
    answer = " It is 4."
    text = await grader.aevaluate(prompt="What is 2 + 2?", completion=answer, response=answer)
    parts = await grader.aevaluate(
        prompt=_parts("What is ", "2 + 2?"), completion=_parts(answer), response=answer
    )
    assert isinstance(text, GraderScore) and isinstance(parts, GraderScore), (text, parts)
    assert parts.score == text.score
