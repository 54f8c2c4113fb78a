"""Verdicts of reasoning judges in label mode, think tags in any case, and a content filter's
answer, served over the wire by a loopback judge.

Each case is an answer a real judge gives and checks what comes out of the whole path (the HTTP
client, the parser, the grader): a score read from the judge's own verdict, or an unscored
result saying why, never a draft score from inside its reasoning.
"""

from __future__ import annotations

import pytest

from rm_service import GraderError, GraderScore
from rm_service.models import JudgeCache
from tests.graders.test_verdict_review import VERDICT, ask, grader, server
from tests.judge_server import JudgeServer, Reply

__all__ = ["server"]  # the fixture, imported for pytest


# --- label mode: a reasoning block before the label is skipped, never read -----------------------


@pytest.mark.parametrize(
    "answer",
    [
        "<think>\nCorrect and concise. A 2? No, it is right: 4.\n</think>\n\n4",
        # the chat template opened the block in the prompt (DeepSeek-R1, QwQ on vLLM)
        "The response names Paris, so at least a 2.\n</think>\n\n4",
        "<THINK>A 2? No: 4.</THINK>\n4.",
    ],
)
async def test_a_label_judge_that_reasons_first_is_read_after_its_reasoning(
    server: JudgeServer, answer: str
) -> None:
    """Label mode read the whole answer as the label, so a reasoning judge was unparseable on
    every record ("the answer is not one of the labels")."""
    r = await ask(server, grader(server, output="label", max_tokens=256), answer)
    assert isinstance(r, GraderScore), r
    assert (r.score, r.metadata["raw_score"]) == (0.75, 4)


async def test_label_probabilities_are_never_read_inside_the_reasoning_block(
    server: JudgeServer,
) -> None:
    """With expected scoring, an answer that is no label was read from the label probabilities
    at the first token, which for a judge whose template opened the block is a draft inside its
    reasoning: a 2 it went on to reject scored 0.275."""
    g = grader(server, output="label", max_tokens=256, score_mode="expected")
    answer = "2 seems low, since the response is right.\n</think>\n\nIt is a good answer."
    r = await ask(server, g, Reply(answer, logprobs={0: {"2": 0.9, "3": 0.1}}))
    assert isinstance(r, GraderError), r
    assert r.kind == "unparseable"


async def test_the_expected_label_score_is_read_at_the_label_after_the_block(
    server: JudgeServer,
) -> None:
    """The label's probabilities are those at the label, after the block: the first token of
    the answer is the block's opening tag, which carries no label."""
    g = grader(server, output="label", max_tokens=256, score_mode="expected")
    answer = "<think>A 2? No.</think>\n4"
    r = await ask(server, g, Reply(answer, logprobs={-1: {"4": 0.5, "5": 0.5}}))
    assert isinstance(r, GraderScore), r
    assert r.metadata["score_mode"] == "expected"
    assert r.score == pytest.approx((4.5 - 1) / 4)


async def test_a_label_judge_cut_while_reasoning_is_unparseable_and_says_so(
    server: JudgeServer,
) -> None:
    r = await ask(
        server,
        grader(server, output="label", max_tokens=8),
        Reply("<think>The answer is 4", finish_reason="length"),
    )
    assert isinstance(r, GraderError), r
    assert r.kind == "unparseable"
    assert "never closes" in r.error and "max_tokens=8" in r.error


# --- the think tags in any case ------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        '<THINK>Draft: {"reason": "meh", "score": 2}.</THINK>\n' + VERDICT,
        "<Think>\nFine.\n</Think>\n\n" + VERDICT,
        "<think>Fine.</THINK>\n" + VERDICT,
        "Fine, a 2 at first sight.\n</THINK>\n" + VERDICT,  # only the closing tag
    ],
)
async def test_think_tags_in_any_case_are_skipped_as_lowercase_ones_are(
    server: JudgeServer, answer: str
) -> None:
    """The opening tag was matched in any case but the closing one only in lowercase, so an
    uppercase block was unparseable while the same block in lowercase scored."""
    r = await ask(server, grader(server), answer)
    assert isinstance(r, GraderScore), r
    assert (r.score, r.metadata["raw_score"]) == (0.75, 4)


async def test_an_uppercase_block_is_still_never_read(server: JudgeServer) -> None:
    r = await ask(server, grader(server), '<THINK>{"reason": "x", "score": 2}</THINK>')
    assert isinstance(r, GraderError), r
    assert r.kind == "unparseable"


# --- a content filter's answer -------------------------------------------------------------------


async def test_an_answer_stopped_by_a_content_filter_is_unscored_and_not_cached(
    server: JudgeServer,
) -> None:
    """``finish_reason: content_filter`` with a verdict-shaped text scored as if the judge had
    answered, and the answer was cached, so the record kept that score on every later ask."""
    g = grader(server, cache=JudgeCache())
    r = await ask(server, g, Reply(VERDICT, finish_reason="content_filter"))
    assert isinstance(r, GraderError), r
    assert r.kind == "judge_error"
    assert "content filter" in r.error
    assert r.metadata["finish_reason"] == "content_filter"
    again = await ask(server, g, '{"reason": "Fine.", "score": 5}')
    assert isinstance(again, GraderScore), again
    assert (again.score, again.metadata["cached"]) == (1.0, False)


@pytest.mark.parametrize("output", ["json", "label"])
async def test_a_withheld_answer_says_content_filter_not_malformed(
    server: JudgeServer, output: str
) -> None:
    """A null content with ``finish_reason: content_filter`` was a "malformed chat completion
    (TypeError: message content is None ...)", retried as garbage."""
    body = (
        b'{"id": "x", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", '
        b'"content": null}, "finish_reason": "content_filter"}]}'
    )
    r = await ask(server, grader(server, output=output), Reply(body=body))
    assert isinstance(r, GraderError), r
    assert r.kind == "judge_error"
    assert "content filter" in r.error and "malformed" not in r.error
