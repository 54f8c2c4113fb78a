"""Real ``GRPOTrainer`` runs on the tiny model: the example learns, a live service works as the
reward, and unscored samples are masked rather than crashing or faking a 0.

Timings on 2 CPU cores: the 50-step example ~5-12 s (0.04 s/step plus start-up), the others a
few seconds each. The reward sequences are identical across runs with seed 0 (TRL's sampling
and the model's init are both seeded), so the margins below are fixed numbers, not luck.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from rm_service.app import create_app
from rm_service.cli import main
from tests.support import serve_in_thread
from trainer import load_train_config, train

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "train.yaml"
EXAMPLE_REWARD = ROOT / "examples" / "train_reward.yaml"

# Measured with seed 0 (first 10 vs last 10 steps): reward 0.450 -> 0.757, digit 0.525 -> 0.988,
# long 0.374 -> 0.526. The margins leave room for float noise across torch builds.
REWARD_MARGIN = 0.15


def _history(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]


def _steps(history: list[dict[str, Any]], key: str) -> list[float | None]:
    return [e.get(key) for e in history if "reward" in e]


def _mean(values: list[float | None]) -> float:
    return sum(v for v in values if v is not None) / len([v for v in values if v is not None])


def _config(tmp_path: Path, reward: dict[str, Any], **grpo: Any) -> dict[str, Any]:
    return {
        "model": {"tiny": {}},
        "dataset": {"path": str(ROOT / "examples" / "train_prompts.jsonl")},
        "reward": reward,
        "grpo": {"max_steps": 4, **grpo},
        "output_dir": str(tmp_path / "out"),
    }


@pytest.mark.slow
def test_example_reward_rises_within_50_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's command, in-process with one function per component."""
    out = tmp_path / "run"
    assert main(["train", "--config", str(EXAMPLE), "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "trained 50 steps" in printed and "mean reward, first 10 steps -> last 10" in printed
    history = _history(out)
    rewards = _steps(history, "reward")
    assert len(rewards) == 50
    first, last = _mean(rewards[:10]), _mean(rewards[-10:])
    assert last > first + REWARD_MARGIN, (first, last)
    for name in ("digit", "long"):
        curve = _steps(history, f"rewards/{name}/mean")
        assert all(v is not None for v in curve), name
        assert _mean(curve[-10:]) > _mean(curve[:10]), name
    assert (out / "reward_curve.png").stat().st_size > 10_000


def test_remote_reward_against_a_live_service(tmp_path: Path) -> None:
    """``reward.url``: the rewards come from ``POST /grade`` of the real app under uvicorn."""
    with serve_in_thread(create_app({"demo": str(EXAMPLE_REWARD)})) as url:
        reward = {"url": url, "name": "demo", "per_component": True, "timeout": 10.0}
        result = train(load_train_config(_config(tmp_path, reward)), echo=None)
    history = result.history
    for key in ("reward", "rewards/digit/mean", "rewards/long/mean"):
        values = _steps(history, key)
        assert len(values) == 4 and all(isinstance(v, float) and 0 <= v <= 1 for v in values), key
    assert all(e.get("rm_service/failure_rate", 0.0) == 0.0 for e in history)
    assert result.summary.first is not None


def test_unscored_samples_are_masked_not_crashing(tmp_path: Path) -> None:
    """A reward that is ``None`` for some samples (and for whole steps) trains on; the log keeps
    the gaps as null and the summary never invents a number."""
    reward_yaml = tmp_path / "reward.yaml"
    reward_yaml.write_text(
        "graders:\n  letters: {type: 'tests.trainer.rewards:unscored_if_digit'}\n"
    )
    cfg = _config(
        tmp_path,
        {"config": str(reward_yaml)},
        max_steps=6,
        per_device_train_batch_size=8,
        num_generations=4,
    )
    result = train(load_train_config(cfg), echo=None)
    failure = [e["rm_service/failure_rate"] for e in result.history if "reward" in e]
    assert len(failure) == 6
    assert any(0 < f < 1 for f in failure), failure  # some samples of a batch unscored
    for e in _history(result.output_dir):
        assert all(not (isinstance(v, float) and math.isnan(v)) for v in e.values())
    for value in (result.summary.first, result.summary.last):
        assert value is None or 0 <= value <= 1


def test_single_function_mode_logs_the_config_reward(tmp_path: Path) -> None:
    """``per_component: false``: one function named after the config's reward, in [0, 1]."""
    cfg = _config(tmp_path, {"config": str(EXAMPLE_REWARD)}, max_steps=2)
    history = train(load_train_config(cfg), echo=None).history
    assert all(0 <= v <= 1 for v in _steps(history, "rewards/reward/mean"))
    assert not any(k.startswith("rewards/digit/") for e in history for k in e)


def test_progress_lines_and_summary_are_printed(tmp_path: Path) -> None:
    lines: list[str] = []
    cfg = _config(tmp_path, {"config": str(EXAMPLE_REWARD), "per_component": True}, max_steps=2)
    train(load_train_config(cfg), echo=lines.append)
    assert lines[0].startswith("step 1/2  reward ")
    summary = lines[-1]
    assert "trained 2 steps" in summary and "first 1 steps -> last 1 steps" in summary
    assert "  digit " in summary and "reward_curve.png" in summary


def test_conversational_prompts_on_the_tiny_model(tmp_path: Path) -> None:
    """Message-list prompts go through the tiny tokenizer's plain chat template."""
    rows = [{"prompt": [{"role": "user", "content": f"Count to {i}."}]} for i in range(8)]
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _config(tmp_path, {"config": str(EXAMPLE_REWARD)}, max_steps=2)
    cfg["dataset"] = {"path": str(data)}
    history = train(load_train_config(cfg), echo=None).history
    assert all(0 <= v <= 1 for v in _steps(history, "reward"))


def _smollm2_missing() -> str | None:
    import importlib.util

    from rm_service.models._local import LocalModelUnavailable, default_gguf_path

    if importlib.util.find_spec("gguf") is None:  # the [local] extra reads the GGUF
        return "gguf is not installed"
    try:
        default_gguf_path()  # the weights package is optional (installed with --no-deps)
    except LocalModelUnavailable as exc:
        return str(exc)
    return None


@pytest.mark.slow
@pytest.mark.skipif(_smollm2_missing() is not None, reason=str(_smollm2_missing()))
def test_a_real_model_trains_on_conversational_prompts(tmp_path: Path) -> None:
    """``path: smollm2``: the packaged SmolLM2-135M-Instruct (GGUF, converted once and cached)
    takes GRPO steps with chat prompts through its own chat template. ~5 s a step on 2 cores."""
    prompts = tmp_path / "chat.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"prompt": [{"role": "user", "content": f"Answer with a number: {i}+{i}?"}]})
            + "\n"
            for i in range(4)
        )
    )
    cfg = _config(tmp_path, {"config": str(EXAMPLE_REWARD), "per_component": True})
    cfg["model"] = {"path": "smollm2"}
    cfg["dataset"] = {"path": str(prompts)}
    cfg["grpo"] = {
        "max_steps": 1,
        "per_device_train_batch_size": 4,
        "num_generations": 4,
        "max_completion_length": 8,
    }
    train(load_train_config(cfg))
    (step,) = _history(tmp_path / "out")[:1]
    assert step["step"] == 1 and math.isfinite(step["loss"])
    assert {"rewards/digit/mean", "rewards/long/mean"} <= set(step)
    assert step["rm_service/failure_rate"] == 0.0


# --- found by the training review ----------------------------------------------------------------


def test_an_interrupted_run_keeps_the_log_of_the_steps_it_trained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log and the plot were written only after a whole run: a Ctrl-C at step 600 of 2000
    left an empty output directory. What was trained is logged, and the interrupt goes on."""
    from transformers import TrainerCallback

    import trainer._run as run_module

    class CtrlC(TrainerCallback):  # the main thread's KeyboardInterrupt, in step 3
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 3:  # steps 1 and 2 are logged by now
                raise KeyboardInterrupt

    real = run_module.build_trainer

    def build(*args: Any, **kwargs: Any) -> Any:
        trainer = real(*args, **kwargs)
        trainer.add_callback(CtrlC())
        return trainer

    monkeypatch.setattr(run_module, "build_trainer", build)
    lines: list[str] = []
    cfg = _config(tmp_path, {"config": str(EXAMPLE_REWARD)}, max_steps=6)
    with pytest.raises(KeyboardInterrupt):
        train(load_train_config(cfg), echo=lines.append)
    out = tmp_path / "out"
    assert [e["step"] for e in _history(out) if "reward" in e] == [1, 2]
    assert (out / "reward_curve.png").stat().st_size > 0
    assert lines[-1].startswith("interrupted at step 3: the log so far is in")


def test_resume_from_checkpoint_resumes_and_the_log_covers_both_runs(tmp_path: Path) -> None:
    """``grpo.resume_from_checkpoint`` was accepted and ignored: the run started again from a
    fresh model (all four steps generated and scored again), and its log replaced the first
    run's."""
    from tests.trainer import rewards

    reward_yaml = tmp_path / "reward.yaml"
    reward_yaml.write_text("graders:\n  letters: {type: 'tests.trainer.rewards:counted'}\n")
    reward = {"config": str(reward_yaml)}
    first = _config(tmp_path, reward, max_steps=2, save_strategy="steps", save_steps=2)
    train(load_train_config(first), echo=None)
    checkpoint = tmp_path / "out" / "checkpoint-2"
    assert checkpoint.is_dir()
    rewards.calls.clear()
    again = _config(tmp_path, reward, max_steps=4, resume_from_checkpoint=str(checkpoint))
    result = train(load_train_config(again), echo=None)
    assert len(rewards.calls) == 2 * 8  # steps 3 and 4 only, batches of 8 samples
    assert [e["step"] for e in result.history if "reward" in e] == [1, 2, 3, 4]
    assert result.summary.steps == 4


def test_the_summary_counts_steps_not_log_entries() -> None:
    """With ``logging_steps: 5`` ten steps log two entries, and the summary said "trained 2
    steps" and "first 1 steps -> last 1 steps"."""
    from trainer._report import summarize

    history = [{"step": 5, "reward": 0.2}, {"step": 10, "reward": 0.6}, {"train_runtime": 1.0}]
    summary = summarize(history, 2.0)
    assert (summary.steps, summary.points) == (10, 2)
    text = summary.text(Path("out"), "cpu")
    assert "trained 10 steps" in text and "first 1 logged points -> last 1 logged points" in text
