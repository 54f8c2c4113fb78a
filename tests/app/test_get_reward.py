"""``POST /get_reward``: OpenRLHF's remote reward protocol, new and old forms."""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest

from rm_service._http_schemas import ServiceSettings
from rm_service._openrlhf import UnscoredLog, split_query
from rm_service._result import GraderError, GraderScore, RecordResult
from tests.app import MATH_CFG, SLOW_CFG, client, make_app
from tests.support import serve_in_thread

IM = "<|im_start|>user\nWhat is 3+4?<|im_end|>\n<|im_start|>assistant\n"
README_CFG = Path(__file__).parents[2] / "examples" / "reward.yaml"
GOLD_IN = {"type": "number", "mapper": {"reference_response": "ground_truth"}}
"""A gold answer read from ``ground_truth``, which /get_reward fills only when told (or routed)."""


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_new_form_splits_prompt_strips_tokens_and_maps_labels() -> None:
    app = make_app({"math": MATH_CFG})
    query = [IM + "It is 7.<|im_end|>", IM + "It is 8.<|im_end|><|endoftext|>", IM + "7"]
    async with client(app) as c:
        resp = await c.post(
            "/get_reward", json={"query": query, "prompts": [IM] * 3, "labels": ["7", "7", "7"]}
        )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["rewards"] == [1.0, 0.0, 1.0]
    assert body["scores"] == [1.0, 0.0, 1.0]
    assert body["extra_logs"] == {
        "num": [1.0, 0.0, 1.0],
        "num/unscored": [0.0, 0.0, 0.0],
        "prompt_not_found": [0.0, 0.0, 0.0],
        "rm_error": [0.0, 0.0, 0.0],
    }
    assert "score" not in body


async def test_the_response_is_what_follows_the_prompt() -> None:
    app = make_app({"main": SLOW_CFG})
    prompt = "Q: " + "p" * 40 + "<|im_end|>"
    async with client(app) as c:
        resp = await c.post(
            "/get_reward", json={"query": [prompt + "abcde<|im_end|>"], "prompts": [prompt]}
        )
    # slow_len scores len(response)/20: the 5-char response, not the 50-char query.
    assert resp.json()["extra_logs"]["slow"] == [0.25]


async def test_old_form_gets_score_and_every_list_is_as_long_as_query() -> None:
    app = make_app()
    query = ["<think>a</think><answer>1</answer>", "plain", "", "x" * 30]
    async with client(app) as c:
        resp = await c.post("/get_reward", json={"query": query})
    body = resp.json()
    assert body["score"] == body["rewards"]
    assert len(body["rewards"]) == len(body["scores"]) == len(query)
    assert all(len(v) == len(query) for v in body["extra_logs"].values())


async def test_unscored_gets_the_fallback_and_rm_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RM_TEST_DELAY", "5")
    app = make_app(unscored_fallback=-1.0, deadline=0.2)
    async with client(app) as c:
        resp = await c.post("/get_reward", json={"query": ["a", "b"], "prompts": ["", ""]})
    body = resp.json()
    assert body["rewards"] == [-1.0, -1.0]
    assert body["scores"] == [0.0, 0.0]  # scores stay in [0, 1]
    assert body["extra_logs"]["rm_error"] == [1.0, 1.0]


async def test_an_unscored_component_is_nan_and_flagged_never_a_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RM_TEST_DELAY", "5")
    app = make_app(unscored_fallback=-1.0, deadline=0.2)  # slow times out; fmt scores 0
    async with client(app) as c:
        resp = await c.post("/get_reward", json={"query": ["a", "b"], "prompts": ["", ""]})
    assert resp.status_code == 200
    logs = resp.json()["extra_logs"]  # httpx parses the NaN token, as OpenRLHF's aiohttp does
    assert all(math.isnan(x) for x in logs["slow"])  # not the fallback, not 0.0
    assert logs["slow/unscored"] == [1.0, 1.0]
    assert logs["fmt"] == [0.0, 0.0] and logs["fmt/unscored"] == [0.0, 0.0]  # a real 0
    # "reward" is OpenRLHF's own log of ``rewards``: a NaN there would overwrite it.
    assert "reward" not in logs
    assert sorted(logs) == [
        "fmt",
        "fmt/unscored",
        "prompt_not_found",
        "rm_error",
        "slow",
        "slow/unscored",
    ]


def test_openrlhfs_own_client_reads_the_nan_over_real_uvicorn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("RM_TEST_DELAY", "5")
    body = {"query": ["<think>a</think><answer>1</answer>"], "prompts": [""], "labels": ["1"]}

    async def post(url: str) -> Any:  # OpenRLHF 0.11's _fetch_rewards_via_http, in short
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{url}/get_reward", json=body) as resp,
        ):
            resp.raise_for_status()
            return await resp.json()

    with serve_in_thread(make_app(deadline=0.2)) as url:
        got = asyncio.run(post(url))
    # Its samples_generator: info[key] = torch.tensor([value]) for each extra_logs key.
    info = {k: torch.tensor([v]) for k, v in got["extra_logs"].items()}
    assert math.isnan(info["slow"].mean().item()) and info["slow/unscored"].item() == 1.0
    assert info["fmt"].item() == 1.0 and info["rm_error"].item() == 1.0


async def test_the_readme_config_is_scored_with_the_default_label_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rm_service")
    app = make_app({"reward": str(README_CFG)})  # maps ground_truth; nothing reads "label"
    answer = "<think>7*8=56</think>\n<answer>56</answer><|im_end|>"
    async with client(app) as c:
        resp = await c.post(
            "/get_reward", json={"query": [IM + answer], "prompts": [IM], "labels": ["56"]}
        )
    body = resp.json()
    assert body["extra_logs"]["rm_error"] == [0.0], body
    assert body["rewards"] == [1.0]
    assert "labels go to record field 'ground_truth'" in caplog.text
    assert warnings_of(caplog) == []


def test_a_field_get_reward_never_fills_is_a_loud_startup_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="rm_service")
    make_app({"math": {"graders": {"num": GOLD_IN}}}, label_field="answer")  # explicit: kept
    (msg,) = warnings_of(caplog)
    assert "reward 'math'" in msg and "grader 'num'" in msg and "'ground_truth'" in msg
    assert "--label-field ground_truth" in msg and "every /get_reward record" in msg


def test_two_gold_fields_are_not_guessed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rm_service")
    other = {"type": "string_match", "mapper": {"reference_response": "answer"}}
    make_app({"m": {"graders": {"num": GOLD_IN, "str": other}}})
    (msg,) = warnings_of(caplog)
    assert "'ground_truth'" in msg and "'answer'" in msg and "'label'" in msg


@pytest.mark.parametrize(
    "cfg",
    [
        {"graders": {"f": {"type": "format", "mode": "think_answer"}}},  # no gold at all
        MATH_CFG,  # reads label
    ],
)
def test_a_reward_that_needs_no_other_field_gives_no_warning(
    cfg: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rm_service")
    make_app({"m": cfg})
    assert warnings_of(caplog) == []


async def test_unscored_batches_are_logged_with_counts_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="rm_service")
    app = make_app({"math": MATH_CFG})
    async with client(app) as c:
        for _ in range(3):  # a training loop: one warning, not one per batch
            resp = await c.post("/get_reward", json={"query": ["7", "8"], "labels": [None, "8"]})
            assert resp.json()["extra_logs"]["rm_error"] == [1.0, 0.0]
    (msg,) = warnings_of(caplog)
    assert msg.startswith("get_reward: 1/2 records unscored (invalid_input=1); first error:")
    assert "reward 'math'" in msg and "'num'" in msg and "reference_response" in msg


async def test_a_missing_label_is_unscored_not_zero() -> None:
    app = make_app({"math": MATH_CFG})
    async with client(app) as c:
        resp = await c.post("/get_reward", json={"query": ["7", "7"], "labels": ["7", None]})
    assert resp.json()["extra_logs"]["rm_error"] == [0.0, 1.0]


@pytest.mark.parametrize("field", ["prompts", "labels"])
async def test_lists_of_other_lengths_are_a_422_naming_the_field(field: str) -> None:
    async with client(make_app()) as c:
        resp = await c.post("/get_reward", json={"query": ["a", "b"], field: ["a"]})
    assert resp.status_code == 422
    (err,) = resp.json()["detail"]  # FastAPI's own 422 shape, naming the field
    assert err["loc"] == ["body", field] and "1 item(s), but 'query' has 2" in err["msg"]


async def test_label_field_is_configurable() -> None:
    cfg = {"graders": {"num": {"type": "number", "mapper": {"reference_response": "gold"}}}}
    app = make_app({"m": cfg}, label_field="gold")
    async with client(app) as c:
        resp = await c.post("/get_reward", json={"query": ["7"], "labels": ["7"]})
    assert resp.json()["rewards"] == [1.0]


def test_the_unscored_log_counts_everything_since_its_last_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="rm_service")
    now = [0.0]
    log = UnscoredLog("get_reward", every_s=60, clock=lambda: now[0])
    ok = RecordResult(index=0, reward_name="r", components={"r": GraderScore(name="r", score=1)})
    down = GraderError(name="r", error="judge down", kind="judge_error")
    bad = RecordResult(index=0, reward_name="r", components={"r": down})
    log.observe([bad], "m")
    now[0] = 30.0
    log.observe([bad, ok], "m")  # within the minute: counted, not logged
    now[0] = 61.0
    log.observe([ok], "m")
    now[0] = 200.0
    log.observe([ok], "m")  # nothing unscored since: nothing to say
    first, second = warnings_of(caplog)
    assert first.startswith("get_reward: 1/1 records unscored (judge_error=1); first error: ")
    assert "reward 'm', 'r': judge_error: judge down" in first
    assert second.startswith(
        "get_reward: 1/3 records unscored in 2 batch(es) over the last 61 s (judge_error=1)"
    )


def test_split_query() -> None:
    s = ServiceSettings().stripper
    assert split_query("P<|im_end|>R<|im_end|>", "P<|im_end|>", s)[:2] == ("P", "R")
    # The prompt is only a prefix once both are stripped.
    assert split_query("P</s>R</s>", "P", s)[:2] == ("P", "R")
    # Not a prefix at all, no marker: the whole query is graded, flagged, not a guessed cut.
    assert split_query("other</s>", "P", s) == ("P", "other", "whole", True, ANY)
    assert split_query("Q<|eot_id|>", None, s) == ("", "Q", "whole", False, "")
    custom = ServiceSettings(strip_patterns=[r"<\|[a-z_]+\|>"]).stripper
    assert split_query("a<|foo|>b", None, custom).response == "ab"
    bare = ServiceSettings(strip_patterns=[]).stripper
    assert split_query("a</s>", None, bare).response == "a</s>"
