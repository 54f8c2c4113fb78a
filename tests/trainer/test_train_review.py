"""Review of ``rm-service train`` as a new user: a reward that needs a column the dataset lacks
is refused before any model loads (it trained every step on ``None``); an earlier run's outputs
are not overwritten silently; the summary says how many samples its means left out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rm_service._exceptions import ConfigError
from trainer import load_train_config, train
from trainer._report import summarize

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "examples" / "train_prompts.jsonl"  # columns: id, prompt, answer
ENV_FILE = ROOT / "examples" / "agent_env.py"


def _config(tmp_path: Path, reward: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "model": {"tiny": {}},
        "dataset": {"path": str(PROMPTS)},
        "reward": reward,
        "grpo": {"max_steps": 1},
        "output_dir": str(tmp_path / "out"),
        **top,
    }


def _no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the model were loaded: the error must come before it."""

    def refuse(cfg: Any) -> Any:
        raise AssertionError("the model was loaded before the config error")

    monkeypatch.setattr("trainer._build.load_model", refuse)


def test_reward_needing_a_column_the_dataset_lacks_fails_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/reward.yaml maps ``reference_response: ground_truth``; the train prompts have
    ``answer``. Every sample was unscored, and the run trained to the end printing n/a."""
    _no_model(monkeypatch)
    cfg = load_train_config(_config(tmp_path, {"config": str(ROOT / "examples" / "reward.yaml")}))
    with pytest.raises(ConfigError, match=r"reward\.config: grader 'correct'.*'ground_truth'"):
        train(cfg, echo=None)


def test_agent_rollout_grader_needing_a_missing_column_fails_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_model(monkeypatch)
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "What is 2 + 2?", "gold": "4"}) + "\n")
    rollout = {
        "graders": {"final": {"type": "final_answer", "mapper": {"reference_response": "answer"}}}
    }
    cfg = _config(
        tmp_path,
        {"rollout": rollout},
        environment={"factory": f"{ENV_FILE}:Calculator", "max_turns": 2},
    )
    cfg["dataset"]["path"] = str(data)
    with pytest.raises(ConfigError, match=r"reward\.rollout: grader 'final'.*'answer'"):
        train(load_train_config(cfg), echo=None)


def test_null_gold_in_the_first_row_is_data_not_a_config_error(tmp_path: Path) -> None:
    """The column exists, null in row 1: that record is unscored when graded, nothing more."""
    data = tmp_path / "prompts.jsonl"
    data.write_text(
        json.dumps({"prompt": "2 + 2?", "ground_truth": None})
        + "\n"
        + json.dumps({"prompt": "3 + 3?", "ground_truth": "6"})
        + "\n"
    )
    cfg = load_train_config(_config(tmp_path, {"config": str(ROOT / "examples" / "reward.yaml")}))
    cfg.dataset.path = str(data)
    from trainer._build import check_reward_fields, reward_functions
    from trainer._data import load_prompts

    check_reward_fields(cfg, load_prompts(cfg), reward_functions(cfg))  # no error


def test_an_earlier_runs_outputs_are_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Running the README command twice replaced the first run's log and plot silently."""
    _no_model(monkeypatch)
    out = tmp_path / "out"
    out.mkdir()
    (out / "log_history.jsonl").write_text('{"reward": 0.9, "step": 1}\n')
    reward = {"config": str(ROOT / "examples" / "train_reward.yaml")}
    cfg = load_train_config(_config(tmp_path, reward))
    with pytest.raises(ConfigError, match=r"output_dir: .* already holds a run's outputs"):
        train(cfg, echo=None)
    assert (out / "log_history.jsonl").read_text() == '{"reward": 0.9, "step": 1}\n'


def test_overwrite_true_replaces_them(tmp_path: Path) -> None:
    """Checkpoints included: left beside the new run's, the old run's newest checkpoint is what a
    later ``resume_from_checkpoint: true`` would have resumed from."""
    out = tmp_path / "out"
    (out / "checkpoint-500").mkdir(parents=True)
    (out / "checkpoint-500" / "trainer_state.json").write_text("{}")
    (out / "log_history.jsonl").write_text('{"reward": 0.9, "step": 1}\n')
    reward = {"config": str(ROOT / "examples" / "train_reward.yaml")}
    result = train(load_train_config(_config(tmp_path, reward, overwrite=True)), echo=None)
    assert result.summary.steps == 1
    assert '"reward": 0.9' not in (out / "log_history.jsonl").read_text()
    assert not (out / "checkpoint-500").exists()


def test_a_bad_config_with_overwrite_destroys_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "checkpoint-500").mkdir(parents=True)
    reward = {"config": str(ROOT / "examples" / "reward.yaml")}  # reads ground_truth: missing
    with pytest.raises(ConfigError, match="does not provide it"):
        train(load_train_config(_config(tmp_path, reward, overwrite=True)), echo=None)
    assert (out / "checkpoint-500").is_dir()


def test_the_cli_replaces_them_with_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rm-service train --overwrite``, as ``grade --overwrite``: the README command again."""
    from rm_service.cli import main

    out = tmp_path / "out"
    out.mkdir()
    (out / "log_history.jsonl").write_text('{"reward": 0.9, "step": 1}\n')
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        json.dumps(_config(tmp_path, {"config": str(ROOT / "examples" / "train_reward.yaml")}))
    )
    assert main(["train", "-c", str(cfg)]) == 1
    assert "already holds a run's outputs" in capsys.readouterr().err
    assert main(["train", "-c", str(cfg), "--overwrite"]) == 0
    assert '"reward": 0.9' not in (out / "log_history.jsonl").read_text()


def test_summary_shows_the_unscored_share_beside_the_means() -> None:
    """The means are over scored samples only: 0.8 with half the samples unscored is not 0.8
    of the batch, and the summary said nothing of them."""
    history = [
        {"reward": 0.8, "rewards/reward/mean": 0.8, "rm_service/failure_rate": 0.5, "step": 1},
        {"reward": 0.9, "rewards/reward/mean": 0.9, "rm_service/failure_rate": 0.25, "step": 2},
    ]
    summary = summarize(history, 1.0)
    assert summary.unscored == (0.5, 0.25)
    assert "unscored share  0.500 -> 0.250" in summary.text(Path("out"), "cpu")
    scored = [{**e, "rm_service/failure_rate": 0.0} for e in history]
    assert "unscored" not in summarize(scored, 1.0).text(Path("out"), "cpu")
