"""The scripted judge server itself: wire format, faults, stats and bounded hangs."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.judge_server import (
    JudgeServer,
    Reply,
    judge_server,  # noqa: F401 (the shared fixture, used below)
    tokenize,
)

BODY = {"model": "m", "messages": [{"role": "user", "content": "grade this answer"}]}


_HTTP = httpx.Client()  # shared: a fresh client per request costs ~20 ms (SSL context setup)


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    _HTTP.close()


def post(
    srv: JudgeServer, body: dict[str, Any] | None = None, timeout: float = 5
) -> httpx.Response:
    return _HTTP.post(f"{srv.base_url}/chat/completions", json=body or BODY, timeout=timeout)


def wait_until(condition: Any, limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def srv() -> Iterator[JudgeServer]:
    with JudgeServer() as server:
        yield server


def test_tokenize_round_trips_and_splits_digits() -> None:
    for text in ["Score: 45", "The answer is  correct.\n", "", "naïve_x 3.5/5"]:
        assert "".join(tokenize(text)) == text
    assert tokenize("Score: 45") == ["Score", ":", " ", "4", "5"]


def test_completion_shape_and_usage(srv: JudgeServer) -> None:
    srv.responder = lambda body: "Looks right. 4"
    data = post(srv).json()
    assert data["object"] == "chat.completion" and data["model"] == "m"
    choice = data["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Looks right. 4", "refusal": None}
    assert choice["finish_reason"] == "stop" and choice["logprobs"] is None
    assert data["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    models = _HTTP.get(f"{srv.base_url}/models", timeout=5).json()
    assert models["data"][0]["object"] == "model"


def test_max_tokens_truncates(srv: JudgeServer) -> None:
    srv.responder = lambda body: "one two three"
    data = post(srv, {**BODY, "max_completion_tokens": 2}).json()
    assert data["choices"][0]["message"]["content"] == "one two"
    assert data["choices"][0]["finish_reason"] == "length"


def test_logprobs_follow_the_replys_distribution(srv: JudgeServer) -> None:
    srv.responder = lambda body: Reply("Score: 4", logprobs={-1: {"4": 0.5, "5": 0.3, "3": 0.2}})
    data = post(srv, {**BODY, "logprobs": True, "top_logprobs": 2}).json()
    content = data["choices"][0]["logprobs"]["content"]
    assert [c["token"] for c in content] == ["Score", ":", " ", "4"]
    assert content[0]["logprob"] == 0.0 and content[0]["top_logprobs"][0]["token"] == "Score"
    last = content[-1]
    assert last["logprob"] == pytest.approx(math.log(0.5)) and last["bytes"] == [52]
    assert [t["token"] for t in last["top_logprobs"]] == ["4", "5"]
    srv.responder = lambda body: Reply("3", logprobs={0: {"4": 1.0}})  # sampled token unlisted
    data = post(srv, {**BODY, "logprobs": True}).json()
    only = data["choices"][0]["logprobs"]["content"][0]
    assert only["logprob"] == -30.0 and only["top_logprobs"] == []


def test_script_then_responder(srv: JudgeServer) -> None:
    srv.script("first", Reply.error(404, "no such model"), Reply.rate_limited("2"))
    assert post(srv).json()["choices"][0]["message"]["content"] == "first"
    missing = post(srv)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no such model"
    limited = post(srv)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "2")
    assert post(srv).json()["choices"][0]["message"]["content"] == "5"
    assert srv.stats.by_kind == {"ok": 2, "http_404": 1, "rate_limit": 1}


@pytest.mark.parametrize("kind", ["not_json", "not_completion", "empty_choices", "no_content"])
def test_garbage(srv: JudgeServer, kind: Any) -> None:
    srv.script(Reply.garbage(kind))
    resp = post(srv)
    assert resp.status_code == 200
    if kind == "not_json":
        assert resp.headers["content-type"].startswith("text/html")
        with pytest.raises(ValueError):
            resp.json()
    elif kind == "not_completion":
        assert "choices" not in resp.json()
    elif kind == "empty_choices":
        assert resp.json()["choices"] == []
    else:
        assert resp.json()["choices"][0]["message"]["content"] is None


def test_fault_rate_is_seeded() -> None:
    def kinds(seed: int) -> list[str]:
        with JudgeServer(fault_rate=0.5, seed=seed) as server:
            out = []
            for _ in range(30):
                resp = post(server)
                out.append(str(resp.status_code) + resp.headers["content-type"][:9])
            assert server.stats.requests == 30
            return out

    first = kinds(3)
    assert first == kinds(3) and first != kinds(4)
    assert 5 < sum(k != "200applicati" for k in first) < 25


def test_latency_fixed_and_per_request() -> None:
    with JudgeServer(latency=lambda body: body.get("temperature", 0.0)) as server:
        started = time.monotonic()
        post(server, {**BODY, "temperature": 0.2})
        assert time.monotonic() - started >= 0.2
        server.script(Reply(latency=0.0))
        started = time.monotonic()
        post(server, {**BODY, "temperature": 2.0})
        assert time.monotonic() - started < 1.5


def test_responder_errors_become_500s(srv: JudgeServer) -> None:
    def broken(body: dict[str, Any]) -> Reply:
        raise RuntimeError("oops")

    srv.responder = broken
    assert post(srv).status_code == 500
    assert srv.stats.by_kind["responder_error"] == 1 and "oops" in srv.stats.errors[0]
    bad = _HTTP.post(f"{srv.base_url}/chat/completions", content=b"{", timeout=5)
    assert bad.status_code == 400


def test_stats_bodies_bounded_and_reset() -> None:
    with JudgeServer(record=2) as server:
        for i in range(3):
            post(server, {**BODY, "seed": i})
        assert [b["seed"] for b in server.stats.bodies] == [1, 2]
        assert server.stats.last_body["seed"] == 2
        assert server.stats.authorization is None
        root = server.base_url.rsplit("/v1", 1)[0]
        assert _HTTP.get(f"{root}/_mock/stats", timeout=5).json()["requests"] == 3
        server.reset_stats()
        assert server.stats.requests == 0 and server.stats.last_body == {}


def test_abandoned_hang_leaves_no_request_in_flight(srv: JudgeServer) -> None:
    srv.script(Reply.hang_forever())
    with pytest.raises(httpx.ReadTimeout):
        post(srv, timeout=0.2)
    assert wait_until(lambda: srv.stats.in_flight == 0, 2)
    assert srv.stats.by_kind["hang"] == 1


def test_stop_ends_hangs_at_once() -> None:
    server = JudgeServer(lambda body: Reply.hang_forever()).start()
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(post(server, timeout=30).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    assert wait_until(lambda: server.stats.in_flight == 1)
    started = time.monotonic()
    server.stop()
    thread.join(5)
    assert not thread.is_alive() and outcome
    assert time.monotonic() - started < 2


async def test_async_context_manager() -> None:
    async with JudgeServer() as server:
        resp = await asyncio.to_thread(post, server)
        assert resp.status_code == 200
    with pytest.raises(httpx.ConnectError):
        post(server)


def test_shared_fixture(judge_server: JudgeServer) -> None:  # noqa: F811 (the fixture)
    judge_server.script("scripted")
    assert post(judge_server).json()["choices"][0]["message"]["content"] == "scripted"
