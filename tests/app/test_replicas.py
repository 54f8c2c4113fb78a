"""Two real ``rm-service serve`` replicas sharing one real Redis (``cache: {redis: ...}``), grading
through the loopback judge server, whose request count is the truth about what was paid for.

What must hold: a verdict one replica paid for is a hit on the other; Redis killed mid-run loses
no verdict (every record scored, every real call counted, the failures in ``/metrics``) and is
used again once it is back; a frozen Redis delays grading by about the socket timeout, not more.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rm_service.cli import main
from tests.app.uvicorn_server import Server, running_server
from tests.judge_server import JudgeServer, Reply
from tests.redis_support import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture, imported for pytest

REDIS_TIMEOUT = 0.25
RETRY_AFTER = 0.5


@dataclass
class Cluster:
    judge: JudgeServer
    redis: RedisServer
    a: Server
    b: Server

    def grade(self, server: Server, texts: list[str]) -> dict[str, Any]:
        records = [{"id": t, "query": "Capital of France?", "response": t} for t in texts]
        resp = httpx.post(f"{server.base_url}/grade", json={"records": records}, timeout=30)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        # Every record scored: no verdict lost, whatever Redis did.
        assert [r["status"] for r in body["results"]] == ["ok"] * len(texts), body
        assert all(r["reward"] == pytest.approx(0.75) for r in body["results"]), body
        return body


def _config(judge: JudgeServer, redis: RedisServer) -> str:
    return json.dumps(
        {
            "judge": {"backend": "openai", "base_url": judge.base_url, "model": "m"},
            "cache": {
                "redis": redis.url,
                "redis_timeout": REDIS_TIMEOUT,
                "redis_retry_after": RETRY_AFTER,
            },
            "graders": {"rel": {"type": "relevance"}},
        }
    )


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    with contextlib.ExitStack() as stack:
        judge = stack.enter_context(JudgeServer())
        judge.responder = lambda body: Reply(json.dumps({"reason": "on topic", "score": 4}))
        config = _config(judge, redis_server)
        a, b = (
            stack.enter_context(running_server(tmp_path_factory.mktemp(n), config=config))
            for n in ("a", "b")
        )
        yield Cluster(judge, redis_server, a, b)


def _metric(server: Server, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    prefix = f"{name}{{{want}}} " if want else f"{name} "
    for line in httpx.get(f"{server.base_url}/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


def _texts(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"Paris, answer {tag}-{i}." for i in range(n)]


def test_a_verdict_paid_by_one_replica_is_a_hit_on_the_other(cluster: Cluster) -> None:
    texts = _texts(6)
    calls = cluster.judge.stats.requests
    first = cluster.grade(cluster.a, texts)
    assert cluster.judge.stats.requests == calls + 6
    assert first["summary"]["usage"]["calls"] == 6
    second = cluster.grade(cluster.b, texts)
    assert cluster.judge.stats.requests == calls + 6  # B paid for nothing
    assert second["summary"]["usage"] == {**second["summary"]["usage"], "calls": 0}
    assert second["summary"]["usage"]["cached_calls"] == 6
    assert _metric(cluster.b, "rm_cache_backend_hits_total", backend="redis") >= 6


def test_redis_killed_mid_run_loses_no_verdict_and_is_used_when_back(cluster: Cluster) -> None:
    paid = _texts(5)
    cluster.grade(cluster.a, paid)
    errors_before = _metric(cluster.b, "rm_cache_backend_errors_total", backend="redis", op="get")
    cluster.redis.stop()
    try:
        calls = cluster.judge.stats.requests
        body = cluster.grade(cluster.b, paid)  # in Redis, which is gone: B must pay again
        assert cluster.judge.stats.requests == calls + 5
        assert body["summary"]["usage"]["calls"] == 5  # real calls, counted as such
        more = _texts(5)
        cluster.grade(cluster.b, more)
        assert cluster.judge.stats.requests == calls + 10
        errors = _metric(cluster.b, "rm_cache_backend_errors_total", backend="redis", op="get")
        assert errors > errors_before
        assert _metric(cluster.b, "rm_cache_backend_skipped_total", backend="redis", op="set") > 0
    finally:
        cluster.redis.start()  # empty: it kept nothing
    # Back: after the retry interval, a verdict A pays for is again a hit on B.
    deadline = time.monotonic() + 10 * RETRY_AFTER
    while True:
        time.sleep(RETRY_AFTER)
        text = _texts(1)
        cluster.grade(cluster.a, text)
        calls = cluster.judge.stats.requests
        body = cluster.grade(cluster.b, text)
        if cluster.judge.stats.requests == calls:
            assert body["summary"]["usage"]["cached_calls"] == 1
            break
        assert time.monotonic() < deadline, "the replicas never used Redis again"
    log = cluster.b.log()
    assert log.count("going on without it") == 1, log  # one warning per outage, not per call
    assert "is back" in log


def test_a_frozen_redis_delays_grading_by_the_timeout_at_most(cluster: Cluster) -> None:
    texts = _texts(16)
    cluster.redis.pause()
    try:
        start = time.monotonic()
        cluster.grade(cluster.a, texts)
        elapsed = time.monotonic() - start
    finally:
        cluster.redis.resume()
    # A read and a write, each bounded by the timeout (a retry included), then the breaker
    # skips Redis; without timeouts the client's default would wait 5 s per operation.
    assert elapsed < 8 * REDIS_TIMEOUT, elapsed


@pytest.mark.parametrize(
    ("block", "field"),
    [
        (
            "cache: {redis: 'http://127.0.0.1:6379'}",
            "cache.redis: Value error, expected a redis://",
        ),
        ("cache: {redis: 'redis://h', path: c.db}", "set path (a SQLite file) or redis"),
        ("judge: {rpm: 60, rate_limit_redis: 'localhost:6379'}", "judge.rate_limit_redis"),
    ],
)
def test_a_bad_redis_setting_fails_start_up_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], block: str, field: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"{block}\ngraders:\n  f: {{type: format}}\n")
    assert main(["serve", "--config", str(bad), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and field in err, err
