"""Reward configs: judges get one shared backend from the judge: block; other graders don't."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rm_service import ConfigError, build_runner, load_config
from tests.judge_server import JudgeServer, Reply


def test_llm_judges_in_yaml_share_one_endpoint_backend(judge_server: JudgeServer) -> None:
    judge_server.responder = lambda body: Reply(json.dumps({"reason": "ok", "score": 5}))
    cfg = load_config(
        {
            "judge": {"backend": "openai", "base_url": judge_server.base_url, "model": "m"},
            "graders": {
                "rel": {"type": "relevance"},
                # verify: never, so both judges call the endpoint ("Paris" is checkable by rule)
                "corr": {
                    "type": "correctness",
                    "mapper": {"reference_response": "gt"},
                    "verify": "never",
                },
                "sim": {"type": "similarity", "mapper": {"reference_response": "gt"}},
            },
            "aggregators": [{"type": "min", "name": "reward", "components": ["rel", "corr"]}],
        }
    )
    runner = build_runner(cfg)
    rel, corr = runner.grader_configs["rel"].grader, runner.grader_configs["corr"].grader
    assert rel.model is corr.model  # one backend (one connection pool) for every judge
    rec = {"query": "Capital of France?", "response": "Paris is the capital.", "gt": "Paris"}
    (got,) = runner.grade([rec])
    assert got.scores()["rel"] == 1.0 and got.scores()["corr"] == 1.0 and got.reward == 1.0
    assert judge_server.stats.requests == 2
    assert list(got.components) == ["rel", "corr", "sim", "reward"]  # config order


def test_judge_block_on_a_rule_grader_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"graders\.f: grader type 'format' takes no judge"):
        load_config({"graders": {"f": {"type": "format", "judge": {"backend": "local"}}}})


def test_offline_default_is_the_local_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    from rm_service.models import JudgeSpec

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert JudgeSpec().resolved_backend() == "local"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert JudgeSpec().resolved_backend() == "openai"  # the env var alone switches it
    assert JudgeSpec(backend="local").resolved_backend() == "local"


async def test_run_summary_totals_judge_calls_and_tokens(
    judge_server: JudgeServer, tmp_path
) -> None:
    from rm_service import agrade_file

    judge_server.responder = lambda body: Reply(json.dumps({"reason": "ok", "score": 4}))
    cfg = load_config(
        {
            "judge": {"backend": "openai", "base_url": judge_server.base_url, "model": "m"},
            "cache": {},
            "graders": {"rel": {"type": "relevance"}},
        }
    )
    src = tmp_path / "in.jsonl"
    rows = [
        {"query": "Capital of France?", "response": f"Paris, answer {i % 3}."} for i in range(9)
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = await agrade_file(build_runner(cfg), src, tmp_path / "out.jsonl", progress=False)
    totals = res.summary.judge
    assert totals.calls == judge_server.stats.requests == 3  # 3 distinct responses
    assert totals.cached == 6  # the other 6 came from the cache (coalesced or stored)
    assert totals.prompt_tokens > 0 and totals.completion_tokens > 0
    assert "judge calls: 3 (+6 served from cache)" in res.summary.table()


def test_the_judge_pool_follows_the_rewards_concurrency_unless_set() -> None:
    """``max_concurrency: 256`` with a judge whose pool was left at 64 queued three calls in four
    behind the pool; the pool now follows the reward's concurrency unless the judge sets its own.
    """
    from rm_service.models._openai import OpenAIChatModel

    def pool(cfg: dict[str, Any], **overrides: Any) -> int:
        runner = build_runner(load_config(cfg), **overrides)
        model = runner.grader_configs["rel"].grader.model  # type: ignore[attr-defined]
        assert isinstance(model, OpenAIChatModel)
        return model.max_concurrency

    judge = {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    graders = {"rel": {"type": "correctness", "verify": "never"}}
    assert pool({"judge": judge, "graders": graders, "max_concurrency": 256}) == 256
    assert pool({"judge": judge, "graders": graders}, max_concurrency=100) == 100
    own = {**judge, "max_concurrency": 16}
    assert pool({"judge": own, "graders": graders, "max_concurrency": 256}) == 16


def test_a_repeated_yaml_key_is_an_error_naming_its_line(tmp_path: Any) -> None:
    """YAML lets the last of two equal keys win: ``weights: {a: 0.9, b: 0.1, a: 0.0}`` or a
    second ``aggregators:`` block changed the reward without a word, and check said ok."""
    for text in (
        "graders:\n  a: {type: format}\n  b: {type: length_penalty}\naggregators:\n"
        "  - {type: weighted_sum, name: reward, weights: {a: 0.9, b: 0.1, a: 0.0}}\n",
        "graders:\n  a: {type: format}\n  a: {type: length_penalty}\n",
        "graders:\n  a: {type: format}\naggregators: []\naggregators:\n  - {type: min}\n",
    ):
        path = tmp_path / "dup.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=r"the key 'a(ggregators)?' appears twice"):
            load_config(path)
    ok = tmp_path / "ok.yaml"
    ok.write_text("graders:\n  a: {type: format}\n  b: {type: format}\n")
    assert list(load_config(ok).graders) == ["a", "b"]


@pytest.mark.parametrize(
    "aggregator",
    [
        {"type": "weighted_sum", "weights": {"a": 10**400, "b": 1}},
        {"type": "weighted_sum", "weights": {"a": 1e308, "b": 1e308}},
        {"type": "min", "on_error": 10**400},
        {"type": "gate", "gate": "a", "inner": "b", "threshold": 10**400},
        {"type": "gate", "gate": "a", "inner": "b", "threshold": 0.5, "penalty": 10**400},
    ],
)
def test_a_number_too_large_for_a_float_is_a_config_error(aggregator: dict[str, Any]) -> None:
    """They escaped as OverflowError tracebacks from the aggregators' checks."""
    graders = {"a": {"type": "tests.support:has_digit"}, "b": {"type": "tests.support:has_digit"}}
    with pytest.raises(ConfigError, match=r"aggregators\[0\]"):
        load_config({"graders": graders, "aggregators": [aggregator]})


def test_an_unbounded_concurrency_and_a_components_mapping_are_config_errors() -> None:
    """max_concurrency: 1000000 started a million worker tasks (1.1 GB) before grading; a
    mapping given as min's components was read as its keys, its values silently ignored."""
    graders = {"a": {"type": "tests.support:has_digit"}, "b": {"type": "tests.support:has_digit"}}
    with pytest.raises(ConfigError, match="max_concurrency"):
        load_config({"graders": graders, "max_concurrency": 1_000_000})
    with pytest.raises(ConfigError, match="max_concurrency must be an int from 1 to 65536"):
        from rm_service import GradingRunner
        from tests.support import has_digit

        GradingRunner({"a": has_digit}, max_concurrency=1_000_000)
    mapping = {"type": "min", "name": "reward", "components": {"a": 0.9, "b": 0.1}}
    with pytest.raises(ConfigError, match="components must be a list"):
        load_config({"graders": graders, "aggregators": [mapping]})
    assert load_config({"graders": graders, "max_concurrency": 4096}).max_concurrency == 4096


def test_call_timeout_on_an_inline_grader_is_a_config_error() -> None:
    """A per-grader ``call_timeout`` on an inline rule grader was accepted and silently
    ignored (no timer can stop code that never awaits), though the README promised it."""
    from rm_service._config import load_runner

    config = {
        "graders": {"format": {"type": "format", "mode": "think", "call_timeout": 1}},
        "aggregators": [],
    }
    with pytest.raises(ConfigError, match="format: call_timeout does not apply to an inline"):
        load_runner(config)
    config["graders"]["format"].pop("call_timeout")  # type: ignore[attr-defined]
    assert load_runner(config).names == ["format"]
