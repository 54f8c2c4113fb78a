"""``type: remote_reward_model`` against the mock reward-model server (tests/server.py): the
three wire forms, batching per request, and every failure unscored with a kind, never a 0."""

from __future__ import annotations

import asyncio
import math
import pickle
import time
from collections.abc import Iterator
from typing import Any

import pytest

from graders import get_grader
from graders._remote_rm import RemoteRewardModelGrader
from rm_service._exceptions import ConfigError
from rm_service._result import GraderError, GraderScore
from tests.judge_server import Reply
from tests.rm_server import RMServer, raw_score, render_chat, sigmoid


@pytest.fixture
def server() -> Iterator[RMServer]:
    with RMServer() as srv:
        yield srv


PAIRS = [(f"Question {i}: what is {i}+{i}?", f"It is {2 * i}.") for i in range(12)]


def rm(server: RMServer, path: str = "classify", **params: Any) -> RemoteRewardModelGrader:
    params.setdefault("format", path)
    grader = get_grader("remote_reward_model", url=server.url(path), **params)
    assert isinstance(grader, RemoteRewardModelGrader)
    return grader


async def grade_all(grader: RemoteRewardModelGrader, pairs=PAIRS) -> list[Any]:
    return list(await asyncio.gather(*(grader.aevaluate(query=q, response=r) for q, r in pairs)))


def unscored(result: Any, kind: str) -> GraderError:
    assert isinstance(result, GraderError), result
    assert result.kind == kind, result
    return result


# -- the three forms -------------------------------------------------------------------------


async def test_classify_probabilities_are_the_scores_and_raw_is_in_metadata(server) -> None:
    got = await grade_all(rm(server))
    for (q, r), res in zip(PAIRS, got, strict=True):
        assert isinstance(res, GraderScore), res
        p = sigmoid(raw_score(q + r))  # the model's one probability; map identity
        assert res.score == pytest.approx(p)
        assert res.metadata["raw"] == pytest.approx(p)
        assert res.metadata["score_map"] == {"map": "identity"}
    body = server.stats.bodies[0]
    assert body["add_special_tokens"] is False  # TRL's tokenisation: the text as it is
    assert all(t.startswith("Question") for t in body["input"])


async def test_pooling_and_get_reward_send_raw_values_through_a_sigmoid(server) -> None:
    pooled = await grade_all(rm(server, "pooling", score_map={"map": "sigmoid", "temperature": 2}))
    served = await grade_all(rm(server, "get_reward"))
    for (q, r), a, b in zip(PAIRS, pooled, served, strict=True):
        raw = raw_score(q + r)
        assert a.metadata["raw"] == pytest.approx(raw)  # use_activation false: the logit
        assert a.score == pytest.approx(sigmoid(raw / 2))
        assert b.metadata["raw"] == pytest.approx(raw)
        assert b.score == pytest.approx(sigmoid(raw))
    pooling_body, reward_body = server.stats.bodies[0], server.stats.bodies[-1]
    assert pooling_body["use_activation"] is False and pooling_body["encoding_format"] == "float"
    assert "query" in reward_body and "prompts" in reward_body and "labels" not in reward_body
    assert reward_body["query"][0] == reward_body["prompts"][0] + PAIRS[0][1]


async def test_get_reward_sends_labels_and_a_flagged_sample_is_unscored(server) -> None:
    grader = rm(server, "get_reward", send_labels=True)
    server.script(
        Reply(body=b'{"rewards": [0.0, 0.7], "extra_logs": {"rm_error": [1.0, 0.0]}}', kind="x")
    )
    got = await asyncio.gather(
        grader.aevaluate(query="a", response="b", label="4"),
        grader.aevaluate(query="c", response="d", label=None),
    )
    assert server.stats.bodies[0]["labels"] == ["4", None]
    assert "rm_error" in unscored(got[0], "judge_error").error  # its 0.0 is a fallback
    assert got[1].score == pytest.approx(sigmoid(0.7))


async def test_chat_input_sends_messages_for_the_server_template(server) -> None:
    grader = rm(server, input_format="chat")
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    got = await asyncio.gather(
        grader.aevaluate(query="Hi?", response="Hello."),
        grader.aevaluate(query=conversation, response="4"),
    )
    first = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    second = [*conversation, {"role": "assistant", "content": "4"}]
    assert got[0].score == pytest.approx(sigmoid(raw_score(render_chat(first))))
    assert got[1].score == pytest.approx(sigmoid(raw_score(render_chat(second))))
    assert server.stats.batch_sizes == [1, 1]  # vLLM's chat form: one conversation a request


async def test_trl_shaped_records_are_read_as_the_local_grader_reads_them(server) -> None:
    user = [{"role": "user", "content": "2+2?"}]
    answer = [{"role": "assistant", "content": "4"}]
    text_rm, chat_rm = rm(server), rm(server, input_format="chat")
    got = [
        await text_rm.aevaluate(prompt="P: ", completion="walrus", query="q", response="r"),
        await chat_rm.aevaluate(prompt=user, completion=answer, query="2+2?", response="4"),
        await chat_rm.aevaluate(prompt="2+2?", completion="4", response="4"),
        await chat_rm.aevaluate(messages=[*user, *answer], query="other", response="4"),
    ]
    conversation = render_chat([*user, *answer])
    expected = [raw_score("P: walrus")] + [raw_score(conversation)] * 3
    assert [r.score for r in got] == pytest.approx([sigmoid(x) for x in expected])


async def test_a_prompt_in_messages_and_the_answer_in_response_sends_the_answer(
    server,
) -> None:
    """Chat input with the prompt's turns in ``messages`` and the answer in ``response`` sent
    the prompt alone: every answer, an empty one too, got the same score. The response is now
    the assistant's turn, as the local grader reads it."""
    grader = rm(server, input_format="chat", pregates=False)
    asked = [{"role": "user", "content": "What is the capital of France?"}]
    got = [await grader.aevaluate(messages=asked, response=a) for a in ("Paris.", "Banana!")]
    for result, answer in zip(got, ("Paris.", "Banana!"), strict=True):
        whole = render_chat([*asked, {"role": "assistant", "content": answer}])
        assert result.score == pytest.approx(sigmoid(raw_score(whole)))
    assert got[0].score != got[1].score


async def test_text_input_refuses_a_chat_query_as_invalid_input(server) -> None:
    res = await rm(server).aevaluate(query=[{"role": "user", "content": "x"}], response="y")
    assert "input_format: chat" in unscored(res, "invalid_input").error
    assert server.stats.requests == 0


# -- batching per request ----------------------------------------------------------------------


async def test_concurrent_records_share_requests_with_the_same_values() -> None:
    with RMServer(latency=0.05) as server:
        batched = await grade_all(rm(server, max_batch=5, max_inflight=2))
        assert server.stats.items == len(PAIRS)
        assert server.stats.requests < len(PAIRS)
        assert max(server.stats.batch_sizes) == 5
        assert max(r.metadata["batch_size"] for r in batched) == 5
        server.reset_stats()
        one_by_one = [
            await rm(server, max_batch=1).aevaluate(query=q, response=r) for q, r in PAIRS
        ]
        assert server.stats.batch_sizes == [1] * len(PAIRS)
    assert [r.score for r in batched] == [r.score for r in one_by_one]
    assert [r.metadata["raw"] for r in batched] == [r.metadata["raw"] for r in one_by_one]


async def test_max_wait_gathers_records_that_arrive_apart(server) -> None:
    grader = rm(server, max_wait_ms=150)

    async def later(i: int) -> Any:
        await asyncio.sleep(0.02 * i)
        return await grader.aevaluate(query=PAIRS[i][0], response=PAIRS[i][1])

    got = await asyncio.gather(*(later(i) for i in range(4)))
    assert all(isinstance(r, GraderScore) for r in got)
    assert server.stats.batch_sizes == [4]


def test_one_grader_serves_several_event_loops_and_pickles(server) -> None:
    grader = rm(server)
    first = asyncio.run(grader.aevaluate(query="q", response="r"))
    second = asyncio.run(grader.aevaluate(query="q", response="r"))  # a new loop, a new session
    copy = pickle.loads(pickle.dumps(grader))
    third = asyncio.run(copy.aevaluate(query="q", response="r"))
    assert first.score == second.score == third.score == pytest.approx(sigmoid(raw_score("qr")))


# -- failures: unscored with a kind, never a number ---------------------------------------------


async def test_a_429_is_retried_after_retry_after_then_scored(server) -> None:
    server.script(Reply.rate_limited(0.2))
    started = time.perf_counter()
    res = await rm(server).aevaluate(query="q", response="r")
    assert isinstance(res, GraderScore) and res.metadata["attempts"] == 2
    assert time.perf_counter() - started >= 0.2
    assert server.stats.by_kind["rate_limit"] == 1


async def test_429_and_500_every_time_are_unscored_judge_errors(server) -> None:
    server.script(*[Reply.rate_limited(0.01)] * 2)
    limited = await rm(server, max_retries=1).aevaluate(query="q", response="r")
    assert "429" in unscored(limited, "judge_error").error
    assert limited.metadata["attempts"] == 2
    server.script(*[Reply.server_error()] * 2)
    failed = await rm(server, max_retries=1).aevaluate(query="q", response="r")
    assert "HTTP 500" in unscored(failed, "judge_error").error


async def test_a_hang_hits_the_deadline_and_is_unscored_timeout(server) -> None:
    server.script(*[Reply.hang_forever()] * 3)
    grader = rm(server, timeout=0.2, deadline=0.5)
    started = time.perf_counter()
    res = await asyncio.gather(*(grader.aevaluate(query=q, response=r) for q, r in PAIRS[:3]))
    assert time.perf_counter() - started < 2.0
    for r in res:
        assert "timed out" in unscored(r, "timeout").error


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (Reply.garbage("not_json"), "not JSON"),
        (Reply(body=b'{"object": "error", "message": "loading"}', kind="x"), "no 'data' list"),
        (Reply(kind="wrong_count"), "2 items for 3 inputs"),
    ],
)
async def test_a_garbage_body_fails_the_batch_as_a_judge_error(server, reply, says) -> None:
    server.script(reply, reply)  # malformed bodies get one retry, as for the judges
    got = await grade_all(rm(server, max_retries=1), PAIRS[:3])
    for r in got:
        assert says in unscored(r, "judge_error").error
    assert server.stats.requests == 2


async def test_one_bad_item_is_unparseable_and_the_others_keep_their_values() -> None:
    raw = lambda text: math.nan if "NAN" in text else raw_score(text)  # noqa: E731
    with RMServer(raw) as server:
        got = await asyncio.gather(
            rm(server, "pooling").aevaluate(query="fine", response="ok"),
            rm(server, "pooling").aevaluate(query="NAN", response="ok too"),
        )
        assert isinstance(got[0], GraderScore)
        bad = unscored(got[1], "unparseable")
        assert "finite" in bad.error and math.isnan(bad.metadata["raw"])
        # identity on a raw logit: out of [0, 1] is an error, never clamped to 0 or 1
        wrong_map = rm(server, "pooling", score_map={"map": "identity"})
        res = await wrong_map.aevaluate(query="x", response="y")
        assert "outside [0, 1]" in unscored(res, "unparseable").error


@pytest.mark.parametrize(
    "flags",
    ["[1]", "1", '["x", 0]', '{"0": 1}'],
    ids=["too-few", "a-scalar", "not-numbers", "an-object"],
)
async def test_rm_error_flags_that_cannot_be_read_are_a_malformed_answer(server, flags) -> None:
    """``extra_logs.rm_error`` says which rewards are the server's stand-ins. Flags of the wrong
    length or shape were dropped, so a flagged sample's fallback 0.0 was scored as a reward."""
    grader = rm(server, "get_reward")
    body = f'{{"rewards": [0.0, 0.7], "extra_logs": {{"rm_error": {flags}}}}}'.encode()
    server.script(*[Reply(body=body, kind="x")] * 4)  # the retry gets the same answer
    got = await asyncio.gather(
        grader.aevaluate(query="a", response="b"), grader.aevaluate(query="c", response="d")
    )
    for result in got:
        assert "rm_error" in unscored(result, "judge_error").error


async def test_true_as_an_rm_error_flag_marks_its_sample(server) -> None:
    grader = rm(server, "get_reward")
    body = b'{"rewards": [0.0, 0.7], "extra_logs": {"rm_error": [true, false]}}'
    server.script(Reply(body=body, kind="x"))
    got = await asyncio.gather(
        grader.aevaluate(query="a", response="b"), grader.aevaluate(query="c", response="d")
    )
    assert "fallback" in unscored(got[0], "judge_error").error
    assert got[1].score == pytest.approx(sigmoid(0.7))


async def test_a_value_too_large_for_a_float_fails_its_item_alone(server) -> None:
    """An integer past the float range raised OverflowError for the whole batch (internal)."""
    grader = rm(server, max_batch=8, max_wait_ms=50)
    big = "1" + "0" * 400
    body = f'{{"data": [{{"index": 0, "probs": [{big}]}}, {{"index": 1, "probs": [0.8]}}]}}'
    server.script(Reply(body=body.encode(), kind="x"))
    got = await asyncio.gather(
        grader.aevaluate(query="a", response="b"), grader.aevaluate(query="c", response="d")
    )
    assert "too large for a float" in unscored(got[0], "unparseable").error
    assert isinstance(got[1], GraderScore) and got[1].score == pytest.approx(0.8)
    assert server.stats.batch_sizes == [2]


async def test_chat_input_is_charged_to_the_token_budget(server) -> None:
    """With ``input_format: chat`` the prompt and response fields are empty (the text is in
    the messages), so the tpm budget was charged nothing and never limited a request."""
    budgeted = rm(server, input_format="chat", tpm=12_000, max_batch=1, pregates=False)
    records = [{"query": "q" * 400, "response": "a" * 400} for _ in range(3)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    got = await asyncio.gather(*(budgeted.aevaluate(**r) for r in records))
    assert all(isinstance(r, GraderScore) for r in got)
    # 200 estimated tokens each against 200 tokens a second with a second's burst: the budget
    # holds the third request back (unlimited, the three take milliseconds)
    assert loop.time() - started > 0.5


async def test_a_two_class_model_needs_label_index() -> None:
    with RMServer(num_classes=2) as server:
        res = await rm(server).aevaluate(query="q", response="r")
        assert "label_index" in unscored(res, "unparseable").error
        picked = await rm(server, label_index=1).aevaluate(query="q", response="r")
        assert picked.score == pytest.approx(sigmoid(raw_score("qr")))
        assert picked.metadata["num_classes"] == 2


async def test_an_unreachable_server_is_a_judge_error() -> None:
    with RMServer() as server:
        url = server.url("classify")
    grader = get_grader("remote_reward_model", url=url, max_retries=0)
    res = await grader.aevaluate(query="q", response="r")
    assert "cannot reach" in unscored(res, "judge_error").error


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"url": "vllm:8000"}, "url must be"),
        ({"url": "http://h", "format": "score"}, "format must be"),
        ({"url": "http://h", "format": "get_reward", "input_format": "chat"}, "input_format: chat"),
        ({"url": "http://h", "score_map": {"map": "tanh"}}, "score_map.map"),
        ({"url": "http://h", "api_key_env": "RM_TEST_SURELY_UNSET"}, "RM_TEST_SURELY_UNSET"),
        ({"url": "http://h", "send_labels": True}, "send_labels needs format: get_reward"),
        ({"format": "pooling"}, "url"),
    ],
)
def test_bad_params_fail_at_load_naming_the_field(params, says) -> None:
    with pytest.raises(ConfigError, match=says.replace(".", r"\.")):
        get_grader("remote_reward_model", **params)


def test_a_key_with_a_line_break_fails_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RM_TEST_KEY", "sk-rm\n")
    with pytest.raises(ConfigError, match="line break"):
        get_grader("remote_reward_model", url="http://h", api_key_env="RM_TEST_KEY")


def test_a_url_without_a_path_gets_the_format_s() -> None:
    grader = get_grader("remote_reward_model", url="http://vllm:8000/", format="pooling")
    assert grader.client.url == "http://vllm:8000/pooling"  # type: ignore[attr-defined]


async def test_a_gamed_response_scores_0_and_is_never_sent() -> None:
    with RMServer() as server:
        grader = rm(server)
        gamed = await grader.aevaluate(query="What is 17 * 23?", response="Thought process:")
        echo = await grader.aevaluate(
            query="Explain photosynthesis briefly.", response="Explain photosynthesis briefly."
        )
        assert server.stats.requests == 0
        for result, gate in ((gamed, "master_key"), (echo, "restates_query")):
            assert isinstance(result, GraderScore) and result.score == 0.0, result
            assert result.metadata["pregate"] == gate
        honest = await grader.aevaluate(query="What is 17 * 23?", response="It is 391.")
        assert isinstance(honest, GraderScore) and "raw" in honest.metadata
        assert server.stats.requests == 1
        off = rm(server, pregates=False)
        assert "raw" in (await off.aevaluate(query="q?", response="Thought process:")).metadata
