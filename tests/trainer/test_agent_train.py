"""Real ``GRPOTrainer`` agent runs on the tiny model: tool calls parsed, executed in the
environment and fed back; every reward component present; named environments routed per row;
unscored rollouts masked with a finite loss. Tool calls are scripted by a test-only logits
processor (:mod:`tests.trainer.agent_support`): a random model does not write them itself."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

import trainer._run as run_module
from rm_service.cli import main
from tests.trainer.agent_support import Capture, script_tool_calls
from trainer import build_trainer, load_train_config, train

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = ROOT / "examples" / "agent_env.py"
EXAMPLE = ROOT / "examples" / "agent_train.yaml"

ROLLOUT = {
    "graders": {
        "called_tool": {"type": "called_tool"},
        "final_answer": {"type": "final_answer", "mapper": {"reference_response": "answer"}},
        "within_turns": {"type": "max_turns", "max_turns": 3},
    },
    "aggregators": [{"type": "weighted_sum", "name": "rollout"}],
}
STEP = {
    "graders": {
        "valid_call": {"type": "valid_tool_calls", "no_call": 1.0},
        "digit": {"type": "format", "mode": "regex", "pattern": "[0-9]", "match": "search"},
    },
    "aggregators": [{"type": "weighted_sum", "name": "step"}],
}


def _config(
    tmp_path: Path, environment: Any, dataset: Path, tools: Any = (), **reward: Any
) -> dict[str, Any]:
    return {
        "model": {"tiny": {"max_positions": 512}},
        "dataset": {"path": str(dataset)},
        "environment": {"factory": environment, "tools": list(tools), "max_turns": 3},
        "reward": {"step": STEP, "rollout": ROLLOUT, **reward},
        "grpo": {
            "max_steps": 1,
            "per_device_train_batch_size": 8,
            "num_generations": 4,
            "max_completion_length": 128,
        },
        "output_dir": str(tmp_path / "out"),
    }


def _run(monkeypatch: pytest.MonkeyPatch, cfg: dict[str, Any], force: Any) -> tuple[Any, Capture]:
    """``train`` with tool calls scripted on the rows ``force`` picks; what TRL passed."""
    captured: list[Capture] = []

    def build(*args: Any, **kwargs: Any) -> Any:
        trainer = build_trainer(*args, **kwargs)
        script_tool_calls(trainer, force)
        captured.append(Capture(trainer))
        return trainer

    monkeypatch.setattr(run_module, "build_trainer", build)
    result = train(load_train_config(cfg), echo=None)
    return result, captured[0]


def test_one_agent_step_executes_tools_and_logs_every_component(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(
        tmp_path,
        f"{ENV_FILE}:Calculator",
        ROOT / "examples" / "agent_prompts.jsonl",
        tools=["tests.trainer.agent_support:weather"],
        weights={"step": 1, "rollout": 2, "env": 1},
    )
    result, capture = _run(monkeypatch, cfg, force=lambda row: row % 2 == 0)
    # the standalone tool and the environment's method are both offered, standalone first
    assert [t.__name__ for t in capture.trainer.tools] == ["weather", "calculate"]
    assert capture.trainer.args.max_tool_calling_iterations == 2  # max_turns 3
    call = capture.calls[0]
    completions, rewards = call["completions"], call["rewards"]
    # TRL passed whole conversations: assistant tool call, the tool's result, the next turn
    scripted = [c for c in completions if len(c) == 3]
    assert len(scripted) == 4, [[m["role"] for m in c] for c in completions]
    for c, env in zip(completions, call["environments"], strict=True):
        if len(c) != 3:
            continue
        assert [m["role"] for m in c] == ["assistant", "tool", "assistant"]
        assert c[0]["tool_calls"][0]["function"]["name"] == "calculate"
        assert c[1]["content"] == env.results[0]  # the Calculator really ran
        assert c[2]["content"] == f"The answer is {env.results[0]}"
    for r in rewards:
        assert r is not None and 0.0 <= r <= 1.0
    # scripted rollouts solved it: tool called, final answer right, env agrees; step 0.5 / 1.0
    solved = (0.75 + 2 * 1.0 + 1.0) / 4
    assert sorted(rewards)[-4:] == [pytest.approx(solved)] * 4
    log = next(e for e in result.history if "reward" in e)
    assert log["tools/call_frequency"] == pytest.approx(0.5)
    assert log["tools/failure_frequency"] == 0.0
    assert log["agent/tool_calls"] == pytest.approx(0.5) and log["agent/turns"] == 1.5
    for name in (
        "step",
        "step/valid_call",
        "step/digit",
        "rollout",
        "rollout/called_tool",
        "rollout/final_answer",
        "rollout/within_turns",
        "env",
        "reward",
    ):
        value = log[f"rewards/{name}/mean"]
        assert isinstance(value, float) and 0.0 <= value <= 1.0, name
    assert log["rewards/env/mean"] == pytest.approx(0.5)
    assert math.isfinite(log["loss"]) and math.isfinite(log["grad_norm"])
    # TRL did not add the environment's get_reward as a reward function of its own
    assert not any(k.startswith("rewards/Calculator/") for k in log)


def test_named_environments_route_rows_and_mask_unscored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {
            "prompt": "What is 6 * 7?",
            "answer": "42",
            "environment": "calc",
            "required_tool": "calculate",
        },
        {
            "prompt": "What is the capital of Peru?",
            "answer": "Lima",
            "environment": "lookup",
            "required_tool": "capital",
        },
    ]
    data = tmp_path / "mixed.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    named = {"calc": f"{ENV_FILE}:Calculator", "lookup": f"{ENV_FILE}:Lookup"}
    cfg = _config(tmp_path, named, data)
    # "final_answer" of "Lima" is no math: unscored (invalid_input), so lookup rollouts are None
    result, capture = _run(monkeypatch, cfg, force=lambda row: True)
    call = capture.calls[0]
    routed = {"calc": "Calculator", "lookup": "Lookup"}
    assert sorted(call["environment"]) == ["calc"] * 4 + ["lookup"] * 4
    for name, env, c, r in zip(
        call["environment"], call["environments"], call["completions"], call["rewards"], strict=True
    ):
        assert type(env).__name__ == routed[name]
        tool = c[0]["tool_calls"][0]["function"]["name"]
        assert tool == ("calculate" if name == "calc" else "capital")
        assert c[1]["content"] == ("42" if name == "calc" else "Lima")
        assert (r is None) == (name == "lookup")
    log = next(e for e in result.history if "reward" in e)
    assert log["agent/unscored_rate"] == 0.5
    assert log["rewards/env/mean"] == 1.0  # Calculator only; Lookup has no get_reward
    assert math.isfinite(log["loss"]) and math.isfinite(log["reward"])
    history = (result.output_dir / "log_history.jsonl").read_text()
    assert "NaN" not in history


@pytest.mark.slow
def test_the_example_runs_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's command on the tiny model (no scripting: the random model calls no tool)."""
    out = tmp_path / "run"
    args = ["train", "--config", str(EXAMPLE), "--output-dir", str(out), "--max-steps", "2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    for row in ("reward", "step/valid_call", "rollout/final_answer", "env", "tool calls"):
        assert f"\n  {row} " in printed, (row, printed)
