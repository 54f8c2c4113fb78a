"""Start-up warms what the first request would wait for; ``/readyz`` waits for it (a
first ``/grade`` would otherwise wait for the math worker processes to start).

No timings are asserted: what is checked is that the math pool's workers exist and models are
loaded *before* any request, and that ``/readyz`` is 503 until then (and names what failed).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from graders import BaseGrader, shutdown_math_pool
from graders import _math_pool as math_module
from rm_service import GradingRunner
from rm_service._result import GraderScore
from tests.app import client, make_app

MATH_REWARD: dict[str, Any] = {
    "graders": {"correct": {"type": "math", "mapper": {"reference_response": "label"}}},
}


class _Embedder:
    """Stands in for an ``Embedder``: ``load()`` blocks until released, or fails."""

    def __init__(self, error: Exception | None = None) -> None:
        self.release = threading.Event()
        self.loaded = False
        self.error = error

    def load(self) -> None:
        if self.error is not None:
            raise self.error
        assert self.release.wait(10), "the test never released the load"
        self.loaded = True


class _EmbeddingGrader(BaseGrader):
    required_fields = ("response",)
    default_name = "emb"

    def __init__(self, embedder: _Embedder) -> None:
        super().__init__()
        self.embedder = embedder

    async def aload(self) -> None:  # the grader contract's warm-up hook
        await asyncio.to_thread(self.embedder.load)

    async def _aevaluate(self, **fields: Any) -> GraderScore:
        return GraderScore(name=self.name, score=1.0 if self.embedder.loaded else 0.0)


async def _ready(c: Any) -> Any:
    for _ in range(600):
        resp = await c.get("/readyz")
        if resp.status_code == 200:
            return resp
        await asyncio.sleep(0.05)
    raise AssertionError(f"never ready: {resp.text}")


async def test_math_workers_start_before_the_first_request() -> None:
    shutdown_math_pool()  # process-wide: start from none, whatever ran before
    assert math_module._pool is None
    app = make_app({"m": MATH_REWARD})
    async with app.router.lifespan_context(app), client(app) as c:
        body = (await _ready(c)).json()
        assert body["warm"] == {"done": True, "errors": {}}
        pool = math_module._pool
        assert pool is not None and pool._workers, "no math worker started before a request"
        resp = await c.post("/grade", json={"records": [{"response": "\\boxed{2}", "label": "2"}]})
        assert resp.json()["results"][0]["reward"] == 1.0
        assert math_module._pool is pool and pool.replaced == 0


async def test_readyz_is_503_until_models_are_loaded() -> None:
    embedder = _Embedder()
    app = make_app({"e": GradingRunner({"emb": _EmbeddingGrader(embedder)})})
    async with app.router.lifespan_context(app), client(app) as c:
        resp = await c.get("/readyz")
        assert resp.status_code == 503
        assert resp.json()["ready"] is False
        assert resp.json()["warm"] == {"done": False, "errors": {}}
        assert (await c.get("/healthz")).status_code == 200  # alive while warming
        embedder.release.set()
        await _ready(c)
        assert embedder.loaded


async def test_a_failed_warm_up_is_named_in_readyz_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    embedder = _Embedder(error=OSError("no model directory at /nowhere"))
    app = make_app({"e": GradingRunner({"emb": _EmbeddingGrader(embedder)})})
    async with app.router.lifespan_context(app), client(app) as c:
        for _ in range(200):
            body = (await c.get("/readyz")).json()
            if body["warm"]["done"]:
                break
            await asyncio.sleep(0.05)
    assert body["ready"] is False
    assert body["warm"]["errors"] == {"emb": "OSError: no model directory at /nowhere"}
    assert "warm-up of grader 'emb' failed" in caplog.text


async def test_without_a_lifespan_readyz_does_not_wait_for_a_warm_up() -> None:
    """An app called in process (no lifespan) has nothing warming: ready as before."""
    async with client(make_app({"m": MATH_REWARD})) as c:
        resp = await c.get("/readyz")
    assert resp.status_code == 200 and "warm" not in resp.json()
