"""Second review of ``rm-service train``: a rollout TRL cut short at ``max_turns`` was graded as
if it had finished; a reward on a service skipped the dataset-fields check that in-process rewards
get; a resume with no checkpoint to resume from failed only after the model loaded, and emptied
the earlier run's log on the way; a resumed run's summary divided this run's time by every step
of the run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from rm_service._exceptions import ConfigError
from rm_service.app import create_app
from tests.support import serve_in_thread
from tests.trainer.test_agent_reward import CALL, PROMPT, SOLVED
from tests.trainer.test_agent_train import _config as _agent_run_config
from tests.trainer.test_agent_train import _run
from tests.trainer.test_train_review import _no_model
from trainer import load_train_config, train
from trainer._build import agent_reward

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "examples" / "train_prompts.jsonl"  # columns: id, prompt, answer
AGENT_PROMPTS = ROOT / "examples" / "agent_prompts.jsonl"
ENV_FILE = ROOT / "examples" / "agent_env.py"
TRAIN_REWARD = {"config": str(ROOT / "examples" / "train_reward.yaml")}

# TRL's completion when it stops at max_tool_calling_iterations: the last turn's call never ran.
CUT = [
    *SOLVED[:2],
    {"role": "assistant", "content": "let me check 391", "tool_calls": [CALL]},
]


def _config(tmp_path: Path, reward: dict[str, Any], **grpo: Any) -> dict[str, Any]:
    return {
        "model": {"tiny": {}},
        "dataset": {"path": str(PROMPTS)},
        "reward": reward,
        "grpo": {"max_steps": 1, **grpo},
        "output_dir": str(tmp_path / "out"),
    }


def _agent_config(tmp_path: Path, max_turns: int, **reward: Any) -> dict[str, Any]:
    cfg = _agent_run_config(tmp_path, f"{ENV_FILE}:Calculator", AGENT_PROMPTS, **reward)
    cfg["environment"] = {"factory": f"{ENV_FILE}:Calculator", "max_turns": max_turns}
    return cfg


# --- a rollout cut at max_turns -----------------------------------------------------------------


def test_a_rollout_cut_at_max_turns_is_unscored_in_a_real_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``max_turns: 1`` lets TRL run no tool round: a turn that calls a tool ends the rollout
    with the call never run. It was graded as a finished rollout (a number); now it is ``None``,
    with the reason, and counted in ``agent/cut_rate``."""
    cfg = _agent_config(tmp_path, max_turns=1)
    result, capture = _run(monkeypatch, cfg, force=lambda row: row % 2 == 0)
    assert capture.trainer.args.max_tool_calling_iterations == 0
    call = capture.calls[0]
    cut = [c[-1].get("tool_calls") is not None for c in call["completions"]]
    assert sum(cut) == 4, call["completions"]  # the scripted rows: a call TRL never ran
    for was_cut, reward in zip(cut, call["rewards"], strict=True):
        assert (reward is None) == was_cut
    log = next(e for e in result.history if "reward" in e)
    assert log["agent/cut_rate"] == pytest.approx(0.5)


def test_on_cut_gives_a_cut_rollout_the_chosen_reward_with_the_reason() -> None:
    """``reward.on_cut: 0.0`` is the deliberate alternative: a cut rollout earns 0.0 and is
    not graded (its last "answer" is a tool call); a finished rollout beside it is graded."""
    cfg = load_train_config(_agent_config(Path("."), max_turns=3, on_cut=0.0))
    reward = agent_reward(cfg)
    logged: dict[str, Any] = {}
    rewards = asyncio.run(
        reward(
            [PROMPT, PROMPT],
            [CUT, SOLVED],
            answer=["391", "391"],
            required_tool=["calculate", "calculate"],
            log_metric=logged.__setitem__,
            log_extra=logged.__setitem__,
        )
    )
    assert rewards[0] == 0.0
    assert rewards[1] is not None and rewards[1] > 0.5
    assert logged["agent/cut_rate"] == 0.5 and logged["agent/unscored_rate"] == 0.0
    reason = json.loads(logged["agent/errors"][0])["cut"]
    assert "called ['calculate'], which never ran" in reason and "max_turns" in reason
    assert logged["agent/errors"][1] == ""


def test_on_cut_is_a_reward_or_unscored_and_only_for_rollout_rewards(tmp_path: Path) -> None:
    for bad in (1.5, True, "zero"):
        with pytest.raises(ConfigError, match="on_cut"):
            load_train_config(_agent_config(tmp_path, max_turns=3, on_cut=bad))
    with pytest.raises(ConfigError, match="on_cut applies to step/rollout rewards only"):
        load_train_config(_config(tmp_path, {**TRAIN_REWARD, "on_cut": 0.0}))


# --- a reward on a service: the dataset-fields check ---------------------------------------------


def test_a_service_reward_needing_a_column_the_dataset_lacks_fails_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/reward.yaml maps ``reference_response: ground_truth``; the train prompts have
    ``answer``. In process that is an error before the model loads; on a service every sample
    was unscored, and the run trained on nothing to the end."""
    _no_model(monkeypatch)
    app = create_app({"math": str(ROOT / "examples" / "reward.yaml")})
    with serve_in_thread(app) as url:
        cfg = load_train_config(_config(tmp_path, {"url": url, "timeout": 10.0}))
        with pytest.raises(
            ConfigError,
            match=r"reward\.url: grader 'correct' reads record field 'ground_truth'.*columns "
            r"\['id', 'prompt', 'answer'\]",
        ):
            train(cfg, echo=None)


# --- resume -------------------------------------------------------------------------------------


def test_resume_with_no_checkpoint_fails_before_the_model_loads_and_keeps_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier run with the default ``save_strategy: "no"`` left its log and no checkpoint.
    ``resume_from_checkpoint: true`` loaded the model, then the Trainer raised a bare
    ``ValueError``, and the log was rewritten empty on the way out."""
    _no_model(monkeypatch)
    out = tmp_path / "out"
    out.mkdir()
    (out / "log_history.jsonl").write_text('{"reward": 0.9, "step": 1}\n')
    cfg = load_train_config(_config(tmp_path, TRAIN_REWARD, resume_from_checkpoint=True))
    with pytest.raises(
        ConfigError,
        match=r"grpo\.resume_from_checkpoint: true, but .* holds no checkpoint-\* folder.*"
        r"save_strategy 'no', the default",
    ):
        train(cfg, echo=None)
    missing = tmp_path / "nowhere" / "checkpoint-5"
    cfg = load_train_config(_config(tmp_path, TRAIN_REWARD, resume_from_checkpoint=str(missing)))
    with pytest.raises(ConfigError, match=r"checkpoint-5 is not a checkpoint"):
        train(cfg, echo=None)
    assert (out / "log_history.jsonl").read_text() == '{"reward": 0.9, "step": 1}\n'


def test_a_run_that_fails_before_logging_leaves_the_earlier_log(tmp_path: Path) -> None:
    """A checkpoint folder the Trainer cannot load fails inside ``trainer.train``: nothing was
    logged, and the earlier run's log was replaced by an empty one."""
    out = tmp_path / "out"
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "trainer_state.json").write_text("{}")  # no weights
    (out / "log_history.jsonl").write_text('{"reward": 0.9, "step": 1}\n')
    cfg = load_train_config(_config(tmp_path, TRAIN_REWARD, resume_from_checkpoint=True))
    with pytest.raises(ValueError, match="checkpoint"):
        train(cfg, echo=None)
    assert (out / "log_history.jsonl").read_text() == '{"reward": 0.9, "step": 1}\n'


def test_a_resumed_runs_summary_times_only_the_steps_it_trained(tmp_path: Path) -> None:
    """The log of a resumed run covers every step (the checkpoint's history included), but its
    time is this run's: "trained 4 steps in T s" divided T by 4 for 2 steps trained."""
    first = _config(tmp_path, TRAIN_REWARD, max_steps=2, save_strategy="steps", save_steps=2)
    train(load_train_config(first), echo=None)
    again = _config(tmp_path, TRAIN_REWARD, max_steps=4, resume_from_checkpoint=True)
    lines: list[str] = []
    result = train(load_train_config(again), echo=lines.append)
    summary = result.summary
    assert [e["step"] for e in result.history if "reward" in e] == [1, 2, 3, 4]
    assert (summary.steps, summary.resumed_from) == (4, 2)
    head = lines[-1].splitlines()[0]
    assert head.startswith("trained steps 3-4 (resumed from step 2) in ")
    assert f"({summary.seconds / 2:.2f} s/step)" in head
