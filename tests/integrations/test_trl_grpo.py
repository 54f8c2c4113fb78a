"""Per-component reward functions through TRL's own reward combination (trl 1.16).

A real tiny ``GRPOTrainer`` (random Llama, byte tokenizer, CPU) runs
``_generate_and_score_completions`` on one generation batch: real generation, TRL's
``_calculate_rewards`` (``None`` -> NaN), its weighted ``nansum`` over the functions, its
masking of rows where every function is NaN, its group advantages and its logged means. About
6 s, most of it importing TRL and building the trainer.

The reward: ``correct`` is unscored where the dataset's ``gold`` is ``"none"``, ``spread``
always scores (and differs between completions, so a group it alone trained would get non-zero
advantages); ``reward`` is their weighted sum with the default ``on_error: unscored``.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from graders import Unscored
from rm_service.integrations.trl import RMServiceReward

pytest.importorskip("trl")
# TRL 1.16 calls this deprecated transformers name itself on every generation.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"
)

REWARD: dict[str, Any] = {
    "graders": {
        "correct": {"type": "tests.integrations.test_trl_grpo:correct"},
        "spread": {"type": "tests.integrations.test_trl_grpo:spread"},
    },
    # Weights that do not sum to 1: the aggregator normalises them to 0.75 / 0.25.
    "aggregators": [
        {"type": "weighted_sum", "name": "reward", "weights": {"correct": 3, "spread": 1}}
    ],
}
GENERATIONS = 4


def correct(response: str, gold: str) -> float:
    """1.0 when the gold string occurs in the response; unscored when there is no gold."""
    if gold == "none":
        raise Unscored("no gold answer for this prompt", kind="invalid_input")
    return float(gold in response)


def spread(response: str) -> float:
    """A score that differs between random completions (a stand-in for format or length)."""
    return (sum(map(ord, response)) % 101) / 100


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real tiny GRPOTrainer over ``per_component()`` with the config's weights normalised
    (as TRL takes them: it does not normalise), built once for the module."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from trainer import load_train_config
    from trainer._build import grpo_args
    from trainer._model import load_model

    tmp = tmp_path_factory.mktemp("grpo")
    data = tmp / "prompts.jsonl"
    data.write_text('{"prompt": "p", "gold": "a"}\n')
    cfg = load_train_config(
        {
            "model": {"tiny": {}},
            "dataset": {"path": str(data)},
            "reward": {"config": str(data)},  # unused: the functions are passed below
            "grpo": {
                "max_steps": 1,
                "per_device_train_batch_size": 2 * GENERATIONS,
                "num_generations": GENERATIONS,
                "reward_weights": [0.75, 0.25],
            },
            "output_dir": str(tmp / "out"),
        }
    )
    model, tokenizer = load_model(cfg)
    return GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=RMServiceReward(REWARD).per_component(),
        args=grpo_args(cfg, output_dir=tmp / "out"),
        train_dataset=Dataset.from_list([{"prompt": "p", "gold": "a"}]),
    )


def test_records_the_config_leaves_unscored_carry_no_signal_in_grpo(trainer: Any) -> None:
    """Issue 10: with ``per_component()``, a record whose ``correct`` is unscored (so the
    config's ``reward`` is) used to be trained on ``spread`` alone through TRL's ``nansum``
    (advantages like +1.38 and -0.95 in a group the single function masks), and TRL's
    ``reward`` mean (0.0625) differed from ``rm_service/reward/mean`` (0.04125)."""
    # One group with a gold, one without, as TRL's sampler lays them out.
    batch = [
        {"prompt": f"Say {gold}.", "gold": gold}
        for gold in ("a", "none")
        for _ in range(GENERATIONS)
    ]
    out = trainer._generate_and_score_completions(batch)

    advantages = out["advantages"].tolist()
    per_func = {name: list(trainer._logs["rewards"][name]) for name in ("correct", "spread")}
    unscored = range(GENERATIONS, 2 * GENERATIONS)
    # Every function is None (NaN) for the unscored group, so TRL masks those rows: reward NaN,
    # advantage exactly 0, and no part of them in the scored group's baseline.
    assert all(math.isnan(per_func[n][i]) for n in per_func for i in unscored), per_func
    assert [advantages[i] for i in unscored] == [0.0] * GENERATIONS
    assert all(not math.isnan(per_func["spread"][i]) for i in range(GENERATIONS))
    assert any(abs(a) > 0.1 for a in advantages[:GENERATIONS])  # the scored group still learns

    metrics = trainer._metrics["train"]
    assert metrics["reward"][-1] == pytest.approx(metrics["rm_service/reward/mean"][-1], rel=1e-5)
    assert metrics["rm_service/reward/failure_rate"][-1] == 0.5


def test_reward_weights_make_trls_sum_the_configs_reward(trainer: Any) -> None:
    """``reward_weights()`` is what to put in ``GRPOConfig.reward_weights``: TRL's weighted sum
    is then the config's (normalised) weighted sum, record for record."""
    assert RMServiceReward(REWARD).reward_weights() == trainer.reward_weights.tolist()
    batch = [{"prompt": f"Say {i}.", "gold": "a"} for i in range(2) for _ in range(GENERATIONS)]
    trainer._generate_and_score_completions(batch)
    rows = zip(*(trainer._logs["rewards"][n] for n in ("correct", "spread")), strict=True)
    ours = RMServiceReward(REWARD)
    completions = list(trainer._logs["completion"])[-len(batch) :]
    expected = [
        r.reward
        for r in ours._shared.backend.runner.grade(
            [{"response": c, "gold": "a"} for c in completions]
        )
    ]
    assert [0.75 * c + 0.25 * s for c, s in rows] == pytest.approx(expected)
    metrics = trainer._metrics["train"]
    assert metrics["reward"][-1] == pytest.approx(metrics["rm_service/reward/mean"][-1], rel=1e-5)
    assert metrics["rm_service/reward/failure_rate"][-1] == 0.0
