"""The ``environment:`` block and the agent reward of ``train.yaml``: loaded and checked when
the config loads, every error naming the file and the field (no model, no training)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from rm_service._exceptions import ConfigError
from trainer import build_trainer, grpo_args, load_train_config
from trainer._build import agent_reward, reward_weights
from trainer._data import load_prompts

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
AGENT_EXAMPLE = EXAMPLES / "agent_train.yaml"

TOOLS = '''
def documented(city: str) -> str:
    """Weather in a city.

    Args:
        city: the city's name.
    """
    return "sunny"


def undocumented(city: str) -> str:
    return "sunny"


class NoReset:
    def act(self, x: int) -> int:
        """Act.

        Args:
            x: a number.
        """
        return x


class Broken:
    def __init__(self) -> None:
        raise RuntimeError("no sandbox today")
'''

STEP = {"graders": {"n": {"type": "length_penalty", "max_len": 4}}}


def _write(tmp_path: Path, cfg: dict[str, Any], rows: str | None = None) -> Path:
    shutil.copy(EXAMPLES / "agent_env.py", tmp_path / "agent_env.py")
    (tmp_path / "my_tools.py").write_text(TOOLS)
    (tmp_path / "prompts.jsonl").write_text(rows or '{"prompt": "What is 2 + 3?", "answer": "5"}\n')
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cfg(environment: Any = None, reward: Any = None, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model": {"tiny": {}},
        "dataset": {"path": "prompts.jsonl"},
        "reward": reward if reward is not None else {"step": STEP},
        "environment": (
            environment if environment is not None else {"factory": "agent_env.py:Calculator"}
        ),
    }
    cfg.update(extra)
    return cfg


def test_the_example_loads_its_environment_from_a_file_beside_it() -> None:
    cfg = load_train_config(AGENT_EXAMPLE)
    env = cfg.loaded_environment
    assert env is not None and not env.named and env.rewarded == {None}
    assert [s["function"]["name"] for s in env.tool_schemas[None]] == ["calculate"]
    assert cfg.reward.agent and cfg.reward.distribution == "all_steps"
    # max_turns 3 is 2 tool rounds in TRL's terms; the one reward function has no TRL weights
    args = grpo_args(cfg, output_dir=Path("unused"), max_steps=1)
    assert args.max_tool_calling_iterations == 2
    assert reward_weights(cfg, [agent_reward(cfg)]) is None
    # plain-text prompts become one user message: TRL runs tools on conversations only
    assert load_prompts(cfg)[0]["prompt"][0]["role"] == "user"


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"factory": "agent_env.py:Nope"}, r"environment\.factory: agent_env\.py has no 'Nope'"),
        ({"factory": "missing.py:Env"}, r"environment\.factory: missing\.py does not exist"),
        ({"factory": "no_such_pkg.mod:Env"}, r"environment\.factory: cannot import"),
        ({"factory": "Calculator"}, r"environment\.factory: 'Calculator' is not an import path"),
        ({"factory": "my_tools.py:NoReset"}, r"environment\.factory: NoReset has no reset\(\)"),
        ({"factory": "my_tools.py:Broken"}, r"factory: my_tools\.py:Broken\(\) raised Runtime"),
        (
            {"factory": {"calc": "agent_env.py:Calculator", "bad": "my_tools.py:NoReset"}},
            r"environment\.factory\.bad: NoReset has no reset",
        ),
        (
            {"tools": ["my_tools.py:documented", "my_tools.py:undocumented"]},
            r"environment\.tools\[1\]: tool 'undocumented' has no JSON schema",
        ),
        (
            {"tools": ["my_tools.py:documented", "my_tools.py:documented"]},
            r"environment\.tools: two tools are named 'documented'",
        ),
        ({"tools": ["my_tools.py:NoReset"]}, r"environment\.tools\[0\]: .* is not a function"),
        ({}, r"environment: Value error, set factory \(an environment\), tools, or both"),
        ({"factory": "agent_env.py:Calculator", "max_turns": 0}, r"environment\.max_turns"),
    ],
)
def test_environment_errors_name_the_file_and_field(
    tmp_path: Path, environment: dict[str, Any], expected: str
) -> None:
    path = _write(tmp_path, _cfg(environment))
    with pytest.raises(ConfigError, match=expected) as info:
        load_train_config(path)
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize(
    ("reward", "expected"),
    [
        ({"step": STEP, "config": "x.yaml"}, r"reward: .*set exactly one of config"),
        ({"step": STEP, "per_component": True}, r"per_component applies to config/url"),
        ({"step": STEP, "weights": {"judge": 1}}, r"weights: unknown source\(s\) \['judge'\]"),
        ({"step": STEP, "weights": {"rollout": 1}}, r"weights\.rollout given, but no reward"),
        ({"step": STEP, "weights": {"step": -1}}, r"weights must be finite and >= 0"),
        ({"step": STEP, "gamma": 0.9}, r"gamma is needed by distribution 'discounted' and only"),
        ({"step": STEP, "distribution": "discounted"}, r"gamma is needed by distribution"),
        ({"step": STEP, "distribution": "first_step"}, r"reward\.distribution: Input should be"),
        ({"step": "missing.yaml"}, r"reward\.step: missing\.yaml does not exist"),
        ({"config": "r.yaml", "gamma": 0.5}, r"distribution and gamma apply to step/rollout"),
    ],
)
def test_agent_reward_errors_name_the_field(
    tmp_path: Path, reward: dict[str, Any], expected: str
) -> None:
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(STEP))
    path = _write(tmp_path, _cfg(reward=reward))
    with pytest.raises(ConfigError, match=expected):
        load_train_config(path)


def test_env_weight_needs_an_environment_that_scores(tmp_path: Path) -> None:
    reward = {"step": STEP, "weights": {"step": 1, "env": 1}}
    path = _write(tmp_path, _cfg({"factory": "agent_env.py:Lookup"}, reward))
    with pytest.raises(ConfigError, match=r"reward\.weights\.env: no environment with a get_re"):
        load_train_config(path)


def test_a_bad_step_reward_config_is_named_when_built(tmp_path: Path) -> None:
    reward = {"step": {"graders": {"x": {"type": "no_such_grader"}}}}
    cfg = load_train_config(_write(tmp_path, _cfg(reward=reward)))
    with pytest.raises(ConfigError, match=r"train\.yaml: reward\.step: .*no_such_grader"):
        agent_reward(cfg)


def test_max_turns_and_trl_own_setting_together_are_refused(tmp_path: Path) -> None:
    env = {"factory": "agent_env.py:Calculator", "max_turns": 3}
    path = _write(tmp_path, _cfg(env, grpo={"max_tool_calling_iterations": 5}))
    with pytest.raises(ConfigError, match=r"grpo\.max_tool_calling_iterations: set environment"):
        load_train_config(path)


NAMED = {"factory": {"calc": "agent_env.py:Calculator", "lookup": "agent_env.py:Lookup"}}


def test_named_environments_need_a_known_name_on_every_row(tmp_path: Path) -> None:
    rows = (
        '{"prompt": "2 + 3?", "answer": "5", "environment": "calc"}\n'
        '{"prompt": "Capital of Peru?", "answer": "Lima", "environment": "weather"}\n'
    )
    cfg = load_train_config(_write(tmp_path, _cfg(NAMED), rows))
    env = cfg.loaded_environment
    assert env is not None and env.named and env.rewarded == {"calc"}
    assert [s["function"]["name"] for s in env.tool_schemas["lookup"]] == ["capital"]
    with pytest.raises(ConfigError, match=r"dataset\.path: .* row 2: environment 'weather' is"):
        load_prompts(cfg)


def test_named_environments_need_the_environment_column(tmp_path: Path) -> None:
    cfg = load_train_config(_write(tmp_path, _cfg(NAMED)))
    with pytest.raises(ConfigError, match=r"has no 'environment' column"):
        load_prompts(cfg)


def test_a_dataset_column_named_like_a_rollout_field_is_refused(tmp_path: Path) -> None:
    rows = '{"prompt": "2 + 3?", "answer": "5", "env_rewards": [1.0]}\n'
    cfg = load_train_config(_write(tmp_path, _cfg(), rows))
    with pytest.raises(ConfigError, match=r"dataset\.path: column\(s\) \['env_rewards'\] clash"):
        build_trainer(cfg, output_dir=tmp_path / "out")


@pytest.mark.parametrize(
    ("environment", "weights"),
    [
        (NAMED, {"step": 0}),  # Lookup has no get_reward(): its rollouts have no source
        (None, {"step": 0, "env": 0}),
    ],
)
def test_weights_that_leave_some_rollouts_no_positive_source_are_refused(
    tmp_path: Path, environment: Any, weights: dict[str, float]
) -> None:
    """Every source at weight 0 for some rollouts (no environment reward to fall back on)
    loaded fine, then every batch holding such a rollout raised mid-training."""
    reward = {"step": STEP, "weights": weights}
    with pytest.raises(ConfigError, match=r"reward\.weights: every source has weight 0"):
        load_train_config(_write(tmp_path, _cfg(environment, reward)))
    fine = {"step": STEP, "weights": {"step": 0, "env": 1}}
    load_train_config(_write(tmp_path, _cfg(None, fine)))  # Calculator rewards every rollout
