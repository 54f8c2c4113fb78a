"""``train.yaml`` validation: every error names the file and the field, before any training."""

from __future__ import annotations

import math
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rm_service._exceptions import ConfigError
from rm_service.cli import main
from trainer import grpo_args, load_train_config, reward_functions, reward_weights
from trainer._data import load_prompts

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "train.yaml"


def _write(tmp_path: Path, data: Any, name: str = "train.yaml") -> Path:
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "Say a number:", "answer": "1"}\n')
    (tmp_path / "reward.yaml").write_text("graders:\n  n: {type: length_penalty, max_len: 4}\n")
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _base(**changes: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model": {"tiny": {}},
        "dataset": {"path": "prompts.jsonl"},
        "reward": {"config": "reward.yaml"},
    }
    cfg.update(changes)
    return cfg


def test_example_config_loads_with_paths_relative_to_the_file() -> None:
    cfg = load_train_config(EXAMPLE)
    assert cfg.dataset.path == str(ROOT / "examples" / "train_prompts.jsonl")
    assert cfg.reward.config == str(ROOT / "examples" / "train_reward.yaml")
    assert cfg.reward.per_component and cfg.model.tiny is not None and cfg.seed == 0
    assert len(load_prompts(cfg)) >= 16


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"model": {}}, "model: Value error, set exactly one of tiny"),
        ({"model": {"tiny": {}, "path": "x"}}, "model: Value error, set exactly one of tiny"),
        ({"model": {"tiny": {"hidden_size": 30, "heads": 4}}}, "model.tiny: Value error"),
        ({"model": {"tiny": {"layers": 0}}}, "model.tiny.layers: Input should be greater"),
        ({"model": {"path": "nowhere.gguf"}}, "model.path: nowhere.gguf does not exist"),
        ({"dataset": {"path": "missing.jsonl"}}, "dataset.path: missing.jsonl does not exist"),
        ({"reward": {}}, "reward: Value error, set exactly one of config"),
        ({"reward": {"config": "reward.yaml", "url": "http://x"}}, "set exactly one of config"),
        ({"reward": {"url": "ftp://x"}}, "reward.url: String should match"),
        ({"reward": {"config": "reward.yaml", "api_key": "k"}}, "api_key only apply with url"),
        ({"reward": {"config": "reward.yaml", "weights": {"n": 1}}}, "weights need per_component"),
        ({"reward": {"config": "gone.yaml"}}, "reward.config: gone.yaml does not exist"),
        (
            {
                "reward": {
                    "config": "reward.yaml",
                    "per_component": True,
                    "weights": {"n": math.nan},
                }
            },
            "weights must be finite and >= 0",
        ),
        ({"grpo": {"output_dir": "x"}}, "grpo.output_dir: set it at the top level"),
        ({"epochs": 3}, "epochs: Extra inputs are not permitted"),
    ],
)
def test_invalid_fields_are_named_with_the_file(
    tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    path = _write(tmp_path, _base(**changes))
    with pytest.raises(ConfigError) as err:
        load_train_config(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"), [("model: [1\n", "invalid YAML"), ("- a\n", "expected a mapping")]
)
def test_unreadable_yaml(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected):
        load_train_config(path)


def test_grpo_overrides_are_checked_against_grpo_config(tmp_path: Path) -> None:
    cfg = load_train_config(_write(tmp_path, _base(grpo={"learning_rat": 0.1})))
    with pytest.raises(ConfigError, match=r"train\.yaml: grpo\.learning_rat: not a GRPOConfig"):
        grpo_args(cfg, output_dir=tmp_path / "out")
    bad = {"per_device_train_batch_size": 6, "num_generations": 4}
    cfg = load_train_config(_write(tmp_path, _base(grpo=bad)))
    with pytest.raises(ConfigError, match=r"train\.yaml: grpo: .*num_generations"):
        grpo_args(cfg, output_dir=tmp_path / "out")


def test_cpu_defaults_and_overrides(tmp_path: Path) -> None:
    cfg = load_train_config(_write(tmp_path, _base(seed=7, grpo={"learning_rate": 0.01})))
    args = grpo_args(cfg, output_dir=tmp_path / "out", max_steps=3)
    assert (args.use_cpu, args.bf16, args.fp16, args.gradient_checkpointing) == (
        True,
        False,
        False,
        False,
    )
    assert (args.max_steps, args.learning_rate, args.seed) == (3, 0.01, 7)
    assert args.per_device_train_batch_size % args.num_generations == 0


def test_dataset_errors_name_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, _base())
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "a"}\n\n{"text": "b"}\n')
    with pytest.raises(ConfigError, match=r"dataset\.path: .*prompts\.jsonl line 3: expected"):
        load_prompts(load_train_config(path))
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "a"}\n{oops\n')
    with pytest.raises(ConfigError, match=r"line 2: bad JSON"):
        load_prompts(load_train_config(path))


def test_saved_hf_dataset_and_its_split(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    rows = {"prompt": ["a", "b"], "answer": ["1", "2"]}
    DatasetDict({"train": Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "dd"))
    cfg = load_train_config(_write(tmp_path, _base(dataset={"path": "dd"})))
    assert load_prompts(cfg)["answer"] == ["1", "2"]
    cfg = load_train_config(_write(tmp_path, _base(dataset={"path": "dd", "split": "test"})))
    with pytest.raises(ConfigError, match=r"dataset\.split: 'test' not in \['train'\]"):
        load_prompts(cfg)


def test_weights_must_name_the_components(tmp_path: Path) -> None:
    reward = {"config": "reward.yaml", "per_component": True, "weights": {"m": 1.0}}
    cfg = load_train_config(_write(tmp_path, _base(reward=reward)))
    with pytest.raises(ConfigError, match=r"reward\.weights: must name each component"):
        reward_functions(cfg)


def test_bad_reward_config_is_reported_against_the_train_config(tmp_path: Path) -> None:
    path = _write(tmp_path, _base())
    (tmp_path / "reward.yaml").write_text("graders:\n  n: {type: no_such_grader}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: reward\.config: .*no_such_grader"):
        reward_functions(load_train_config(path))


def test_unreachable_service_fails_before_training(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on once the socket closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reward = {"url": f"http://127.0.0.1:{port}", "retries": 0, "timeout": 2.0}
    cfg = load_train_config(_write(tmp_path, _base(reward=reward)))
    with pytest.raises(ConfigError, match=r"train\.yaml: reward\.url: cannot describe"):
        reward_functions(cfg)


def test_cli_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _base(model={}))
    assert main(["train", "--config", str(path)]) == 1
    assert f"rm-service: error: {path}: model:" in capsys.readouterr().err


def test_cli_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without TRL the import of ``trainer`` fails; the CLI names the ``train`` extra."""
    for name in [m for m in sys.modules if m == "trainer" or m.startswith("trainer.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "trl", None)  # makes `import trl` raise ModuleNotFoundError
    assert main(["train", "--config", str(EXAMPLE)]) == 1
    err = capsys.readouterr().err
    assert "needs the train extra (trl is missing): pip install -e '.[train]'" in err


_TWO = (
    "graders:\n  a: {type: length_penalty, max_len: 4}\n  b: {type: length_penalty, max_len: 9}\n"
)


def _per_component(tmp_path: Path, aggregator: str, **reward: Any) -> Any:
    path = _write(
        tmp_path, _base(reward={"config": "reward.yaml", "per_component": True, **reward})
    )
    (tmp_path / "reward.yaml").write_text(f"{_TWO}aggregators:\n  - {aggregator}\n")
    return load_train_config(path)


def test_per_component_without_weights_gets_the_reward_configs_weights(tmp_path: Path) -> None:
    """TRL's default weights are ones: its total would be the plain sum of the components (up to
    N), not the config's reward. The config's own normalised weights are the default."""
    cfg = _per_component(tmp_path, "{type: weighted_sum, name: reward, weights: {a: 3, b: 1}}")
    functions = reward_functions(cfg)
    assert [f.__name__ for f in functions] == ["a", "b"]
    weights = reward_weights(cfg, functions)
    assert weights == pytest.approx([0.75, 0.25])
    args = grpo_args(cfg, output_dir=tmp_path / "out", weights=weights)
    assert args.reward_weights == pytest.approx([0.75, 0.25])


def test_explicit_weights_win_and_a_min_reward_keeps_trls_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _per_component(tmp_path, "{type: min, name: reward}")
    with caplog.at_level("WARNING", logger="trainer"):
        assert reward_weights(cfg, reward_functions(cfg)) is None
    assert "TRL sums the components with weight 1" in caplog.text
    cfg = _per_component(tmp_path, "{type: min, name: reward}", weights={"a": 2, "b": 1})
    assert reward_weights(cfg, reward_functions(cfg)) == [2, 1]


# --- found by the training review ----------------------------------------------------------------


@pytest.mark.parametrize("column", ["completion", "completion_ids", "messages", "query"])
def test_a_column_the_generated_completion_would_replace_is_refused(
    tmp_path: Path, column: str
) -> None:
    """TRL drops ``completion`` from what it passes a reward, and the face sets ``query``,
    ``response`` and ``messages``: a gold answer kept under such a name was replaced by the
    generated text, so any completion matched itself (gibberish scored 1.0). Refused before the
    model loads, naming the file and the column."""
    from trainer import build_trainer

    path = _write(tmp_path, _base())
    (tmp_path / "prompts.jsonl").write_text(json_line({"prompt": "7+7?", column: "14"}))
    with pytest.raises(ConfigError, match=rf"dataset\.path: column\(s\) \['{column}'\] would"):
        build_trainer(load_train_config(path), output_dir=tmp_path / "out")


def json_line(row: dict[str, Any]) -> str:
    import json

    return json.dumps(row) + "\n"


def test_every_jsonl_column_is_kept_and_mixed_types_name_their_lines(tmp_path: Path) -> None:
    """Columns came from the first line alone: an ``answer`` line 1 lacked vanished from every
    row (the whole run then trained on unscored samples). A column whose lines disagree on
    type was an Arrow traceback naming no file or line."""
    path = _write(tmp_path, _base())
    rows = [{"prompt": "a"}, {"prompt": "b", "answer": "2"}, {"prompt": "c", "answer": "3"}]
    (tmp_path / "prompts.jsonl").write_text("".join(json_line(r) for r in rows))
    data = load_prompts(load_train_config(path))
    assert data["answer"] == [None, "2", "3"]
    mixed = [{"prompt": "a", "answer": 8}, {"prompt": "b", "answer": 2.5}, {"prompt": "c"}]
    (tmp_path / "prompts.jsonl").write_text("".join(json_line(r) for r in mixed))
    assert load_prompts(load_train_config(path))["answer"] == [8, 2.5, None]  # numbers widen
    mixed.append({"prompt": "d", "answer": "3/4"})
    (tmp_path / "prompts.jsonl").write_text("".join(json_line(r) for r in mixed))
    with pytest.raises(
        ConfigError, match=r"prompts\.jsonl line 4: column 'answer' is str where line 1 has number"
    ):
        load_prompts(load_train_config(path))


def test_a_split_for_a_dataset_without_splits_is_an_error(tmp_path: Path) -> None:
    from datasets import Dataset

    cfg = load_train_config(
        _write(tmp_path, _base(dataset={"path": "prompts.jsonl", "split": "x"}))
    )
    with pytest.raises(ConfigError, match=r"dataset\.split: .*JSONL file, which has no splits"):
        load_prompts(cfg)
    Dataset.from_dict({"prompt": ["a"]}).save_to_disk(str(tmp_path / "one"))
    cfg = load_train_config(_write(tmp_path, _base(dataset={"path": "one", "split": "test"})))
    with pytest.raises(ConfigError, match=r"dataset\.split: .*not a DatasetDict"):
        load_prompts(cfg)
    assert (
        len(load_prompts(load_train_config(_write(tmp_path, _base(dataset={"path": "one"}))))) == 1
    )


def test_epochs_given_alone_decide_the_run_length(tmp_path: Path) -> None:
    """The default ``max_steps: 50`` always won over ``num_train_epochs`` (HF's Trainer lets a
    positive max_steps win): one epoch over four prompts trained 50 steps."""
    cfg = load_train_config(_write(tmp_path, _base(grpo={"num_train_epochs": 2})))
    args = grpo_args(cfg, output_dir=tmp_path / "out")
    assert (args.num_train_epochs, args.max_steps) == (2, -1)
    both = load_train_config(_write(tmp_path, _base(grpo={"num_train_epochs": 2, "max_steps": 7})))
    assert grpo_args(both, output_dir=tmp_path / "out").max_steps == 7
    assert (
        grpo_args(load_train_config(_write(tmp_path, _base())), output_dir=tmp_path).max_steps == 50
    )


def test_reward_weights_in_two_places_is_an_error(tmp_path: Path) -> None:
    reward = {"config": "reward.yaml", "per_component": True, "weights": {"n": 1.0}}
    cfg = load_train_config(_write(tmp_path, _base(reward=reward, grpo={"reward_weights": [0.5]})))
    with pytest.raises(ConfigError, match=r"grpo\.reward_weights: reward\.weights sets them"):
        grpo_args(cfg, output_dir=tmp_path / "out", weights=[1.0])
