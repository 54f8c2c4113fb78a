"""Bearer auth, body and batch limits (413/422), admission control (429 + Retry-After)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from rm_service._admission import Admission, Overloaded
from rm_service.app import create_app
from tests.app import SLOW_CFG, client, make_app

KEY = "s3cret-key"


async def test_without_a_key_everything_is_open() -> None:
    async with client(make_app()) as c:
        assert (await c.get("/graders")).status_code == 200
        assert (await c.post("/grade", json={"records": []})).status_code == 200


async def test_with_a_key_every_endpoint_but_healthz_needs_it() -> None:
    app = make_app(api_key=KEY)
    async with client(app) as c:
        for path in ("/graders", "/readyz", "/metrics", "/docs", "/openapi.json"):
            resp = await c.get(path)
            assert resp.status_code == 401, path
            assert resp.headers["www-authenticate"] == "Bearer"
        resp = await c.post("/grade", json={"records": []})
        assert resp.status_code == 401 and "missing bearer token" in resp.json()["detail"]
        resp = await c.get("/graders", headers={"Authorization": "Bearer wrong"})
        assert resp.status_code == 401 and "invalid bearer token" in resp.json()["detail"]
        resp = await c.get("/graders", headers={"Authorization": KEY})  # no scheme
        assert resp.status_code == 401
        assert (await c.get("/healthz")).status_code == 200
    async with client(app, headers={"Authorization": f"Bearer {KEY}"}) as c:
        for path in ("/graders", "/readyz", "/metrics", "/openapi.json"):
            assert (await c.get(path)).status_code == 200, path
        assert (await c.post("/grade", json={"records": []})).status_code == 200


async def test_key_comes_from_env_or_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RM_SERVICE_API_KEY", KEY)
    async with client(create_app({"main": SLOW_CFG})) as c:
        assert (await c.get("/graders")).status_code == 401
    monkeypatch.delenv("RM_SERVICE_API_KEY")
    (tmp_path / ".env").write_text("RM_SERVICE_API_KEY=from-dotenv\n")
    try:
        async with client(create_app({"main": SLOW_CFG})) as c:
            assert (await c.get("/graders")).status_code == 401
            ok = await c.get("/graders", headers={"Authorization": "Bearer from-dotenv"})
            assert ok.status_code == 200
    finally:
        os.environ.pop("RM_SERVICE_API_KEY", None)  # load_dotenv wrote it to os.environ


async def test_body_over_the_limit_is_413_naming_the_limit() -> None:
    app = make_app(max_body_bytes=1000)
    records = [{"response": "x" * 100} for _ in range(20)]
    async with client(app) as c:
        resp = await c.post("/grade", json={"records": records})
        assert resp.status_code == 413
        assert "max_body_bytes=1000" in resp.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
            data = json.dumps({"records": records}).encode()
            for i in range(0, len(data), 256):
                yield data[i : i + 256]

        resp = await c.post(
            "/grade", content=chunks(), headers={"content-type": "application/json"}
        )
        assert resp.status_code == 413
        assert "more than 1000" in resp.json()["detail"]


async def test_too_many_records_is_413_naming_the_limit() -> None:
    app = make_app(max_records=3, get_reward_max_records=2)
    async with client(app) as c:
        resp = await c.post("/grade", json={"records": [{"response": "a"}] * 4})
        assert resp.status_code == 413
        detail = resp.json()["detail"]
        assert "4 records in field 'records'" in detail and "max_records=3" in detail
        resp = await c.post("/get_reward", json={"query": ["a"] * 3})  # its own limit
        assert resp.status_code == 413 and "field 'query'" in resp.json()["detail"]
        assert "get_reward_max_records=2" in resp.json()["detail"]


async def test_malformed_json_and_missing_fields_are_422() -> None:
    async with client(make_app()) as c:
        resp = await c.post(
            "/grade", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert resp.status_code == 422
        resp = await c.post("/grade", json={"recs": []})
        assert resp.status_code == 422
        assert resp.json()["detail"][0]["loc"] == ["body", "records"]
        resp = await c.post("/get_reward", json={"query": "not a list"})
        assert resp.status_code == 422
        assert resp.json()["detail"][0]["loc"] == ["body", "query"]


async def _wait_for(cond: Callable[[], bool]) -> None:
    """Poll ``cond`` (admission state has no event to wait on), for at most 3 s."""
    async with asyncio.timeout(3.0):
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def test_overload_is_429_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RM_TEST_DELAY", "0.4")
    app = make_app(max_in_flight=2, max_records=2, max_queue=0, retry_after=3)
    admission = app.state.admission
    async with client(app) as c:
        first = asyncio.ensure_future(
            c.post("/grade", json={"records": [{"response": "a"}, {"response": "b"}]})
        )
        await _wait_for(lambda: admission.in_flight == 2)
        resp = await c.post("/grade", json={"records": [{"response": "c"}]})
        assert resp.status_code == 429
        assert resp.headers["retry-after"] == "3"
        assert "max_in_flight=2" in resp.json()["detail"]
        assert (await first).status_code == 200  # the admitted request is unaffected
        assert admission.in_flight == 0
        resp = await c.post("/grade", json={"records": [{"response": "c"}]})
        assert resp.status_code == 200  # capacity is back
    assert b"rm_admission_rejected_total 1.0" in app.state.metrics.render()


async def test_a_bounded_queue_waits_then_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RM_TEST_DELAY", "0.2")
    app = make_app(max_in_flight=2, max_records=2, max_queue=2)
    async with client(app) as c:
        reqs = [
            asyncio.ensure_future(c.post("/grade", json={"records": [{"response": "a"}] * 2}))
            for _ in range(2)
        ]
        done = await asyncio.gather(*reqs)
    assert [r.status_code for r in done] == [200, 200]


async def test_queue_wait_past_queue_timeout_is_429(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RM_TEST_DELAY", "1")
    app = make_app(max_in_flight=1, max_records=1, max_queue=5, queue_timeout=0.1)
    async with client(app) as c:
        first = asyncio.ensure_future(c.post("/grade", json={"records": [{"response": "a"}]}))
        await _wait_for(lambda: app.state.admission.in_flight == 1)
        resp = await c.post("/grade", json={"records": [{"response": "b"}]})
        assert resp.status_code == 429 and "waited 0.1 s" in resp.json()["detail"]
        assert app.state.admission.queued == 0
        assert (await first).status_code == 200


async def test_admission_is_fifo_and_cleans_up_after_cancelled_waiters() -> None:
    adm = Admission(max_in_flight=4, max_queue=10)
    await adm.acquire(3)
    order: list[str] = []

    async def take(name: str, n: int) -> None:
        await adm.acquire(n)
        order.append(name)

    big = asyncio.ensure_future(take("big", 4))
    await asyncio.sleep(0)
    small = asyncio.ensure_future(take("small", 1))  # would fit now, but must not overtake
    cancelled = asyncio.ensure_future(take("cancelled", 2))
    await asyncio.sleep(0.01)
    assert order == [] and adm.queued == 7
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    assert adm.queued == 5
    adm.release(3)
    await big
    assert order == ["big"] and adm.in_flight == 4
    adm.release(4)
    await small
    assert order == ["big", "small"] and adm.in_flight == 1 and adm.queued == 0
    with pytest.raises(Overloaded, match="max_queue=0"):
        full = Admission(max_in_flight=1, max_queue=0)
        await full.acquire(1)
        await full.acquire(1)
