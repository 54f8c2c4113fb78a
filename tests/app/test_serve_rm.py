"""Reward models on the service path, with real ``rm-service serve`` processes:

* ``rm-service serve`` stands in for OpenRLHF's ``serve_rm``: a ``remote_reward_model`` grader
  with ``format: get_reward`` pointed at its ``/get_reward`` gets exactly the service's own
  rewards, and a sample the service could not score stays unscored (not its fallback 0).
* a reward with a remote reward-model component (the mock vLLM ``/classify`` of
  tests/rm_server.py behind it) is served by ``/grade`` and ``/get_reward`` like any other, its
  records batched into fewer requests to the model server.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from graders import get_grader
from rm_service._result import GraderError, GraderScore
from tests.app.uvicorn_server import free_port, running_server
from tests.rm_server import RMServer, raw_score, sigmoid

PROMPTS = [f"User: what is {i}+{i}?\nAssistant: " for i in range(6)]
RESPONSES = [f"<think>{i}+{i}</think> <answer>{2 * i + (i == 3)}</answer>" for i in range(6)]
LABELS: list[str | None] = [str(2 * i) for i in range(6)]
LABELS[4] = None  # no gold: the service cannot score it, and says so with rm_error


def test_a_grader_pointed_at_rm_service_get_reward_gets_its_rewards(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        url = f"{server.base_url}/get_reward"
        query = [p + r for p, r in zip(PROMPTS, RESPONSES, strict=True)]
        body = {"query": query, "prompts": PROMPTS, "labels": LABELS}
        own = httpx.post(url, json=body, timeout=30).json()
        grader = get_grader(
            "remote_reward_model",
            url=url,
            format="get_reward",
            score_map={"map": "identity"},
            send_labels=True,
        )

        async def grade() -> list[GraderScore | GraderError]:
            return list(
                await asyncio.gather(
                    *(
                        grader.aevaluate(query=p, response=r, label=label)
                        for p, r, label in zip(PROMPTS, RESPONSES, LABELS, strict=True)
                    )
                )
            )

        got = asyncio.run(grade())
    assert own["extra_logs"]["rm_error"] == [0, 0, 0, 0, 1, 0]
    # right answers 1.0, i == 3's wrong one 0.2 (format only), i == 4 the fallback 0.0
    assert own["rewards"] == pytest.approx([1.0, 1.0, 1.0, 0.2, 0.0, 1.0])
    for i, res in enumerate(got):
        if i == 4:
            assert isinstance(res, GraderError) and res.kind == "judge_error", res
            assert "rm_error" in res.error  # the service's fallback 0.0 is not a score
        else:
            assert isinstance(res, GraderScore), res
            assert res.score == pytest.approx(own["rewards"][i])
            assert res.metadata["batch_size"] >= 1


RM_REWARD = """\
graders:
  format: {{type: format, mode: think_answer}}
  num: {{type: number, mapper: {{reference_response: ground_truth}}}}
  rm: {{type: remote_reward_model, url: "{url}", max_batch: 16, max_wait_ms: 50}}
aggregators:
  - {{type: weighted_sum, name: reward, weights: {{rm: 0.5, format: 0.25, num: 0.25}}}}
"""


def test_grade_and_get_reward_serve_a_reward_with_a_remote_rm_component(tmp_path: Path) -> None:
    with RMServer() as model_server:
        config = RM_REWARD.format(url=model_server.url("classify"))
        with running_server(tmp_path, config=config) as server:
            records = [
                {"id": str(i), "query": p, "response": r, "ground_truth": str(2 * i)}
                for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES, strict=True))
            ]
            graded = httpx.post(
                f"{server.base_url}/grade",
                json={"records": records, "include_metadata": True},
                timeout=30,
            ).json()
            assert model_server.stats.items == len(records)
            assert model_server.stats.requests < len(records)  # batched per request
            query = [p + r for p, r in zip(PROMPTS, RESPONSES, strict=True)]
            served = httpx.post(
                f"{server.base_url}/get_reward",
                json={"query": query, "prompts": PROMPTS, "labels": [str(2 * i) for i in range(6)]},
                timeout=30,
            ).json()
    expected = [sigmoid(raw_score(p + r)) for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    results = graded["results"]
    assert [r["status"] for r in results] == ["ok"] * len(records)
    assert [r["scores"]["rm"] for r in results] == pytest.approx(expected)
    right = [float(i != 3) for i in range(6)]
    assert [r["scores"]["num"] for r in results] == right
    want = [0.5 * e + 0.25 + 0.25 * n for e, n in zip(expected, right, strict=True)]
    assert [r["reward"] for r in results] == pytest.approx(want)
    assert results[0]["metadata"]["rm"]["raw"] == pytest.approx(expected[0])
    assert served["extra_logs"]["rm"] == pytest.approx(expected)
    assert served["rewards"] == pytest.approx([r["reward"] for r in results])
    assert served["extra_logs"]["rm_error"] == [0.0] * len(records)
    # the labels still reach the rule grader's gold field: the RM grader does not claim them
    assert served["extra_logs"]["num"] == right


def test_readyz_probes_the_reward_model_servers(tmp_path: Path) -> None:
    # /readyz asks each model server if it is up, as it asks judge endpoints: vLLM's GET /health
    # for classify/pooling, and any non-5xx answer of a get_reward route (it has only a POST).
    dead = f"http://127.0.0.1:{free_port()}/get_reward"  # nothing listens there
    with RMServer() as model_server:
        live = model_server.url("classify")
        config = (
            "graders:\n"
            f'  rm: {{type: remote_reward_model, url: "{live}"}}\n'
            f'  old: {{type: remote_reward_model, url: "{live.replace("classify", "get_reward")}",'
            " format: get_reward}\n"
            "aggregators:\n"
            "  - {type: weighted_sum, name: reward, weights: {rm: 0.5, old: 0.5}}\n"
        )
        with running_server(tmp_path, config=config) as server:
            ready = httpx.get(f"{server.base_url}/readyz", timeout=30)
            assert ready.status_code == 200, ready.text
            judges = ready.json()["judges"]
            assert judges[live] == {"ok": True, "detail": "GET /health -> 200"}
            old = live.replace("classify", "get_reward")
            assert judges[old] == {"ok": True, "detail": "GET /get_reward -> 405"}
            model_server.healthy = False  # vLLM still loading its model
            down = httpx.get(f"{server.base_url}/readyz", timeout=30)
            assert down.status_code == 503
            assert down.json()["judges"][live] == {"ok": False, "detail": "GET /health -> 503"}
        gone = config.replace(old, dead)
        with running_server(tmp_path, config=gone) as server:
            resp = httpx.get(f"{server.base_url}/readyz", timeout=30)
            assert resp.status_code == 503
            assert resp.json()["judges"][dead]["ok"] is False
            assert "ConnectError" in resp.json()["judges"][dead]["detail"]
