"""Judges nested in a committee are probed by ``/readyz``; shutdown closes what serving opened."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from graders import CommitteeGrader, RelevanceGrader
from rm_service import GradingRunner
from rm_service.models._cache import JudgeCache
from rm_service.models._openai import OpenAIChatModel
from tests.app import client, make_app
from tests.judge_server import JudgeServer, Reply

REC = {"query": "Capital of France?", "response": "Paris."}


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def _committee(urls: list[str], cache: JudgeCache | None = None) -> GradingRunner:
    """A runner whose only grader is a committee of one relevance judge per endpoint; the
    runner is handed to the app directly, so no config names the endpoints."""
    models = [OpenAIChatModel("m", base_url=u, max_retries=0) for u in urls]
    members = [RelevanceGrader(m, name=f"judge{i}", cache=cache) for i, m in enumerate(models)]
    return GradingRunner({"panel": CommitteeGrader(members, min_valid=1)})


async def test_readyz_probes_judges_inside_a_committee(judge_server: JudgeServer) -> None:
    down = _closed_port_url()
    app = make_app({"panel": _committee([judge_server.base_url, down])}, ready_timeout=1.0)
    async with client(app) as c:
        resp = await c.get("/readyz")
    judges = resp.json()["judges"]
    assert resp.status_code == 503
    assert judges[judge_server.base_url.rstrip("/")]["ok"] is True
    assert judges[down]["ok"] is False


async def test_readyz_is_ready_when_every_committee_judge_answers(
    judge_server: JudgeServer,
) -> None:
    app = make_app({"panel": _committee([judge_server.base_url])})
    async with client(app) as c:
        resp = await c.get("/readyz")
    assert resp.status_code == 200, resp.text
    assert list(resp.json()["judges"]) == [judge_server.base_url.rstrip("/")]


async def test_shutdown_closes_judge_clients_and_caches_not_the_math_pool(
    judge_server: JudgeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    judge_server.responder = lambda body: Reply(json.dumps({"reason": "on topic", "score": 5}))
    closed: list[Any] = []
    real_aclose = OpenAIChatModel.aclose

    async def spy_aclose(self: OpenAIChatModel) -> None:
        closed.append(self)
        await real_aclose(self)

    monkeypatch.setattr(OpenAIChatModel, "aclose", spy_aclose)
    from graders import _math

    pool_shutdowns: list[bool] = []
    monkeypatch.setattr(_math, "shutdown_math_pool", lambda: pool_shutdowns.append(True))
    cache = JudgeCache(path=tmp_path / "judge.sqlite")
    app = make_app({"panel": _committee([judge_server.base_url, judge_server.base_url], cache)})
    async with app.router.lifespan_context(app), client(app) as c:
        resp = await c.post("/grade", json={"records": [REC]})
        assert resp.json()["results"][0]["reward"] == 1.0
        assert not closed and not pool_shutdowns and cache._db is not None
    assert len(closed) == 2  # each member's client, once
    assert cache._db is None  # the SQLite file is closed (it reopens on next use)
    # The math pool is process-wide (an in-process trainer may share it): left to atexit.
    assert pool_shutdowns == []
