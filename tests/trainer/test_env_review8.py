"""Review of ``rm-service train`` environments: a plain reward (``reward.config`` / ``url``)
graded a rollout TRL cut short at ``max_turns`` as if it had finished, and so did TRL's own
reward function for the environment's ``get_reward()``; a tool that hung hung the rollout."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from transformers.utils import get_json_schema

import trainer._run as run_module
from rm_service._exceptions import ConfigError
from tests.trainer.agent_support import script_tool_calls
from tests.trainer.test_train_review2 import AGENT_PROMPTS, ENV_FILE, TRAIN_REWARD
from trainer import build_trainer, load_train_config, train
from trainer._env import EnvironmentSpec, LoadedEnvironment, load_environment

ROOT = Path(__file__).resolve().parents[2]

GRPO = {"max_steps": 1, "per_device_train_batch_size": 8, "num_generations": 4}


class CaptureAll:
    """Wrap every reward function of a trainer to keep what each returned (the last call)."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.rewards: dict[str, list[float | None]] = {}
        self.completions: list[Any] = []
        names = trainer.reward_func_names
        trainer.reward_funcs[:] = [
            self._wrap(f, n) for f, n in zip(trainer.reward_funcs, names, strict=True)
        ]

    def _wrap(self, inner: Any, name: str) -> Any:

        async def call(**kwargs: Any) -> list[float | None]:
            out = inner(**kwargs)
            rewards = await out if hasattr(out, "__await__") else out
            self.rewards[name] = list(rewards)
            self.completions = kwargs["completions"]
            return rewards

        call.__name__ = name
        return call


def _plain_config(tmp_path: Path, max_turns: int, **reward: Any) -> dict[str, Any]:
    return {
        "model": {"tiny": {"max_positions": 512}},
        "dataset": {"path": str(AGENT_PROMPTS)},
        "environment": {"factory": f"{ENV_FILE}:Calculator", "max_turns": max_turns},
        "reward": {**TRAIN_REWARD, **reward},
        "grpo": {**GRPO, "max_completion_length": 128},
        "output_dir": str(tmp_path / "out"),
    }


def _run_all(monkeypatch: pytest.MonkeyPatch, cfg: dict[str, Any]) -> tuple[Any, CaptureAll]:
    captured: list[CaptureAll] = []

    def build(*args: Any, **kwargs: Any) -> Any:
        trainer = build_trainer(*args, **kwargs)
        script_tool_calls(trainer, lambda row: row % 2 == 0)
        captured.append(CaptureAll(trainer))
        return trainer

    monkeypatch.setattr(run_module, "build_trainer", build)
    return train(load_train_config(cfg), echo=None), captured[0]


def test_a_plain_reward_leaves_a_rollout_cut_at_max_turns_unscored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``max_turns: 1``: a scripted turn calls ``calculate`` and TRL stops there, the call never
    run. A plain reward graded that call's text as the answer, and TRL's ``get_reward()``
    function scored the half-done environment: both must leave it unscored (``None``)."""
    result, capture = _run_all(monkeypatch, _plain_config(tmp_path, max_turns=1))
    cut = [c[-1].get("tool_calls") is not None for c in capture.completions]
    assert sum(cut) == 4, capture.completions
    assert set(capture.rewards) == {"reward", "Calculator"}, capture.rewards
    for name, rewards in capture.rewards.items():
        for was_cut, reward in zip(cut, rewards, strict=True):
            assert (reward is None) == was_cut, (name, capture.rewards)
    log = next(e for e in result.history if "reward" in e)
    assert log["agent/cut_rate"] == pytest.approx(0.5)


# --- a tool that hangs ---------------------------------------------------------------------------

RELEASE = threading.Event()
"""Set at the end of each test, so a tool thread left waiting finishes."""


@pytest.fixture(autouse=True)
def _release_hung_tools() -> Iterator[None]:
    RELEASE.clear()
    yield
    RELEASE.set()


class Hanging:
    """An environment whose tool never returns (until the test ends)."""

    def reset(self, **row: Any) -> None:
        """Start a rollout."""

    def calculate(self, expression: str) -> str:
        """Hang, as a tool blocked on a dead server would.

        Args:
            expression: ignored.
        """
        RELEASE.wait()
        return "too late"

    @staticmethod
    def echo(text: str) -> str:
        """Return the text.

        Args:
            text: anything.
        """
        return text


async def _hang(city: str) -> str:
    """A standalone async tool that hangs.

    Args:
        city: ignored.
    """
    await asyncio.Event().wait()
    return "too late"


def _loaded(**environment: Any) -> LoadedEnvironment:
    spec = EnvironmentSpec.model_validate(
        {"factory": "tests.trainer.test_env_review8:Hanging", **environment}
    )

    def error(where: str, message: str) -> ConfigError:
        return ConfigError(f"{where}: {message}")

    return load_environment(spec, ROOT, error)


def test_a_tool_past_tool_timeout_raises_a_timeout_error_instead_of_hanging() -> None:
    loaded = _loaded(tool_timeout=0.2)
    env = loaded.trl_factory()()
    with pytest.raises(TimeoutError, match=r"'calculate' did not return within 0.2 s"):
        env.calculate("1 + 1")
    assert env.echo("hi") == "hi"  # a tool that returns is untouched (a staticmethod too)
    with pytest.raises(TypeError):  # its own errors still reach TRL as they are
        env.echo()
    # TRL builds each tool's schema from the bounded method: the same as the tool's own
    assert get_json_schema(env.calculate) == get_json_schema(Hanging().calculate)
    (bounded,) = LoadedEnvironment({}, False, [_hang], {}, tool_timeout=0.2).trl_tools()
    assert inspect.iscoroutinefunction(bounded) and get_json_schema(bounded) == get_json_schema(
        _hang
    )
    with pytest.raises(TimeoutError, match=r"'_hang' did not return within 0.2 s"):
        asyncio.run(bounded("Paris"))


def test_tool_timeout_defaults_to_a_minute_and_null_turns_it_off() -> None:
    assert _loaded().tool_timeout == 60.0
    unbounded = _loaded(tool_timeout=None).trl_factory()()
    assert type(unbounded).calculate is Hanging.calculate  # called as TRL would, unwrapped
    for bad in (0, -1, True, "10"):
        with pytest.raises(ValueError, match="tool_timeout"):
            EnvironmentSpec.model_validate({"factory": "x:y", "tool_timeout": bad})


def test_a_hanging_tool_is_a_tool_error_in_a_real_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scripted rows call ``calculate``, which never returns: the rollout went on with the
    call's ``{'error': ...}`` result (TRL's form for a tool that raised), instead of hanging."""
    cfg = _plain_config(tmp_path, max_turns=2)
    cfg["environment"] = {
        "factory": "tests.trainer.test_env_review8:Hanging",
        "max_turns": 2,
        "tool_timeout": 0.2,
    }
    cfg["grpo"]["max_completion_length"] = 256  # room for the error message as a result
    result, capture = _run_all(monkeypatch, cfg)
    results = [m["content"] for c in capture.completions for m in c if m["role"] == "tool"]
    assert len(results) == 4, capture.completions
    for content in results:
        assert content.startswith("{'error': ") and "did not return within 0.2 s" in content
    log = next(e for e in result.history if "reward" in e)
    assert log["tools/failure_frequency"] == 1.0
