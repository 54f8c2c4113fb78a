"""GRPO training on rm-service rewards: TRL's ``GRPOTrainer`` from one YAML file.

::

    rm-service train --config examples/train.yaml        # or, in Python:

    from trainer import load_train_config, train
    result = train(load_train_config("examples/train.yaml"), max_steps=50)

A separate package from ``rm_service`` because it imports torch, transformers and TRL (the
``train`` extra); ``import rm_service`` stays light, and the CLI imports this only for ``train``.
The rewards are :mod:`rm_service.integrations.trl`'s functions, in-process or over HTTP.
"""

from trainer._build import build_trainer, grpo_args, reward_functions, reward_weights
from trainer._config import (
    DEFAULT_MODEL,
    DatasetSpec,
    ModelSpec,
    RewardSpec,
    TinyModel,
    TrainConfig,
    load_train_config,
)
from trainer._model import load_model
from trainer._report import RunSummary
from trainer._run import TrainResult, train

__all__ = [
    "DEFAULT_MODEL",
    "DatasetSpec",
    "ModelSpec",
    "RewardSpec",
    "RunSummary",
    "TinyModel",
    "TrainConfig",
    "TrainResult",
    "build_trainer",
    "grpo_args",
    "load_model",
    "load_train_config",
    "reward_functions",
    "reward_weights",
    "train",
]
