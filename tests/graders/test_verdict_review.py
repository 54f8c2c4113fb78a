"""Verdicts from realistic judge answers, served over the wire by a loopback judge.

Each case is an answer a real judge model gives (a reasoning model's ``<think>`` block, a
multi-digit score cut by ``max_tokens``, a digit-splitting tokenizer's logprobs) and checks the
score or the error that comes out of the whole path: the HTTP client, the parser, the grader.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from graders._judge import LLMGrader
from rm_service import GraderError, GraderScore
from rm_service.models import OpenAIChatModel
from rm_service.models._base import TokenLogprob
from tests.judge_server import JudgeServer, Reply

RECORD = {"query": "What is the capital of France?", "response": "Paris, on the Seine."}
VERDICT = '{"reason": "Correct and on topic.", "score": 4}'


@pytest.fixture(scope="module")
def server() -> Iterator[JudgeServer]:
    with JudgeServer() as srv:
        yield srv


def grader(server: JudgeServer, **kw: Any) -> LLMGrader:
    kw.setdefault("template", "generic")
    kw.setdefault("rubric", "Is the response a good answer to the query?")
    return LLMGrader(OpenAIChatModel("m", base_url=server.base_url, max_retries=0), **kw)


async def ask(server: JudgeServer, g: LLMGrader, reply: Reply | str) -> GraderScore | GraderError:
    server.script(reply)
    return await g.aevaluate(**RECORD)


# --- reasoning models: the <think> block is skipped, never read ----------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "<think>\nRight answer, concise. A 4, maybe a 5? It is short: 4.\n</think>\n\n" + VERDICT,
        # a draft verdict with another score in the reasoning: only the final one counts
        '<think>Draft: {"reason": "meh", "score": 2}. No, better.</think>\n' + VERDICT,
        # the chat template opened the block in the prompt (DeepSeek-R1, QwQ on vLLM)
        "Okay, the user asks for the capital of France.\n</think>\n\n" + VERDICT,
        "<think>\n\n</think>\n\n```json\n" + VERDICT + "\n```",
    ],
)
async def test_a_reasoning_block_before_the_verdict_is_skipped(
    server: JudgeServer, answer: str
) -> None:
    r = await ask(server, grader(server), answer)
    assert isinstance(r, GraderScore), r
    assert r.score == 0.75
    assert r.metadata["raw_score"] == 4


@pytest.mark.parametrize(
    "answer",
    [
        "<think>Right answer. Score 4.",  # cut before the block closed
        "<think>ok</think>\nThe score is 4.",  # prose after the block
        '<think>ok</think>\n{"score": 2}\n' + VERDICT,  # two objects after the block
        "<think>ok</think>",  # nothing after the block
    ],
)
async def test_what_follows_a_reasoning_block_must_be_the_whole_verdict(
    server: JudgeServer, answer: str
) -> None:
    r = await ask(server, grader(server), answer)
    assert isinstance(r, GraderError), r
    assert r.kind == "unparseable"


async def test_a_verdict_whose_reason_quotes_a_think_tag_is_read_whole(
    server: JudgeServer,
) -> None:
    answer = '{"reason": "It leaks its </think> tag but answers.", "score": 2}'
    r = await ask(server, grader(server), answer)
    assert isinstance(r, GraderScore), r
    assert r.score == 0.25


async def test_expected_score_after_a_reasoning_block_reads_the_final_score(
    server: JudgeServer,
) -> None:
    answer = '<think>draft {"reason": "x", "score": 2}</think>' + VERDICT
    reply = Reply(answer, logprobs={-2: {"4": 0.5, "5": 0.5}})
    r = await ask(server, grader(server, score_mode="expected"), reply)
    assert isinstance(r, GraderScore), r
    assert r.metadata["score_mode"] == "expected"
    assert r.score == pytest.approx(0.875)


# --- multi-digit scale values --------------------------------------------------------------------


async def test_label_mode_reads_a_ten_on_a_0_10_scale(server: JudgeServer) -> None:
    """With one token, a tokenizer that splits digits cut ``10`` to ``1``: 0.1 for a top mark."""
    g = grader(server, output="label", scale=(0, 10))
    r = await ask(server, g, "10")
    assert isinstance(r, GraderScore), r
    assert r.score == 1.0
    assert server.stats.last_body["max_tokens"] == 2
    r = await ask(server, g, "7")
    assert isinstance(r, GraderScore) and r.score == pytest.approx(0.7)


async def test_a_label_cut_where_it_may_begin_a_longer_one_is_unparseable(
    server: JudgeServer,
) -> None:
    g = grader(server, output="label", scale=(0, 10), max_tokens=1)
    r = await ask(server, g, "10")  # the server cuts it to "1", finish_reason "length"
    assert isinstance(r, GraderError), r
    assert r.kind == "unparseable"
    assert "may be the start of '10'" in r.error
    # a label that begins no other is whole even when cut
    r = await ask(server, g, "7 is my grade")
    assert isinstance(r, GraderScore) and r.score == pytest.approx(0.7)


@pytest.mark.parametrize("output", ["json", "label"])
async def test_expected_score_does_not_read_the_first_digit_of_10_as_1(
    server: JudgeServer, output: str
) -> None:
    """A judge torn between 9 and 10 (``10`` written ``1``, ``0``) scored 0.5, not about 0.95."""
    g = grader(server, scale=(0, 10), score_mode="expected", output=output)
    if output == "json":
        reply = Reply('{"reason": "ok", "score": 9}', logprobs={-2: {"9": 0.5, "1": 0.5}})
    else:
        reply = Reply("9", logprobs={0: {"9": 0.5, "1": 0.5}})
    r = await ask(server, g, reply)
    assert isinstance(r, GraderScore), r
    assert r.metadata["score_mode"] == "sampled_fallback"
    assert "'10'" in r.metadata["fallback_reason"]
    assert r.score == pytest.approx(0.9)


async def test_expected_score_on_0_10_still_reads_single_token_values(
    server: JudgeServer,
) -> None:
    g = grader(server, scale=(0, 10), score_mode="expected")
    dist = {"7": 0.5, "8": 0.5, "1": 0.001}  # a negligible "1" leaves the mean alone
    r = await ask(server, g, Reply('{"reason": "ok", "score": 7}', logprobs={-2: dist}))
    assert isinstance(r, GraderScore), r
    assert r.metadata["score_mode"] == "expected"
    assert r.score == pytest.approx(0.75)


# --- a cut answer says so ------------------------------------------------------------------------


async def test_an_answer_cut_at_max_tokens_says_so(server: JudgeServer) -> None:
    answer = json.dumps({"reason": "A long explanation " * 20, "score": 4})
    r = await ask(server, grader(server, max_tokens=16), answer)
    assert isinstance(r, GraderError), r
    assert r.kind == "unparseable"
    assert "cut at max_tokens=16" in r.error
    assert r.metadata["finish_reason"] == "length"


def test_a_sign_token_on_a_scale_with_negative_values_is_ambiguous() -> None:
    """``-`` at the score position carries the mass of the negative values, unknown which."""
    from graders._verdict import ambiguous_value  # here: new, so the other tests run on old code

    values = {str(v): v for v in range(-2, 3)}
    top = (("1", math.log(0.6)), ("-", math.log(0.4)))
    assert ambiguous_value(TokenLogprob("1", math.log(0.6), top), values) is not None
    whole = (("1", math.log(0.6)), ("-1", math.log(0.4)))  # a tokenizer that writes -1 whole
    assert ambiguous_value(TokenLogprob("1", math.log(0.6), whole), values) is None
