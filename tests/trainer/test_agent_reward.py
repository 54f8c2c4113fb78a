"""The agent reward on hand-built conversations in the exact shape TRL 1.16 passes for tool
rollouts: it is the mean of :class:`RolloutRewardCalculator`'s turn rewards, hand-computed
numbers included; unscored inputs stay ``None``; each component is logged. No model."""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from typing import Any

import pytest
from transformers.utils import get_json_schema

from graders import Unscored
from rm_service._config import load_runner
from rm_service._exceptions import ConfigError
from rm_service._rollout import RolloutRewardCalculator
from trainer._agent import AgentReward
from trainer._env import EnvironmentSpec, LoadedEnvironment, _hidden_reward, load_environment

ROOT = Path(__file__).resolve().parents[2]


class Env:
    """A stand-in environment whose verdict the test sets."""

    def __init__(self, verdict: Any = 1.0) -> None:
        self.verdict = verdict

    def reset(self, **row: Any) -> None:
        """Start."""

    def calculate(self, expression: str) -> str:
        """Evaluate.

        Args:
            expression: arithmetic.
        """
        return expression

    def get_reward(self) -> Any:
        if isinstance(self.verdict, Exception):
            raise self.verdict
        return self.verdict


SCHEMA = get_json_schema(Env().calculate)
CALL = {"type": "function", "function": {"name": "calculate", "arguments": {"expression": "17*23"}}}
BAD_CALL = {"type": "function", "function": {"name": "calculate", "arguments": {"expr": "1"}}}
PROMPT = [{"role": "user", "content": "What is 17 * 23?"}]

# TRL's completions: assistant turns with tool_calls, one tool message per call, the last turn
SOLVED = [
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "name": "calculate", "content": "391"},
    {"role": "assistant", "content": "The answer is 391"},
]
NO_TOOL = [{"role": "assistant", "content": "Maybe 400"}]
BAD_ARGS = [
    {"role": "assistant", "content": "", "tool_calls": [BAD_CALL]},
    {"role": "tool", "name": "calculate", "content": "{'error': \"unexpected keyword 'expr'\"}"},
    {"role": "assistant", "content": "391"},
]

STEP = {
    "graders": {
        "valid_call": {"type": "valid_tool_calls", "no_call": 1.0},
        "digit": {"type": "format", "mode": "regex", "pattern": "[0-9]", "match": "search"},
    },
    "aggregators": [
        {"type": "weighted_sum", "name": "step", "weights": {"valid_call": 0.5, "digit": 0.5}}
    ],
}
ROLLOUT = {
    "graders": {
        "called_tool": {"type": "called_tool"},
        "within_turns": {"type": "max_turns", "max_turns": 2},
    },
    "aggregators": [{"type": "weighted_sum", "name": "rollout"}],
}


def unscored_if_400(response: str) -> float:
    """Unscored when a turn says 400: stands for a judge that failed on that turn."""
    if "400" in response:
        raise Unscored("pretend the judge is down", kind="judge_error")
    return 1.0


def _environment() -> LoadedEnvironment:
    return LoadedEnvironment({None: Env}, False, [], {None: [SCHEMA]}, {None}, 3)


def _calculator(
    distribution: Any = "all_steps", step: dict[str, Any] = STEP
) -> RolloutRewardCalculator:
    return RolloutRewardCalculator(
        load_runner(step),
        load_runner(ROLLOUT),
        distribution=distribution,
        gamma=0.5 if distribution == "discounted" else None,
        weights={"step": 1, "rollout": 2, "env": 1},
    )


def _call(
    reward: AgentReward, completions: list[Any], envs: list[Any]
) -> tuple[list[Any], dict[str, list[float]]]:
    logged: dict[str, list[float]] = {}
    out = asyncio.run(
        reward(
            prompts=[PROMPT] * len(completions),
            completions=completions,
            completion_ids=[[0]] * len(completions),
            required_tool=["calculate"] * len(completions),
            trainer_state=None,
            log_metric=lambda k, v: logged.setdefault(k, []).append(v),
            log_extra=lambda k, v: None,
            environments=envs,
        )
    )
    return out, logged


def _by_hand(
    completion: list[dict[str, Any]], env: float, infos: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "messages": PROMPT + completion,
        "env_rewards": [env] * len(infos),
        "step_infos": infos,
        "required_tool": "calculate",
        "available_tools": [SCHEMA],
    }


@pytest.mark.parametrize(
    ("distribution", "expected"),
    [
        # step turns 0.5 (valid call, no digit) and 1.0; rollout R = 1; env 1; weights 1/2/1:
        ("all_steps", (1 * 0.75 + 2 * 1.0 + 1 * 1.0) / 4),  # = 0.9375
        # last_step: turn 0 gets no rollout share: ((0.5 + 0 + 1) / 4 + (1 + 2 + 1) / 4) / 2
        ("last_step", (0.375 + 1.0) / 2),
        # discounted, gamma 0.5: turn 0 gets 0.5 * R: ((0.5 + 2 * 0.5 + 1) / 4 + 1.0) / 2
        ("discounted", (0.625 + 1.0) / 2),
    ],
)
def test_the_rollout_reward_is_the_calculator_mean(distribution: str, expected: float) -> None:
    reward = AgentReward(_calculator(distribution), _environment())
    got, logged = _call(reward, [SOLVED], [Env(1.0)])
    infos = [
        {
            "tool_calls": [{"name": "calculate", "arguments": {"expression": "17*23"}}],
            "tool_results": ["391"],
        },
        {"tool_calls": [], "tool_results": []},
    ]
    turns = _calculator(distribution).compute(_by_hand(SOLVED, 1.0, infos))
    assert got == [pytest.approx(sum(t.reward for t in turns) / len(turns))]
    assert got == [pytest.approx(expected)]
    assert logged["agent/turns"] == [2.0] and logged["agent/tool_calls"] == [1.0]
    assert logged["rewards/env/mean"] == [1.0] and logged["rewards/rollout/mean"] == [1.0]
    assert logged["rewards/step/mean"] == [0.75]
    assert logged["rewards/step/valid_call/mean"] == [1.0]
    assert logged["rewards/rollout/called_tool/mean"] == [1.0]
    assert "rewards/step/step/mean" not in logged  # the step reward is logged once, as "step"


def test_components_per_rollout_and_bad_arguments() -> None:
    reward = AgentReward(_calculator(), _environment())
    got, logged = _call(reward, [SOLVED, NO_TOOL, BAD_ARGS], [Env(1.0), Env(0.0), Env(0.0)])
    # NO_TOOL: step 0.5 (no digit... "400" has digits: 1.0), rollout (0 + 1) / 2, env 0
    assert got[1] == pytest.approx((1.0 + 2 * 0.5 + 0) / 4)
    # BAD_ARGS: turn 0 has an invalid call (step 0), turn 1 step 1; rollout 1; env 0
    assert got[2] == pytest.approx((0.5 + 2 * 1.0 + 0) / 4)
    assert logged["rewards/step/valid_call/mean"] == [pytest.approx((1 + 1 + 0.5) / 3)]
    assert logged["agent/tool_errors"] == [pytest.approx(1 / 3)]
    assert logged["agent/unscored_rate"] == [0.0]


def test_unscored_components_are_none_never_a_number(caplog: pytest.LogCaptureFixture) -> None:
    step = {
        "graders": {**STEP["graders"], "judge": {"type": f"{__name__}:unscored_if_400"}},
        "aggregators": [{"type": "weighted_sum", "name": "step"}],
    }
    reward = AgentReward(_calculator(step=step), _environment())
    envs = [Env(1.0), Env(1.0), Env(2.0), Env(RuntimeError("sandbox died")), Env(math.nan)]
    with caplog.at_level(logging.WARNING, logger="trainer"):
        got, logged = _call(reward, [SOLVED, NO_TOOL, SOLVED, SOLVED, SOLVED], envs)
    assert got[0] is not None and 0 <= got[0] <= 1
    assert got[1:] == [None, None, None, None]  # judge down; env 2.0; env raised; env NaN
    assert "returned 2.0, not a number in [0, 1]" in caplog.text
    assert "get_reward() raised RuntimeError: sandbox died" in caplog.text
    assert logged["agent/unscored_rate"] == [0.8]
    # each component's mean is over the rollouts where it was scored: never NaN here
    assert logged["rewards/env/mean"] == [1.0]
    assert all(not math.isnan(v[0]) for v in logged.values()), logged


def test_env_weight_zero_and_environments_without_get_reward() -> None:
    calc = RolloutRewardCalculator(load_runner(STEP), distribution="all_steps")
    off = AgentReward(calc, _environment(), use_env=False)
    got, logged = _call(off, [SOLVED], [Env(RuntimeError("never called"))])
    assert got == [pytest.approx(0.75)] and "rewards/env/mean" not in logged

    class Plain:  # an environment with no get_reward: no env source for its rollouts
        def reset(self) -> None: ...

    on = AgentReward(calc, _environment())
    got, _ = _call(on, [SOLVED, SOLVED], [Plain(), Env(0.0)])
    assert got == [pytest.approx(0.75), pytest.approx(0.375)]


def test_trl_sees_no_get_reward_but_we_still_call_it() -> None:
    """TRL would add get_reward as a second reward function with weight 1; the subclass TRL
    gets hides it, and the rollout reward calls the original."""
    hidden = _hidden_reward(Env)
    env = hidden()
    assert env.get_reward is None and isinstance(env, Env) and type(env).__name__ == "Env"
    method = LoadedEnvironment.env_reward_method(env)
    assert method is not None and method() == 1.0
    # a factory that is a function, not a class, is wrapped the same way
    made = _hidden_reward(lambda: Env(0.5))()
    assert made.get_reward is None and LoadedEnvironment.env_reward_method(made)() == 0.5


def test_the_example_environment_contract() -> None:
    spec_env = load_environment(
        _spec({"factory": "agent_env.py:Calculator"}), ROOT / "examples", _error
    )
    factory = spec_env.trl_factory(hide_reward=True)
    env = factory()
    env.reset(answer="391", prompt=PROMPT)
    assert env.calculate("17 * 23") == "391"
    with pytest.raises(ValueError, match="not allowed"):
        env.calculate("__import__('os')")
    assert LoadedEnvironment.env_reward_method(env)() == 1.0


def _spec(data: dict[str, Any]) -> EnvironmentSpec:
    return EnvironmentSpec.model_validate(data)


def _error(field: str, message: str) -> ConfigError:
    return ConfigError(f"{field}: {message}")
