"""``/metrics`` (per-app registry), ``/readyz`` (judge endpoints probed), ``/graders``,
``/healthz``, OpenAPI, judge-backed grading with token usage, and a light ``import rm_service``."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.app import MATH_CFG, SLOW_CFG, client, make_app
from tests.judge_server import JudgeServer, Reply

GOOD = "<think>hm</think><answer>42</answer>"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def val(m: dict[Any, float], name: str, **labels: str) -> float:
    return m.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_counters_move(monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app()
    async with client(app) as c:
        await c.post("/grade", json={"records": [{"response": GOOD}, {"nothing": 1}]})
        await c.post("/get_reward", json={"query": ["abc"]})
        await c.get("/no/such/path")
        m = samples((await c.get("/metrics")).text)
    assert val(m, "rm_http_requests_total", endpoint="/grade", status="200") == 1
    assert val(m, "rm_http_requests_total", endpoint="/get_reward", status="200") == 1
    assert val(m, "rm_http_requests_total", endpoint="other", status="404") == 1
    assert val(m, "rm_http_request_duration_seconds_count", endpoint="/grade") == 1
    assert val(m, "rm_records_total", reward="main", status="ok") == 2
    assert val(m, "rm_records_total", reward="main", status="error") == 1
    assert val(m, "rm_grader_calls_total", grader="fmt", outcome="ok") == 2
    assert val(m, "rm_grader_calls_total", grader="slow", outcome="invalid_input") == 1
    assert val(m, "rm_unscored_total", component="reward", kind="invalid_input") == 1
    assert val(m, "rm_grader_call_duration_seconds_count", grader="slow") == 3
    assert val(m, "rm_grader_calls_in_flight") == 0
    assert val(m, "rm_records_in_flight") == 0 and val(m, "rm_records_queued") == 0


async def test_each_app_has_its_own_registry() -> None:
    a, b = make_app(), make_app()
    async with client(a) as c:
        await c.post("/grade", json={"records": [{"response": GOOD}]})
    async with client(b) as c:
        m = samples((await c.get("/metrics")).text)
    assert val(m, "rm_http_requests_total", endpoint="/grade", status="200") == 0


async def test_judge_backed_grading_reports_usage_cache_hits_and_ready(
    judge_server: JudgeServer,
) -> None:
    judge_server.responder = lambda body: Reply(json.dumps({"reason": "on topic", "score": 5}))
    cfg = {
        "judge": {"backend": "openai", "base_url": judge_server.base_url, "model": "m"},
        "cache": {},
        "graders": {"rel": {"type": "relevance"}},
    }
    app = make_app({"chat": cfg})
    rec = {"query": "Capital of France?", "response": "Paris."}
    async with client(app) as c:
        ready = await c.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["judges"][judge_server.base_url.rstrip("/")]["ok"] is True
        resp = await c.post("/grade", json={"records": [rec, rec, rec]})
        m = samples((await c.get("/metrics")).text)
    body = resp.json()
    assert [r["reward"] for r in body["results"]] == [1.0, 1.0, 1.0]
    assert body["results"][0]["reasons"]["rel"]
    usage = body["summary"]["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["cached_calls"] == 2 and judge_server.stats.requests == 1
    assert val(m, "rm_judge_cache_hits_total", grader="rel") == 2
    assert val(m, "rm_judge_tokens_total", grader="rel", kind="prompt_tokens") > 0


async def test_readyz_is_503_when_a_judge_endpoint_is_unreachable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}/v1"
    cfg = {
        "judge": {"backend": "openai", "base_url": base},
        "graders": {"rel": {"type": "relevance"}},
    }
    app = make_app({"rule": MATH_CFG, "chat": cfg}, ready_timeout=1.0)
    async with client(app) as c:
        resp = await c.get("/readyz")
        assert resp.status_code == 503
        assert resp.json()["ready"] is False
        assert resp.json()["judges"][base]["ok"] is False
        assert (await c.get("/healthz")).json() == {"status": "ok"}  # alive all the same


async def test_local_judges_and_rule_graders_count_as_ready() -> None:
    cfg = {"judge": {"backend": "local"}, "graders": {"rel": {"type": "relevance"}}}
    async with client(make_app({"rule": MATH_CFG, "local": cfg})) as c:
        resp = await c.get("/readyz")
    assert resp.status_code == 200
    assert resp.json() == {"ready": True, "rewards": ["rule", "local"], "judges": {}}


async def test_graders_lists_rewards_graders_weights_and_fields() -> None:
    async with client(make_app({"main": SLOW_CFG, "math": MATH_CFG})) as c:
        body = (await c.get("/graders")).json()
    assert body["default"] == "main"
    main = body["rewards"]["main"]
    assert main["reward"] == "reward"
    assert main["weights"] == {"fmt": 0.5, "slow": 0.5}
    assert main["graders"]["fmt"]["type"] == "format"
    assert main["graders"]["slow"]["required_fields"] == ["response"]
    math = body["rewards"]["math"]["graders"]["num"]
    assert math["required_fields"] == ["response", "reference_response"]
    assert math["mapper"] == {"reference_response": "label"}


async def test_openapi_documents_the_endpoints() -> None:
    async with client(make_app()) as c:
        spec = (await c.get("/openapi.json")).json()
        assert (await c.get("/docs")).status_code == 200
    for path in ("/grade", "/get_reward", "/graders", "/healthz", "/readyz", "/metrics"):
        assert path in spec["paths"]


def test_import_rm_service_does_not_import_fastapi() -> None:
    code = (
        "import sys, rm_service, rm_service.cli, rm_service._serve; "
        "print('fastapi' in sys.modules, 'uvicorn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False False", out.stderr


async def test_graders_describes_a_reward_with_its_default_aggregator() -> None:
    """Two graders and no ``aggregators:``: the runner adds an equal-weight sum. ``/graders``
    answered 500 (it looked the default up among the config's aggregators), so no remote client
    (TRL, verl, OpenRLHF by URL) could use such a reward."""
    cfg = {"graders": {"fmt": {"type": "format"}, "len": {"type": "length_penalty", "max_len": 50}}}
    async with client(make_app({"two": cfg})) as c:
        resp = await c.get("/graders")
    assert resp.status_code == 200, resp.text
    two = resp.json()["rewards"]["two"]
    assert two["reward"] == "reward"
    assert [a["name"] for a in two["aggregators"]] == ["reward"]
    assert two["weights"] == {"fmt": 0.5, "len": 0.5}
