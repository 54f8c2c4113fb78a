"""What the judge client does with answers that hold no verdict text, and what the judge caches do
with values that are not an answer a fresh call would give.

The client's answers come from a loopback judge over the wire (both the direct transport and the
openai SDK's); the caches are a real SQLite file and a real ``redis-server``. Each case ends as an
unscored result that says why, or as a miss that asks the judge again: never a crash, never a
score read from a value no judge gave, never the text ``"None"``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from graders._judge import LLMGrader
from rm_service import GraderError, GraderScore
from rm_service.models import JudgeCache, JudgeError, JudgeHTTPError, OpenAIChatModel
from rm_service.models._cache import decode_result
from rm_service.models._openai import Transport
from rm_service.models._redis import RedisStore
from rm_service.models._retry import RetryPolicy
from tests.judge_server import JudgeServer, Reply
from tests.redis_support import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture, imported for pytest

RECORD = {"query": "What is the capital of France?", "response": "Paris, on the Seine."}
VERDICT = '{"reason": "Correct and on topic.", "score": 4}'
FRESH = '{"reason": "Asked again.", "score": 5}'
ASK = [{"role": "user", "content": "Rate: 2+2=4"}]
RETRY = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.02)


@pytest.fixture
def server() -> Iterator[JudgeServer]:
    """A judge per test: a scripted reply a test leaves unused must not answer the next one."""
    with JudgeServer() as srv:
        yield srv


def _model(server: JudgeServer, transport: Transport = "direct", **kw: Any) -> OpenAIChatModel:
    kw.setdefault("retry_policy", RETRY)
    return OpenAIChatModel("m", base_url=server.base_url, transport=transport, **kw)


def _grader(server: JudgeServer, **kw: Any) -> LLMGrader:
    return LLMGrader(
        _model(server, max_retries=0, retry_policy=None),
        template="generic",
        rubric="Is the response a good answer to the query?",
        **kw,
    )


def _completion(message: dict[str, Any], finish_reason: str = "stop") -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", **message}}
    body = {"id": "x", "object": "chat.completion", "model": "m"}
    return json.dumps({**body, "choices": [{**choice, "finish_reason": finish_reason}]}).encode()


# --- answers with no verdict text ----------------------------------------------------------------


@pytest.mark.parametrize("transport", ["direct", "aiohttp"])
async def test_a_refusal_is_a_judge_error_that_says_so_and_is_not_retried(
    server: JudgeServer, transport: Transport
) -> None:
    """A refusal (``content: null``, ``message.refusal`` set) was a "malformed chat completion
    (TypeError: message content is None ...)" and asked again as garbage is."""
    body = _completion({"content": None, "refusal": "I can't help with that."})
    server.script(Reply(body=body), Reply(body=body))
    with pytest.raises(JudgeError) as info:
        await _model(server, transport).achat(ASK)
    assert not isinstance(info.value, JudgeHTTPError)
    assert "refused" in str(info.value) and "I can't help with that." in str(info.value)
    assert info.value.attempts == 1


async def test_a_refusal_is_unscored_as_judge_error(server: JudgeServer) -> None:
    server.script(Reply(body=_completion({"content": None, "refusal": "No."})))
    r = await _grader(server).aevaluate(**RECORD)
    assert isinstance(r, GraderError), r
    assert r.kind == "judge_error"
    assert "refused to answer: 'No.'" in r.error and "None" not in r.error


@pytest.mark.parametrize("transport", ["direct", "aiohttp"])
@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            _completion({"content": [{"type": "text", "text": VERDICT}]}),
            "the message content is a list of 1 part(s) (text), not the plain text",
        ),
        (
            b'{"error": {"message": "model overloaded", "type": "server_error"}}',
            "HTTP 200 with an error instead of a completion: 'model overloaded'",
        ),
        (b'{"id": "x", "object": "chat.completion", "choices": []}', "no choices"),
        (b"[1, 2]", "the body is a JSON list, not an object"),
        (_completion({"content": None}), "the message content is None, not text"),
    ],
)
async def test_a_body_with_no_answer_text_says_what_it_holds(
    server: JudgeServer, transport: Transport, body: bytes, says: str
) -> None:
    """These were named by the Python error they raised inside the parser (``KeyError:
    'choices'``, ``IndexError: list index out of range``, ``TypeError``), not by what the
    endpoint sent. They stay malformed answers: one retry, then ``JudgeHTTPError``."""
    server.script(Reply(body=body), Reply(body=body))
    with pytest.raises(JudgeHTTPError) as info:
        await _model(server, transport).achat(ASK)
    assert info.value.status is None and info.value.attempts == 2
    assert f"malformed chat completion ({says}" in str(info.value)


@pytest.mark.parametrize(("output", "text"), [("label", "4"), ("json", VERDICT)])
async def test_a_generated_token_that_is_not_text_is_a_judge_error_not_internal(
    server: JudgeServer, output: str, text: str
) -> None:
    """A ``null`` token in the logprobs reached the verdict reader, whose ``.strip()`` or
    ``"".join`` raised: an ``internal`` error (a crash of the grader) for a broken answer."""
    entry: dict[str, Any] = {"token": None, "logprob": -0.1, "top_logprobs": []}
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "logprobs": {"content": [entry]},
        "finish_reason": "stop",
    }
    server.script(Reply(body=json.dumps({"model": "m", "choices": [choice]}).encode()))
    r = await _grader(server, output=output, score_mode="expected").aevaluate(**RECORD)
    assert isinstance(r, GraderError), r
    assert r.kind == "judge_error"
    assert "a logprob entry's token is None, not text" in r.error


# --- the SQLite cache: a value read back is put to the test a fresh answer is --------------------


async def _stored_then(path: Path, server: JudgeServer, value: str) -> GraderScore | GraderError:
    """Cache a verdict in ``path``, overwrite its stored value with ``value``, then grade the
    same record with a fresh cache on that file while the judge would answer ``FRESH``."""
    first = _grader(server, cache=JudgeCache(path=path))
    server.script(VERDICT)
    assert isinstance(await first.aevaluate(**RECORD), GraderScore)
    await first.aclose()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE judge_cache SET value = ?", (value,))
    db.close()
    g = _grader(server, cache=JudgeCache(path=path))
    server.script(FRESH)
    try:
        return await g.aevaluate(**RECORD)
    finally:
        await g.aclose()


def _stored(**change: Any) -> str:
    good = {
        "text": VERDICT,
        "model": "m",
        "usage": [3, 1],
        "latency_s": 0.1,
        "logprobs": None,
        "finish_reason": "stop",
    }
    return json.dumps({**good, **change})


@pytest.mark.parametrize(
    "value",
    [
        # the answer's text as null: it was read as the text "None", replayed as unparseable
        _stored(text=None),
        # an answer this grader never stores (another version's, a hand edit): replayed for ever
        _stored(text="I cannot grade this."),
        # an answer a content filter stopped: scored 0.75 from the cache
        _stored(finish_reason="content_filter"),
        _stored(finish_reason={"why": "foreign"}),
    ],
)
async def test_a_stored_answer_no_fresh_one_would_be_is_a_miss_and_replaced(
    tmp_path: Path, server: JudgeServer, value: str
) -> None:
    path = tmp_path / "judge.sqlite"
    r = await _stored_then(path, server, value)
    assert isinstance(r, GraderScore), r
    assert (r.score, r.reason, r.metadata["cached"]) == (1.0, "Asked again.", False)
    with sqlite3.connect(path) as db:
        (stored,) = db.execute("SELECT value FROM judge_cache").fetchone()
    db.close()
    assert json.loads(stored)["text"] == FRESH  # the judge's fresh answer replaced it


@pytest.mark.parametrize(
    "change",
    [
        {"text": None},
        {"model": 7},
        {"finish_reason": ["stop"]},
        {"logprobs": [[None, -0.1, []]]},
    ],
)
def test_a_stored_field_of_the_wrong_type_is_a_corrupt_entry(change: dict[str, Any]) -> None:
    """``str()`` turned a null text or token into ``"None"``: a value nothing wrote."""
    with pytest.raises(ValueError, match="a corrupt cache entry"):
        decode_result(_stored(**change))


def test_an_alternative_that_is_not_text_reads_back_as_the_client_gave_it() -> None:
    """``str()`` made a ``null`` alternative the text ``"None"``, a value no judge gave (a label
    ``None`` would have matched it); the verdict reader drops it as it does a fresh one's."""
    top = decode_result(_stored(logprobs=[["4", -0.1, [[None, -2.0], ["4", -0.1]]]])).logprobs
    assert top is not None and top[0].top == ((None, -2.0), ("4", -0.1))


# --- the Redis cache: the same, against a real redis-server --------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        _stored(text=None),
        _stored(text="I cannot grade this."),
        _stored(finish_reason="content_filter"),
        "\udcff not even JSON",
    ],
)
async def test_a_stored_redis_value_no_fresh_answer_would_be_is_a_miss_and_replaced(
    redis_server: RedisServer, server: JudgeServer, value: str
) -> None:
    redis_server.flush()
    one, two = (JudgeCache(store=RedisStore(redis_server.url)) for _ in range(2))
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        server.script(VERDICT)
        assert isinstance(await _grader(server, cache=one).aevaluate(**RECORD), GraderScore)
        (key,) = await client.keys("rm:judge:*")
        await client.set(key, value.encode("utf-8", "surrogateescape"))
        server.script(FRESH)
        r = await _grader(server, cache=two).aevaluate(**RECORD)  # another replica
        assert isinstance(r, GraderScore), r
        assert (r.score, r.reason, r.metadata["cached"]) == (1.0, "Asked again.", False)
        stored = await client.get(key)
        assert stored is not None and json.loads(stored)["text"] == FRESH
    finally:
        await client.aclose()
        await one.aclose()
        await two.aclose()


async def test_no_failed_answer_is_stored_in_redis(
    redis_server: RedisServer, server: JudgeServer
) -> None:
    """A 500, an unparseable verdict, a refusal and a content filter's answer leave nothing in
    the shared store: a transient failure stored there would fail the record on every replica."""
    redis_server.flush()
    cache = JudgeCache(store=RedisStore(redis_server.url))
    g = _grader(server, cache=cache)
    try:
        for reply in (
            Reply.server_error(),
            Reply("I cannot grade this."),
            Reply(body=_completion({"content": None, "refusal": "No."})),
            Reply(VERDICT, finish_reason="content_filter"),
        ):
            server.script(reply)
            r = await g.aevaluate(**RECORD)
            assert isinstance(r, GraderError), (reply, r)
            assert redis_server.dbsize() == 0
        server.script(VERDICT)
        r = await g.aevaluate(**RECORD)
        assert isinstance(r, GraderScore) and r.score == 0.75
        assert redis_server.dbsize() == 1
    finally:
        await cache.aclose()
