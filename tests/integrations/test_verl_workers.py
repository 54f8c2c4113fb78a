"""The verl shim under the way verl's reward loop (0.9.1) runs it: many ``RewardLoopWorker``
actors, each a process of its own in training, several in one process in tests and with
``remote``'s ``RewardComputeWorker`` actors, each manager calling from its own event loop (or,
for sync functions, from a thread pool or a fresh ``asyncio.run`` per sample). The reward is an
LLM judge on a real HTTP server, because what breaks across loops is the judge's HTTP client."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from rm_service import ConfigError
from rm_service._http_schemas import ServiceSettings
from rm_service.app import create_app
from rm_service.integrations import _targets
from rm_service.integrations.verl import compute_score, compute_score_sync
from tests.judge_server import JudgeServer, Reply
from tests.support import serve_in_thread

pytestmark = pytest.mark.usefixtures("shim_env")


def judge_config(judge: JudgeServer) -> dict[str, Any]:
    return {
        "judge": {"backend": "openai", "base_url": judge.base_url, "model": "m", "max_retries": 0},
        "graders": {"rel": {"type": "relevance"}},
    }


@pytest.fixture
def counted_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The threads that built a backend (a spy on the real build)."""
    builds: list[int] = []
    real_build = _targets._build

    def counting(key: Any) -> Any:
        builds.append(threading.get_ident())
        return real_build(key)

    monkeypatch.setattr(_targets, "_build", counting)
    return builds


def test_workers_on_their_own_loops_share_one_judge_backend(
    judge_server: JudgeServer, counted_builds: list[int]
) -> None:
    """Eight workers, each with its own event loop (as RewardLoopWorker actors sharing a
    process), make their first calls at once and keep grading: one backend is built, and every
    sample is scored by the judge on every loop, first calls and later ones."""
    judge_server.responder = lambda body: Reply(json.dumps({"reason": "on topic", "score": 5}))
    config = judge_config(judge_server)
    start = threading.Barrier(8)

    def worker(w: int) -> list[dict[str, float]]:
        async def run() -> list[dict[str, float]]:
            start.wait()  # every worker's first call at the same moment
            calls = [
                compute_score("d", f"answer {w}.{i}", None, {"question": "q"}, config=config)
                for i in range(4)
            ]
            first = await asyncio.gather(*calls)
            later = [await compute_score("d", "again", None, config=config) for _ in range(2)]
            return [*first, *later]

        return asyncio.run(run())

    with ThreadPoolExecutor(8) as pool:
        results = [r for rs in pool.map(worker, range(8)) for r in rs]
    assert len(counted_builds) == 1
    assert [r["rm_error"] for r in results] == [0.0] * 48
    assert {r["score"] for r in results} == {1.0}
    assert judge_server.stats.requests == 48


def test_a_fresh_loop_per_call_reuses_the_judge_backend(
    judge_server: JudgeServer, counted_builds: list[int]
) -> None:
    """``remote``'s RewardComputeWorker calls the sync function, which runs each sample on a
    loop of its own (``asyncio.run``); the cached judge must keep working after the loop that
    first used it has closed."""
    judge_server.responder = lambda body: Reply(json.dumps({"reason": "on topic", "score": 4}))
    config = judge_config(judge_server)
    results = [compute_score_sync("d", f"answer {i}", None, config=config) for i in range(5)]
    assert len(counted_builds) == 1
    assert [r["rm_error"] for r in results] == [0.0] * 5
    assert [r["score"] for r in results] == pytest.approx([0.75] * 5)


SLOW = {
    "graders": {
        "slow": {"type": "tests.support:slow_len"},
        "digit": {"type": "tests.support:has_digit"},
    },
    "aggregators": [{"type": "weighted_sum", "name": "reward", "weights": {"slow": 1, "digit": 1}}],
}
"""``slow`` answers after ``RM_TEST_DELAY`` seconds; ``digit`` at once."""


async def test_deadline_answers_in_time_with_what_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process, the runner's own deadline: the finished component is kept, the slow one
    is unscored, and the keys are the usual ones."""
    monkeypatch.setenv("RM_TEST_DELAY", "30")
    start = time.monotonic()
    got = await compute_score("d", "7 days", None, config=SLOW, deadline=0.3, fallback_score=-1)
    assert time.monotonic() - start < 5
    assert got == {
        "score": -1.0,
        "rm/slow": -1.0,
        "rm/slow/unscored": 1.0,
        "rm/digit": 1.0,
        "rm/digit/unscored": 0.0,
        "rm/reward": -1.0,
        "rm/reward/unscored": 1.0,
        "rm_error": 1.0,
    }


async def test_deadline_bounds_a_slow_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over HTTP, the client's timeouts and retries are bounded by the deadline too."""
    monkeypatch.setenv("RM_TEST_DELAY", "2")  # the server finishes it before it stops
    app = create_app({"slow": SLOW}, ServiceSettings())
    with serve_in_thread(app) as url:
        start = time.monotonic()
        got = await compute_score("d", "7 days", None, url=url, deadline=0.3, fallback_score=-1)
        assert time.monotonic() - start < 1.5
    assert got["rm_error"] == 1.0 and got["score"] == -1.0
    components = ("rm/slow", "rm/digit", "rm/reward")
    assert set(got) == {"score", *components, *(f"{c}/unscored" for c in components), "rm_error"}


async def test_a_deadline_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="deadline must be > 0"):
        await compute_score("d", "7", None, config=SLOW, deadline=0)
    with pytest.raises(ConfigError, match="deadline must be a finite number"):
        await compute_score("d", "7", None, config=SLOW, deadline="soon")
