"""``POST /get_reward``: OpenRLHF's remote reward protocol, new and old forms."""

from __future__ import annotations

import pytest

from rm_service._http_schemas import ServiceSettings
from rm_service._openrlhf import split_query
from tests.app import MATH_CFG, SLOW_CFG, client, make_app

IM = "<|im_start|>user\nWhat is 3+4?<|im_end|>\n<|im_start|>assistant\n"


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
    assert body["extra_logs"] == {"num": [1.0, 0.0, 1.0], "rm_error": [0.0, 0.0, 0.0]}
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
    assert body["extra_logs"]["slow"] == [-1.0, -1.0]


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


def test_split_query() -> None:
    s = ServiceSettings()
    assert split_query("P<|im_end|>R<|im_end|>", "P<|im_end|>", s) == ("P", "R")
    # The prompt is only a prefix once both are stripped.
    assert split_query("P</s>R</s>", "P", s) == ("P", "R")
    # Not a prefix at all: the whole query is graded, not a guessed cut.
    assert split_query("other</s>", "P", s) == ("P", "other")
    assert split_query("Q<|eot_id|>", None, s) == ("", "Q")
    custom = ServiceSettings(strip_patterns=[r"<\|[a-z_]+\|>"])
    assert split_query("a<|foo|>b", None, custom) == ("", "ab")
    assert split_query("a</s>", None, ServiceSettings(strip_patterns=[])) == ("", "a</s>")
