"""The example calculator environment (``examples/agent_env.py``) as a policy would game it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

ENV = Path(__file__).resolve().parents[2] / "examples" / "agent_env.py"


def _calculator() -> Any:
    spec = importlib.util.spec_from_file_location("agent_env_example", ENV)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Calculator()


def test_calculating_every_number_is_not_paid() -> None:
    """``get_reward`` paid 1.0 when any calculation produced the answer, so a rollout that
    calculated 1, 2, 3, ... in one turn was paid without solving anything."""
    env = _calculator()
    env.reset(answer="24", prompt="What is 4 * 6?")
    for n in range(1, 40):
        env.calculate(str(n))
    assert env.get_reward() == 0.0
    env.calculate("4 * 6")
    assert env.get_reward() == 1.0


def test_a_row_without_an_answer_is_unscored_not_zero() -> None:
    env = _calculator()
    env.reset(prompt="What is 4 * 6?")
    env.calculate("4 * 6")
    with pytest.raises(ValueError, match="no answer"):
        env.get_reward()  # the trainer leaves that rollout unscored, with a warning
