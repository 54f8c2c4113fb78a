"""GRPO training on rm-service rewards: TRL's ``GRPOTrainer`` from one YAML file.

::

    rm-service train --config examples/train.yaml        # or, in Python:

    from trainer import load_train_config, train
    result = train(load_train_config("examples/train.yaml"), max_steps=50)

A separate package from ``rm_service`` because it imports torch, transformers and TRL (the
``train`` extra); ``import rm_service`` stays light, and the CLI imports this only for ``train``.
The rewards are :mod:`rm_service.integrations.trl`'s functions, in-process or over HTTP.

Lazy, like :mod:`rm_service`: ``import trainer`` loads nothing heavy; a name is imported from its
module on first access (module ``__getattr__``), so reading a config or listing what is here does
not pay for torch. The ``TYPE_CHECKING`` block shows type checkers the same names.
"""

from __future__ import annotations

import typing as _typing

from rm_service._lazy import lazy_attributes as _lazy_attributes

if _typing.TYPE_CHECKING:
    from trainer._agent import AgentReward
    from trainer._build import (
        agent_reward,
        build_trainer,
        grpo_args,
        reward_functions,
        reward_weights,
    )
    from trainer._config import (
        DEFAULT_MODEL,
        DatasetSpec,
        EnvironmentSpec,
        ModelSpec,
        RewardSpec,
        TinyModel,
        TrainConfig,
        load_train_config,
    )
    from trainer._env import LoadedEnvironment
    from trainer._model import load_model
    from trainer._report import RunSummary
    from trainer._run import TrainResult, train

# name -> the module that defines it; imported on first access by ``__getattr__``.
_LAZY: dict[str, str] = {
    "AgentReward": "trainer._agent",
    **dict.fromkeys(
        ("agent_reward", "build_trainer", "grpo_args", "reward_functions", "reward_weights"),
        "trainer._build",
    ),
    "LoadedEnvironment": "trainer._env",
    **dict.fromkeys(
        (
            "DEFAULT_MODEL",
            "DatasetSpec",
            "EnvironmentSpec",
            "ModelSpec",
            "RewardSpec",
            "TinyModel",
            "TrainConfig",
            "load_train_config",
        ),
        "trainer._config",
    ),
    "load_model": "trainer._model",
    "RunSummary": "trainer._report",
    **dict.fromkeys(("TrainResult", "train"), "trainer._run"),
}


__getattr__, __dir__ = _lazy_attributes(__name__, globals(), _LAZY)


__all__ = [
    "DEFAULT_MODEL",
    "AgentReward",
    "DatasetSpec",
    "EnvironmentSpec",
    "LoadedEnvironment",
    "ModelSpec",
    "RewardSpec",
    "RunSummary",
    "TinyModel",
    "TrainConfig",
    "TrainResult",
    "agent_reward",
    "build_trainer",
    "grpo_args",
    "load_model",
    "load_train_config",
    "reward_functions",
    "reward_weights",
    "train",
]
