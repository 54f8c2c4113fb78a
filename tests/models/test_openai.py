"""OpenAIChatModel against the scripted judge server: the real openai client on a real socket."""

from __future__ import annotations

import asyncio
import math
import pickle
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rm_service import ConfigError
from rm_service.models import (
    ChatModel,
    ChatResult,
    JudgeConnectionError,
    JudgeError,
    JudgeHTTPError,
    JudgeRateLimited,
    JudgeTimeout,
    SamplingParams,
    _openai,
)
from rm_service.models._limits import RateLimiter
from rm_service.models._openai import NO_API_KEY, OpenAIChatModel
from rm_service.models._retry import (
    RetryPolicy,
    parse_retry_after,
    retry_after_from_headers,
)
from tests.judge_server import JudgeServer, Reply

FAST_RETRY = RetryPolicy(max_retries=4, base_delay=0.01, max_delay=0.05)
ASK = [
    {"role": "system", "content": "You are a judge."},
    {"role": "user", "content": "Rate: 2+2=4"},
]


@pytest.fixture
def server() -> Iterator[JudgeServer]:
    with JudgeServer() as srv:
        yield srv


TRANSPORT = "direct"


@pytest.fixture(autouse=True, params=["direct", "aiohttp"])
def _each_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every behaviour test runs on the no-SDK path and through the real openai client."""
    monkeypatch.setattr(sys.modules[__name__], "TRANSPORT", request.param)


def make(srv: JudgeServer, **kw: Any) -> OpenAIChatModel:
    kw.setdefault("timeout", 2.0)
    kw.setdefault("transport", TRANSPORT)
    if "max_retries" not in kw:
        kw.setdefault("retry_policy", FAST_RETRY)
    return OpenAIChatModel("judge", base_url=srv.base_url, api_key="sk-test-1234567890", **kw)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- answers --------------------------------------------------------------------------------------


async def test_plain_answer_usage_and_request_shape(server: JudgeServer) -> None:
    server.responder = lambda body: Reply("The answer is correct. Score: 5")
    result = await make(server).achat(ASK, SamplingParams(max_tokens=64))
    assert isinstance(result, ChatResult)
    assert result.text == "The answer is correct. Score: 5"
    assert result.model == "judge"
    assert result.usage.prompt_tokens == 6  # whitespace words of both messages
    assert result.usage.completion_tokens == 9  # The| answer| is| correct|.| Score|:| |5
    assert result.finish_reason == "stop"
    assert result.attempts == 1 and result.logprobs is None and not result.cached
    assert 0 < result.latency_s < 60  # this call's seconds, not a clock; loose: CI is loaded
    body = server.stats.last_body
    assert body == {"model": "judge", "messages": ASK, "temperature": 0.0, "max_tokens": 64}
    assert server.stats.authorization == "Bearer sk-test-1234567890"
    assert isinstance(make(server), ChatModel)


async def test_length_finish_reason(server: JudgeServer) -> None:
    server.responder = lambda body: Reply("one two three four five")
    result = await make(server).achat(ASK, SamplingParams(max_tokens=2))
    assert (result.text, result.finish_reason) == ("one two", "length")


async def test_logprobs_parsed(server: JudgeServer) -> None:
    dist = {"5": 0.6, "4": 0.3, "3": 0.1}
    server.responder = lambda body: Reply("Score: 5", logprobs={-1: dist})
    result = await make(server).achat(ASK, SamplingParams(logprobs=True, top_logprobs=3))
    assert server.stats.last_body["logprobs"] is True
    assert server.stats.last_body["top_logprobs"] == 3
    assert result.logprobs is not None
    assert [t.token for t in result.logprobs] == ["Score", ":", " ", "5"]
    last = result.logprobs[-1]
    assert last.logprob == pytest.approx(math.log(0.6))
    assert [tok for tok, _ in last.top] == ["5", "4", "3"]
    assert sum(math.exp(lp) for _, lp in last.top) == pytest.approx(1.0)


async def test_logprobs_without_alternatives(server: JudgeServer) -> None:
    result = await make(server).achat(ASK, SamplingParams(logprobs=True))
    assert "top_logprobs" not in server.stats.last_body
    assert result.logprobs is not None and result.logprobs[0].top == ()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (SamplingParams(), None),
        (SamplingParams(response_format="json_object"), {"type": "json_object"}),
        (
            SamplingParams(response_format="json_schema", json_schema={"name": "v", "schema": {}}),
            {"type": "json_schema", "json_schema": {"name": "v", "schema": {}}},
        ),
    ],
)
async def test_response_format_only_when_configured(
    server: JudgeServer, params: SamplingParams, expected: dict[str, Any] | None
) -> None:
    await make(server).achat(ASK, params)
    assert server.stats.last_body.get("response_format") == expected
    assert "seed" not in server.stats.last_body and "logprobs" not in server.stats.last_body


async def test_seed_default_params_and_extra_body(server: JudgeServer) -> None:
    model = make(
        server,
        default_params=SamplingParams(temperature=0.7, seed=7),
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )
    await model.achat(ASK)
    body = server.stats.last_body
    assert (body["seed"], body["temperature"]) == (7, 0.7)
    assert body["chat_template_kwargs"] == {"enable_thinking": False}


def test_json_schema_without_schema_fails_at_construction() -> None:
    with pytest.raises(ConfigError, match="json_schema"):
        OpenAIChatModel(
            "m",
            base_url="http://127.0.0.1:1/v1",
            default_params=SamplingParams(response_format="json_schema"),
        )


# -- retries and failures -------------------------------------------------------------------------


async def test_retry_after_is_honoured(server: JudgeServer) -> None:
    server.script(Reply.rate_limited(0.2))
    result = await make(server).achat(ASK)
    first, second = server.stats.arrivals
    assert result.attempts == 2
    assert 0.2 <= second - first < 1.0


async def test_server_error_retried_then_success(server: JudgeServer) -> None:
    server.script(Reply.server_error(), Reply.server_error(503))
    result = await make(server).achat(ASK)
    assert (result.text, result.attempts) == ("5", 3)
    assert server.stats.by_kind == {"server_error": 2, "ok": 1}


@pytest.mark.parametrize(
    ("reply", "error"),
    [(Reply.server_error(), JudgeHTTPError), (Reply.rate_limited(0.01), JudgeRateLimited)],
)
async def test_exhausted_retries(
    server: JudgeServer, reply: Reply, error: type[JudgeError]
) -> None:
    server.responder = lambda body: reply
    with pytest.raises(error) as info:
        await make(server, retry_policy=RetryPolicy(max_retries=2, base_delay=0.01)).achat(ASK)
    assert info.value.attempts == 3
    assert server.stats.requests == 3
    if isinstance(info.value, JudgeRateLimited):
        assert info.value.retry_after == pytest.approx(0.01)
    else:
        assert isinstance(info.value, JudgeHTTPError) and info.value.status == 500


async def test_retry_after_longer_than_deadline_fails_fast(server: JudgeServer) -> None:
    server.script(Reply.rate_limited(30))
    started = time.monotonic()
    with pytest.raises(JudgeRateLimited) as info:
        await make(server, timeout=0.5, deadline=2.0).achat(ASK)
    assert time.monotonic() - started < 0.5
    assert (info.value.attempts, info.value.retry_after) == (1, 30.0)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_not_retried(server: JudgeServer, status: int) -> None:
    server.script(Reply.error(status, "nope"))
    with pytest.raises(JudgeHTTPError) as info:
        await make(server).achat(ASK)
    assert (info.value.status, info.value.attempts, server.stats.requests) == (status, 1, 1)
    assert "nope" in str(info.value)


async def test_hang_times_out_within_deadline(server: JudgeServer) -> None:
    server.responder = lambda body: Reply.hang_forever()
    started = time.monotonic()
    with pytest.raises(JudgeTimeout) as info:
        await make(server, timeout=0.3, deadline=0.5).achat(ASK)
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 1.0
    assert info.value.attempts == 2  # the second attempt was cut short by the deadline
    assert "0.5 s deadline" in str(info.value)


async def test_one_hang_then_answer(server: JudgeServer) -> None:
    server.script(Reply.hang_forever())
    result = await make(server, timeout=0.3).achat(ASK)
    assert result.attempts == 2 and result.latency_s >= 0.3


@pytest.mark.parametrize("kind", ["not_json", "not_completion", "empty_choices", "no_content"])
async def test_garbage_is_retried_once_then_http_error(server: JudgeServer, kind: Any) -> None:
    server.responder = lambda body: Reply.garbage(kind)
    with pytest.raises(JudgeHTTPError) as info:
        await make(server).achat(ASK)
    assert info.value.status is None and info.value.attempts == 2
    assert "malformed" in str(info.value)


async def test_garbage_once_then_answer(server: JudgeServer) -> None:
    server.script(Reply.garbage("not_json"))
    assert (await make(server).achat(ASK)).attempts == 2


@pytest.mark.parametrize("transport", ["direct", "aiohttp", "httpx"])
async def test_connection_refused(transport: Any) -> None:
    model = OpenAIChatModel(
        "m",
        base_url=f"http://127.0.0.1:{closed_port()}/v1",
        transport=transport,
        timeout=1.0,
        retry_policy=RetryPolicy(max_retries=1, base_delay=0.01),
    )
    with pytest.raises(JudgeConnectionError) as info:
        await model.achat(ASK)
    assert info.value.attempts == 2


async def test_fault_injection_every_call_ends_as_answer_or_judge_error() -> None:
    async with JudgeServer(fault_rate=0.3, seed=1) as srv:
        model = make(srv, max_concurrency=32)
        results = await asyncio.gather(
            *(model.achat(ASK) for _ in range(200)), return_exceptions=True
        )
    answers = [r for r in results if isinstance(r, ChatResult)]
    assert all(isinstance(r, ChatResult | JudgeError) for r in results)
    assert all(a.text == "5" for a in answers)
    assert len(answers) >= 185  # only a second garbage body in a row is given up on
    assert sum(srv.stats.by_kind.values()) == srv.stats.requests > 200
    assert set(srv.stats.by_kind) == {
        "ok",
        "rate_limit",
        "server_error",
        "not_json",
        "empty_choices",
    }


# -- loops, threads, concurrency ------------------------------------------------------------------


def test_reuse_across_asyncio_run_and_threads(server: JudgeServer) -> None:
    model = make(server)
    assert asyncio.run(model.achat(ASK)).text == "5"
    assert asyncio.run(model.achat(ASK)).text == "5"
    assert model._states == {}  # each loop's client was closed when its loop shut down
    answers: list[str] = []
    threads = [
        threading.Thread(target=lambda: answers.append(asyncio.run(model.achat(ASK)).text))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert answers == ["5", "5", "5"]
    assert server.stats.requests == 5


async def test_aclose_then_reuse(server: JudgeServer) -> None:
    model = make(server)
    await model.achat(ASK)
    await model.aclose()
    assert model._states == {}
    assert (await model.achat(ASK)).text == "5"


async def test_all_concurrent_calls_in_flight_at_once(server: JudgeServer) -> None:
    server.latency = 0.3
    model = make(server, max_concurrency=64)
    started = time.monotonic()
    await asyncio.gather(*(model.achat(ASK) for _ in range(64)))
    assert server.stats.peak_in_flight == 64
    assert time.monotonic() - started < 1.5


async def test_calls_above_max_concurrency_wait_for_a_slot(server: JudgeServer) -> None:
    # 12 waves of 8 calls at 0.1 s: the last wave queues 1.1 s, past the 1 s timeout, so a
    # timeout that counted queueing would fail it; each attempt has 0.9 s to spare for a busy box.
    server.latency = 0.1
    model = make(server, max_concurrency=8, timeout=1.0)
    results = await asyncio.gather(*(model.achat(ASK) for _ in range(96)))
    assert server.stats.peak_in_flight == 8
    assert all(r.attempts == 1 for r in results)  # queueing did not eat the request timeout


async def test_cancelled_call_releases_its_slot(server: JudgeServer) -> None:
    arrived = threading.Event()

    def hang_once(body: dict[str, Any]) -> Reply:
        if arrived.is_set():
            return Reply()
        arrived.set()
        return Reply.hang_forever()

    server.responder = hang_once
    model = make(server, max_concurrency=1)
    task = asyncio.create_task(model.achat(ASK))
    assert await asyncio.to_thread(arrived.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await asyncio.wait_for(model.achat(ASK), 2)).text == "5"


async def test_rpm_limit_spaces_requests(server: JudgeServer) -> None:
    """A burst of 20, then 10 more at 0.05 s intervals. The least wait is measured from before
    the first call, not from the first arrival: the limiter's clock starts at the first call,
    and the first request can take 0.05-0.5 s to arrive (the SDK client's first use), which made
    the span between arrivals shorter than the limiter's 0.5 s."""
    model = make(server, rpm=1200)  # 20 per second, a burst of 20
    start = time.monotonic()
    await asyncio.gather(*(model.achat(ASK) for _ in range(30)))
    arrivals = sorted(server.stats.arrivals)
    assert arrivals[19] - arrivals[0] < 0.35  # the burst (20 spaced requests would take 0.95 s)
    assert arrivals[-1] - start >= 0.45  # the 30th waits for 10 refills
    assert arrivals[-1] - arrivals[0] < 1.0
    assert (arrivals[-1] - arrivals[19]) / 10 >= 0.035  # spaced after the burst


async def test_rate_limit_wait_past_deadline_is_a_timeout(server: JudgeServer) -> None:
    model = make(server, rpm=60, timeout=0.2, deadline=0.5)  # one call, then 1 per second
    await model.achat(ASK)
    with pytest.raises(JudgeTimeout, match="rate limit"):
        await model.achat(ASK)


# -- configuration --------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(_openai, "_dotenv_loaded", True)  # keep a developer's .env out
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return monkeypatch


async def test_environment_and_masked_repr(
    server: JudgeServer, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("OPENAI_BASE_URL", server.base_url)
    clean_env.setenv("OPENAI_API_KEY", "sk-secret-abcdefghijklmnop")
    model = OpenAIChatModel("judge")
    assert model.base_url == server.base_url
    assert "secret" not in repr(model) and "sk-***mnop" in repr(model)
    await model.achat(ASK)
    assert server.stats.authorization == "Bearer sk-secret-abcdefghijklmnop"


async def test_local_endpoint_needs_no_key(
    server: JudgeServer, clean_env: pytest.MonkeyPatch
) -> None:
    await OpenAIChatModel("judge", base_url=server.base_url).achat(ASK)
    assert server.stats.authorization == f"Bearer {NO_API_KEY}"


def test_openai_endpoint_needs_a_key(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIChatModel("gpt-4o-mini")


def test_a_key_with_its_newline_is_a_config_error(clean_env: pytest.MonkeyPatch) -> None:
    """``OPENAI_API_KEY=$(cat key.txt)`` keeps no newline, but a key pasted into a .env or read
    by a program may: no HTTP client can send it, so the config says so at load."""
    clean_env.setenv("OPENAI_API_KEY", "sk-abcdef\n")
    with pytest.raises(ConfigError, match="line break"):
        OpenAIChatModel("gpt-4o-mini")
    with pytest.raises(ConfigError, match="line break"):
        OpenAIChatModel("judge", base_url="http://127.0.0.1:1/v1", api_key="sk\r\nX-Evil: 1")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"transport": "requests"},
        {"max_concurrency": 0},
        {"timeout": 0},
        {"max_retries": 2, "retry_policy": RetryPolicy()},
        {"base_url": "localhost:8000/v1"},
    ],
)
def test_bad_configuration(kwargs: dict[str, Any]) -> None:
    kwargs.setdefault("base_url", "http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError):
        OpenAIChatModel("m", **kwargs)


def test_pickle_keeps_configuration_only(server: JudgeServer) -> None:
    model = make(server, rpm=6000)
    asyncio.run(model.achat(ASK))
    clone = pickle.loads(pickle.dumps(model))
    assert repr(clone) == repr(model)
    assert asyncio.run(clone.achat(ASK)).text == "5"


async def test_httpx_transport(server: JudgeServer) -> None:
    result = await make(server, transport="httpx").achat(ASK)
    assert (result.text, result.attempts) == ("5", 1)


# -- retry policy and limiter units ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.2", 0.2),
        ("3", 3.0),
        ("-4", 0.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),  # 10 s after `now` below
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(value, now=now) == expected


def test_retry_after_ms_wins() -> None:
    assert retry_after_from_headers({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_from_headers({"retry-after": "9"}) == 9.0


def test_retry_policy_decisions() -> None:
    policy = RetryPolicy(max_retries=3, base_delay=1.0, max_delay=3.0, max_retry_after=5.0)
    assert policy.retryable(JudgeHTTPError("x", status=502), 0)
    assert policy.retryable(JudgeHTTPError("x", status=408), 0)
    assert not policy.retryable(JudgeHTTPError("x", status=400), 0)
    assert policy.retryable(JudgeHTTPError("x", status=None), 1)
    assert not policy.retryable(JudgeHTTPError("x", status=None), 2)
    assert policy.retryable(JudgeTimeout("x"), 0) and policy.retryable(JudgeConnectionError("x"), 0)
    assert all(0 <= policy.delay(1) <= 1.0 for _ in range(100))
    assert all(0 <= policy.delay(5) <= 3.0 for _ in range(100))
    assert 5.0 <= policy.delay(1, retry_after=60) <= 5.5
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)


def test_rate_limiter_reservations() -> None:
    limiter = RateLimiter(rpm=600)  # one per 0.1 s, burst of 10
    waits = [limiter.reserve() for _ in range(12)]
    assert waits[:10] == [0.0] * 10
    assert waits[10] == pytest.approx(0.1, abs=0.01) and waits[11] == pytest.approx(0.2, abs=0.01)
    assert limiter.reserve(max_wait=0.05) is None  # refused, nothing reserved
    assert limiter.reserve() == pytest.approx(0.3, abs=0.01)


def test_token_limiter_charges_large_requests_in_full() -> None:
    limiter = RateLimiter(tpm=6000)  # 100 tokens per second, burst of 100
    assert limiter.reserve(1000) == 0.0  # bigger than the bucket: goes now, leaves a debt
    assert limiter.reserve(1) == pytest.approx(9.0, abs=0.05)
    limiter.settle(estimated=1000, actual=100)  # the first call used far fewer tokens
    assert limiter.reserve(1) == pytest.approx(0.01, abs=0.05)
    with pytest.raises(ValueError):
        RateLimiter(rpm=0)


async def test_the_default_pool_does_not_cap_a_wider_runner(server: JudgeServer) -> None:
    """A runner raised to 128 calls in flight gets 128 from a judge built with its defaults: the
    model's own ceiling was 64, which queued half the calls behind it, unseen. The judge holds
    each call 1 s: long enough for the slowest transport (the SDK's) to start all 128 on a
    loaded 2-core box before the first answer comes back."""
    server.latency = 1.0
    model = make(server)
    await asyncio.gather(*(model.achat(ASK) for _ in range(128)))
    assert server.stats.peak_in_flight == 128


async def test_a_lone_surrogate_in_a_message_reaches_the_judge(server: JudgeServer) -> None:
    """JSON input may hold ``"\\ud800"``, so a record's response can: the request body used to
    be encoded as UTF-8, which cannot hold it, and the call failed (``internal``). It goes as
    U+FFFD, which a server's tokenizer can read; through the SDK transports too (the SDK
    encodes the body itself, as UTF-8, and failed the same way)."""
    text = "Paris \ud800 is the capital of France."
    result = await make(server).achat([{"role": "user", "content": text}])
    assert result.text == "5"
    assert server.stats.bodies[-1]["messages"][0]["content"] == text.replace("\ud800", "\ufffd")


def test_an_asctime_retry_after_is_utc_whatever_the_local_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Retry-After: Sun Dec  6 04:45:35 2026`` (an HTTP-date without a zone) was read as
    local time: 8 hours off in Los Angeles, so the client gave up or retried at once."""
    import time as _time

    from rm_service.models._retry import parse_retry_after

    now = 1_800_000_000.0
    asctime = _time.strftime("%a %b %d %H:%M:%S %Y", _time.gmtime(now + 5))
    for zone in ("America/Los_Angeles", "Asia/Tokyo", "UTC"):
        monkeypatch.setenv("TZ", zone)
        _time.tzset()
        assert parse_retry_after(asctime, now=now) == pytest.approx(5.0)
    monkeypatch.delenv("TZ")
    _time.tzset()
