"""``/get_reward`` as OpenRLHF's own clients call it, and the settings that must fit them: a
finite fallback, whole rollout batches, a deadline below the client's timeout.

OpenRLHF's modules do not import without Ray, vLLM and DeepSpeed, so its client and result
handling are reproduced (``tests/openrlhf_support.py``, which names versions and paths); 0.11's
aiohttp client is written out below.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from rm_service._exceptions import ConfigError
from rm_service._http_schemas import OPENRLHF_CLIENT_TIMEOUT, ServiceSettings
from rm_service.app import create_app
from tests.app import SLOW_CFG, client, make_app
from tests.openrlhf_support import request_api_wrapper, update_samples_with_rewards
from tests.support import serve_in_thread

IM = "<|im_start|>user\nWhat is 3+4?<|im_end|>\n<|im_start|>assistant\n"
FAST_CFG: dict[str, Any] = {
    "graders": {
        "fmt": {"type": "format", "mode": "think_answer"},
        "num": {"type": "number", "mapper": {"reference_response": "label"}},
    },
    "aggregators": [{"type": "weighted_sum", "name": "reward", "weights": {"fmt": 1, "num": 1}}],
}


def whole_batch(prompts: int, samples: int) -> dict[str, list[Any]]:
    """What 0.9.0 sends for ``rollout_batch_size=prompts`` and ``n_samples_per_prompt=samples``:
    every sample of the step in one request."""
    n = prompts * samples
    good, bad = "<think>3+4=7</think><answer>7</answer><|im_end|>", "<answer>8</answer><|im_end|>"
    query = [IM + (good if i % 2 == 0 else bad) for i in range(n)]
    return {"query": query, "prompts": [IM] * n, "labels": ["7"] * n}


# --- item 8: a whole rollout batch -------------------------------------------------------------


def test_openrlhf_090s_client_gets_a_whole_rollout_batch_graded() -> None:
    pytest.importorskip("requests")
    body = whole_batch(256, 16)  # 4096 samples in one request: old max_records was 1024
    with serve_in_thread(make_app({"r": FAST_CFG})) as url:
        info = request_api_wrapper(f"{url}/get_reward", body)
    n = len(body["query"])
    out = update_samples_with_rewards([info], [1] * n)
    assert len(out["rewards"]) == n
    assert [t.item() for t in out["rewards"][:4]] == [1.0, 0.0, 1.0, 0.0]
    assert out["prompt_not_found"][0].item() == 0.0 and out["rm_error"][1].item() == 0.0


def test_the_defaults_fit_openrlhfs_batches_and_timeout() -> None:
    s = ServiceSettings()
    assert s.get_reward_max_records >= 1024 * 16  # rollout_batch_size 1024 x 16 samples
    assert s.get_reward_max_body_bytes >= 16384 * 12 * 1024  # ~12 KB each: 2k-token query + prompt
    assert s.get_reward_deadline is not None and s.get_reward_deadline < OPENRLHF_CLIENT_TIMEOUT
    assert s.max_records == 1024  # /grade keeps its own


async def test_a_request_larger_than_the_admission_bounds_waits_its_turn_not_429(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A /get_reward batch larger than max_in_flight and max_queue counts as max_in_flight: it
    queues behind what is in flight, then runs alone; it is never refused for its size."""
    monkeypatch.setenv("RM_TEST_DELAY", "0.3")
    app = make_app(max_in_flight=2, max_records=2, max_queue=2, get_reward_max_records=10)
    admission = app.state.admission
    async with client(app) as c:
        busy = asyncio.ensure_future(c.post("/grade", json={"records": [{"response": "a"}] * 2}))
        while admission.in_flight < 2:  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0.005)
        big = asyncio.ensure_future(
            c.post("/get_reward", json={"query": ["abc"] * 10, "prompts": [""] * 10})
        )
        while admission.queued == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        assert admission.queued == 2  # its weight: max_in_flight, not its 10 records
        assert (await busy).status_code == 200
        resp = await big
        assert resp.status_code == 200, resp.text
        assert resp.json()["extra_logs"]["slow"] == [0.15] * 10
        too_big = await c.post("/get_reward", json={"query": ["abc"] * 11})
    assert admission.in_flight == 0 and admission.queued == 0
    assert too_big.status_code == 413
    assert "get_reward_max_records=10" in too_big.json()["detail"]


async def test_get_reward_has_its_own_body_limit() -> None:
    app = make_app({"r": FAST_CFG}, max_body_bytes=2000, get_reward_max_body_bytes=60_000)
    body = whole_batch(4, 16)  # ~10 KB
    async with client(app) as c:
        assert (await c.post("/get_reward", json=body)).status_code == 200
        records = [{"response": q} for q in body["query"]]
        resp = await c.post("/grade", json={"records": records})
        assert resp.status_code == 413 and "max_body_bytes=2000" in resp.json()["detail"]
        resp = await c.post("/get_reward", json=whole_batch(32, 16))
        assert resp.status_code == 413
        assert "get_reward_max_body_bytes=60000" in resp.json()["detail"]


# --- item 8: the deadline ----------------------------------------------------------------------


def spy_deadlines(app: Any, reward: str) -> list[float | None]:
    """The deadline of each grading pass of ``reward``."""
    runner = app.state.rewards[reward].runner
    real = runner.agrade
    seen: list[float | None] = []

    async def agrade(records: Any, *, deadline: float | None = None, **kwargs: Any) -> Any:
        seen.append(deadline)
        return await real(records, deadline=deadline, **kwargs)

    runner.agrade = agrade
    return seen


async def test_get_reward_answers_before_openrlhfs_client_gives_up() -> None:
    app = make_app({"r": FAST_CFG})  # the defaults
    seen = spy_deadlines(app, "r")
    async with client(app) as c:
        await c.post("/get_reward", json={"query": ["x"]})
        await c.post("/grade", json={"records": [{"response": "x", "label": "1"}]})
    get_reward, grade = seen
    assert get_reward is not None and get_reward <= OPENRLHF_CLIENT_TIMEOUT - 10
    assert grade == pytest.approx(300.0, abs=1.0)  # /grade keeps --deadline


async def test_the_deadline_counts_the_wait_for_admission() -> None:
    app = make_app({"r": FAST_CFG}, max_in_flight=4, max_records=4, get_reward_deadline=5.0)
    seen = spy_deadlines(app, "r")
    admission = app.state.admission
    await admission.acquire(4)  # the service is full
    async with client(app) as c:
        req = asyncio.ensure_future(c.post("/get_reward", json={"query": ["x"]}))
        while admission.queued == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        await asyncio.sleep(1.0)
        admission.release(4)
        assert (await req).status_code == 200
    (deadline,) = seen
    assert deadline is not None and deadline <= 4.0  # 5 s less the >= 1 s it waited


def test_openrlhf_011s_client_gets_an_answer_with_the_slow_part_unscored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 180 s vs 170 s relation, scaled down: a grader slower than the deadline, a client
    that waits a little longer than the deadline. It gets an answer (flagged), not a timeout
    followed by four regradings and a dead run."""
    aiohttp = pytest.importorskip("aiohttp")
    monkeypatch.setenv("RM_TEST_DELAY", "5")
    body = {"query": [IM + "<think>a</think><answer>7</answer>"], "prompts": [IM], "labels": ["7"]}

    async def post(url: str) -> Any:  # 0.11's _post_request, one try, timeout scaled 180 -> 3
        timeout = aiohttp.ClientTimeout(total=3)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(f"{url}/get_reward", json=body) as resp,
        ):
            resp.raise_for_status()
            return await resp.json()

    with serve_in_thread(make_app({"main": SLOW_CFG}, get_reward_deadline=0.5)) as url:
        got = asyncio.run(post(url))
    assert got["extra_logs"]["rm_error"] == [1.0] and got["extra_logs"]["slow/unscored"] == [1.0]
    assert got["extra_logs"]["fmt"] == [1.0] and got["rewards"] == [0.0]


# --- item 8: which OpenRLHF versions can read /get_reward --------------------------------------


@pytest.mark.parametrize("version", ["0.8.3", "0.8.10", "0.8.11"])
def test_openrlhf_083_to_0811_fail_on_any_servers_json_lists(version: str) -> None:
    """Why the README names 0.9.0 as the minimum for the HTTP face: these versions feed JSON
    lists to ``torch.cat``. OpenRLHF's own ``serve_rm`` answers the same shape."""
    serve_rm = {"rewards": [0.5], "scores": [0.5], "extra_logs": {"dummy_scores": [0.5]}}
    with pytest.raises(TypeError, match="expected Tensor"):
        update_samples_with_rewards([serve_rm], [1], version)
    tensors = {k: torch.tensor(v) for k, v in serve_rm.items() if k != "extra_logs"}
    tensors["extra_logs"] = {"dummy_scores": torch.tensor([0.5])}
    assert update_samples_with_rewards([tensors], [1], version)["rewards"][0].item() == 0.5


# --- item 6: the fallback is a finite number ---------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "zero", True])
def test_a_fallback_that_is_not_a_finite_number_is_a_config_error(value: Any) -> None:
    with pytest.raises(ConfigError) as err:
        ServiceSettings(unscored_fallback=value)
    msg = str(err.value)
    assert "--unscored-fallback" in msg and "RM_SERVICE_UNSCORED_FALLBACK" in msg
    assert "finite" in msg and "OpenRLHF" in msg


def test_serve_refuses_a_nan_fallback_at_start_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from rm_service.cli import main

    started: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append(a))
    (tmp_path / "r.yaml").write_text("graders:\n  f: {type: format}\n")
    assert main(["serve", "--config", str(tmp_path / "r.yaml"), "--unscored-fallback", "nan"]) == 1
    assert not started
    err = capsys.readouterr().err
    assert "--unscored-fallback" in err and "got nan" in err


async def test_the_fallback_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RM_SERVICE_API_KEY", raising=False)
    monkeypatch.setenv("RM_SERVICE_UNSCORED_FALLBACK", "nan")
    with pytest.raises(ConfigError, match="RM_SERVICE_UNSCORED_FALLBACK"):
        create_app({"m": {"graders": {"num": FAST_CFG["graders"]["num"]}}})
    monkeypatch.setenv("RM_SERVICE_UNSCORED_FALLBACK", "-1")
    app = create_app({"m": {"graders": {"num": FAST_CFG["graders"]["num"]}}})
    assert ServiceSettings.from_env(unscored_fallback=0.5).unscored_fallback == 0.5  # flag wins
    async with client(app) as c:
        resp = await c.post("/get_reward", json={"query": ["7"], "labels": [None]})
    assert resp.json()["rewards"] == [-1.0] and resp.json()["extra_logs"]["rm_error"] == [1.0]


@pytest.mark.parametrize("value", [1.5, 5, "2"])
def test_a_fallback_above_every_reward_is_a_config_error(value: Any) -> None:
    """--unscored-fallback 5 started, and an unscored record (a bad gold) earned 5.0, more than
    any answer: a failure paid best. A penalty below 0 stays a choice (see above)."""
    with pytest.raises(ConfigError, match="must be at most 1"):
        ServiceSettings(unscored_fallback=value)
    assert ServiceSettings(unscored_fallback=1.0).unscored_fallback == 1.0
    assert ServiceSettings(unscored_fallback=-1.0).unscored_fallback == -1.0
