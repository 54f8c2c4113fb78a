"""Regressions found reviewing 7b06613..226d56f.

* ``cut_reason`` (e6cd802) took any last turn with tool calls and no results for a rollout cut
  at ``max_turns``. Without an ``environment:`` TRL runs no tool round, yet still parses a
  ``<tool_call>`` the model writes: that hallucinated call, scored 0.0 before, became unscored
  (masked, by the default ``on_cut``), so the policy escaped its 0 by writing one.
* ``_check_service_fields`` (e6cd802) read ``GET /graders``, which described a callable mapper
  (a runner built in Python) as no mapper at all (``"mapper": null``): the grader's own field
  names were then taken for what the records must hold, and a service whose mapper derives them
  from the dataset's columns was refused before training, though it grades.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from graders import get_grader
from rm_service import GradingRunner
from rm_service._mapper import GraderConfig
from rm_service.app import create_app
from tests.support import serve_in_thread
from tests.trainer.test_agent_reward import CALL, PROMPT, STEP
from trainer import load_train_config
from trainer._build import agent_reward, check_reward_fields, reward_functions
from trainer._data import load_prompts

ROOT = Path(__file__).resolve().parents[1]


def test_a_tool_call_with_no_tools_to_run_is_graded_not_cut(tmp_path: Path) -> None:
    """No environment, so no tools and no ``max_turns``: a completion that is only a
    ``tool_calls`` turn is the model's answer, scored by the step graders (``valid_tool_calls``
    gives 0 for a call to a tool the rollout does not have), not a cut rollout."""
    cfg = load_train_config(
        {
            "model": {"tiny": {}},
            "dataset": {"path": str(ROOT / "examples" / "agent_prompts.jsonl")},
            "reward": {"step": STEP},
            "grpo": {"max_steps": 1},
            "output_dir": str(tmp_path / "out"),
        }
    )
    assert cfg.environment is None
    reward = agent_reward(cfg)
    hallucinated = [{"role": "assistant", "content": "", "tool_calls": [CALL]}]
    logged: dict[str, Any] = {}
    rewards = asyncio.run(
        reward(
            [PROMPT, PROMPT],
            [hallucinated, [{"role": "assistant", "content": "391"}]],
            log_metric=logged.__setitem__,
            log_extra=logged.__setitem__,
        )
    )
    assert rewards == [0.0, 1.0]
    assert logged["agent/cut_rate"] == 0.0
    assert logged["agent/errors"] == ["", ""]


def test_a_service_grader_with_a_callable_mapper_is_not_refused(tmp_path: Path) -> None:
    """The math grader needs ``reference_response``; the service's runner derives it from the
    dataset's ``answer`` column in code. Every sample grades, so the run must not be refused."""
    runner = GradingRunner(
        {
            "correct": GraderConfig(
                get_grader("math"), mapper=lambda r: {**r, "reference_response": r["answer"]}
            )
        }
    )
    with serve_in_thread(create_app({"math": runner})) as url:
        cfg = load_train_config(
            {
                "model": {"tiny": {}},
                "dataset": {"path": str(ROOT / "examples" / "train_prompts.jsonl")},
                "reward": {"url": url, "timeout": 10.0},
                "grpo": {"max_steps": 1},
                "output_dir": str(tmp_path / "out"),
            }
        )
        functions = reward_functions(cfg)
        dataset = load_prompts(cfg)
        check_reward_fields(cfg, dataset, functions)  # raised ConfigError: no reference_response
        described = functions[0].backend.reward_description
        assert described["graders"]["correct"]["mapper"] == "callable"
        row = dataset[0]
        graded = asyncio.run(
            functions[0]([row["prompt"]], [f"\\boxed{{{row['answer']}}}"], answer=[row["answer"]])
        )
        assert graded == [1.0]
