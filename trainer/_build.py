"""From a :class:`TrainConfig` to a ready ``GRPOTrainer``: reward functions, arguments, trainer.

The defaults are the settings that make GRPO work on a CPU (figures in ``docs/benchmarks.md``,
Training): ``use_cpu``, no bf16 (GRPOConfig turns it on by
default), no gradient checkpointing (also on by default, and only slows a small model down), and
a batch of 8 completions per step in one group of 8. On a CUDA machine the GPU is used, with bf16
where the card supports it. Anything under ``grpo:`` in the config overrides them.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from trl import GRPOConfig, GRPOTrainer

from rm_service._config import load_runner
from rm_service._exceptions import MappingError, RMServiceError
from rm_service._openrlhf import described_reads
from rm_service._rollout import RolloutRewardCalculator
from rm_service._runner import GradingRunner
from rm_service.integrations.trl import (
    RemoteReward,
    RMServiceReward,
    check_dataset_columns,
    trl_records,
)
from trainer._agent import (
    AgentReward,
    CutMasked,
    check_columns,
    env_reward_functions,
    rollout_of,
)
from trainer._config import TrainConfig
from trainer._data import load_prompts
from trainer._env import LoadedEnvironment
from trainer._model import load_model

__all__ = [
    "agent_reward",
    "build_trainer",
    "check_reward_fields",
    "grpo_args",
    "reward_functions",
    "reward_weights",
]

_log = logging.getLogger("trainer")

_TINY_DEFAULTS: dict[str, Any] = {"learning_rate": 3e-3, "max_completion_length": 16}
_REAL_DEFAULTS: dict[str, Any] = {"learning_rate": 1e-5, "max_completion_length": 64}


def agent_reward(cfg: TrainConfig) -> AgentReward:
    """The rollout reward of ``reward.step`` / ``reward.rollout`` (see :mod:`trainer._agent`).

    The environment's ``get_reward()`` is the ``env`` source when an environment defines it,
    unless ``reward.weights.env`` is 0.

    Raises:
        ConfigError: a step or rollout reward config that does not load, or weights the
            calculator refuses; named with the file and field.
    """
    spec = cfg.reward
    runners: dict[str, GradingRunner] = {}
    for source in ("step", "rollout"):
        value = getattr(spec, source)
        if value is None:
            continue
        try:
            runners[source] = load_runner(value)
        except RMServiceError as exc:
            raise cfg.error(f"reward.{source}", str(exc)) from None
    weights = dict(spec.weights or {})
    env = cfg.loaded_environment
    use_env = env is not None and bool(env.rewarded) and weights.get("env", 1.0) > 0
    try:
        calculator = RolloutRewardCalculator(
            runners.get("step"),
            runners.get("rollout"),
            distribution=spec.distribution or "all_steps",
            gamma=spec.gamma,
            weights=weights,
        )
    except RMServiceError as exc:
        raise cfg.error("reward.weights", str(exc)) from None
    on_cut = None if spec.on_cut == "unscored" else float(spec.on_cut)
    return AgentReward(calculator, env, use_env=use_env, on_cut=on_cut)


def reward_functions(cfg: TrainConfig) -> list[Any]:
    """The reward as TRL reward functions: the config's reward, or one per grader component;
    for ``reward.step`` / ``reward.rollout``, the one rollout reward (:func:`agent_reward`).

    Raises:
        ConfigError: an invalid reward config, an unreachable service, or ``reward.weights``
            that do not name exactly the components.
    """
    spec = cfg.reward
    if spec.agent:
        return [agent_reward(cfg)]
    try:
        if spec.url is not None:
            reward: RMServiceReward = RemoteReward(spec.url, **spec.remote_options())
        else:
            assert spec.config is not None  # RewardSpec guarantees exactly one source
            reward = RMServiceReward(spec.config)
    except RMServiceError as exc:  # a bad reward config, an unreachable service, ...
        where = "reward.url" if spec.url is not None else "reward.config"
        raise cfg.error(where, str(exc)) from None
    if not spec.per_component:
        return [reward]
    functions = reward.per_component()
    if spec.weights is not None:
        names = [f.__name__ for f in functions]
        if set(spec.weights) != set(names):
            raise cfg.error(
                "reward.weights",
                f"must name each component exactly once: {names}, got {sorted(spec.weights)}",
            )
    return functions


def reward_weights(cfg: TrainConfig, functions: list[Any]) -> list[float] | None:
    """``GRPOConfig.reward_weights`` for ``functions``: the config's ``reward.weights``, or, in
    per-component mode without them, the reward config's own normalised weights.

    Why a default: TRL's default weights are all ones, so its total (and its logged ``reward``)
    would be the plain sum of the components, up to N, not the reward the config defines. A reward
    that is not a weighted sum (gate, min, formula) has no such weights: TRL's default stays, with
    a warning that its total is not the config's reward.
    """
    if cfg.reward.agent:
        return None  # one function; reward.weights are the calculator's, per source
    names = [f.__name__ for f in functions]
    if cfg.reward.weights is not None:
        return [cfg.reward.weights[n] for n in names]
    if not cfg.reward.per_component:
        return None
    try:
        return functions[0].reward_weights(names)
    except RMServiceError as exc:
        _log.warning(
            "per_component without reward.weights: TRL sums the components with weight 1 (%s)",
            exc,
        )
        return None


def grpo_args(
    cfg: TrainConfig,
    *,
    output_dir: Path,
    max_steps: int | None = None,
    reward_names: list[str] | None = None,
    weights: list[float] | None = None,
) -> GRPOConfig:
    """The ``GRPOConfig``: device defaults, then the config's ``grpo:`` overrides, then
    ``max_steps`` (the CLI's ``--max-steps``). ``weights`` (see :func:`reward_weights`) become
    ``reward_weights`` unless ``grpo:`` sets them.

    Raises:
        ConfigError: an unknown ``grpo`` key, or a value GRPOConfig rejects (e.g. a batch size
            that ``num_generations`` does not divide).
    """
    known = {f.name for f in dataclasses.fields(GRPOConfig)}
    unknown = sorted(set(cfg.grpo) - known)
    if unknown:
        raise cfg.error(f"grpo.{unknown[0]}", "not a GRPOConfig field (see trl's GRPOConfig)")
    gpu = torch.cuda.is_available()
    args: dict[str, Any] = {
        "use_cpu": not gpu,
        "bf16": gpu and torch.cuda.is_bf16_supported(),
        "fp16": False,
        _checkpointing_field(known): False,
        "per_device_train_batch_size": 8,
        "num_generations": 8,
        "beta": 0.0,  # no reference model: half the memory, and the recipe TRL defaults to
        # Epochs, if given alone, decide the length: HF's Trainer lets a positive max_steps win.
        "max_steps": -1 if "num_train_epochs" in cfg.grpo and "max_steps" not in cfg.grpo else 50,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        **(_TINY_DEFAULTS if cfg.model.tiny is not None else _REAL_DEFAULTS),
    }
    if "reward_weights" in cfg.grpo and (weights is not None or cfg.reward.weights is not None):
        raise cfg.error("grpo.reward_weights", "reward.weights sets them already: give one")
    if weights is not None:
        args["reward_weights"] = weights
    elif cfg.reward.weights is not None and reward_names is not None and not cfg.reward.agent:
        args["reward_weights"] = [cfg.reward.weights[n] for n in reward_names]
    env = cfg.environment
    if env is not None and env.max_turns is not None:
        args["max_tool_calling_iterations"] = env.max_turns - 1
    args.update(cfg.grpo)
    if max_steps is not None:
        args["max_steps"] = max_steps
    try:
        return GRPOConfig(output_dir=str(output_dir), seed=cfg.seed, **args)
    except (ValueError, TypeError) as exc:
        raise cfg.error("grpo", str(exc)) from None


def _checkpointing_field(known: set[str]) -> str:
    """transformers 5 renamed ``gradient_checkpointing`` (setting the old name warns)."""
    new = "activation_checkpointing"
    return new if new in known else "gradient_checkpointing"


def _probe_records(
    cfg: TrainConfig, row: dict[str, Any], function: Any
) -> dict[str, list[dict[str, Any]]]:
    """The records the reward ``function`` would build from ``row`` and an empty completion,
    per source: ``config`` (the TRL face's record, with ``completion_ids`` only where the
    function sends them) or ``step`` / ``rollout`` (the calculator's)."""
    prompt = row["prompt"]
    columns = {k: v for k, v in row.items() if k != "prompt"}
    conversational = isinstance(prompt, list)
    completion: Any = [{"role": "assistant", "content": ""}] if conversational else ""
    if not cfg.reward.agent:
        lists = {k: [v] for k, v in columns.items()}
        ids: list[list[int]] | None = (
            [[]] if getattr(function, "include_completion_ids", True) else None
        )
        return {"config": trl_records([prompt], [completion], ids, lists)}
    env = cfg.loaded_environment
    name = columns.get("environment") if env is not None and env.named else None
    tools = env.tool_schemas.get(name, []) if env is not None else []
    steps, rollout = RolloutRewardCalculator.records(
        rollout_of(prompt, completion, columns, tools=tools)
    )
    return {"step": steps, "rollout": [rollout]}


def check_reward_fields(cfg: TrainConfig, dataset: Any, functions: list[Any]) -> None:
    """Every field the graders need must be in the records the dataset's first row makes: a
    grader reading a column the dataset lacks would be unscored on every sample, and the run
    would train on nothing (every reward ``None``) to the end, reporting ``n/a``. A field that
    is there but null in that row is the row's data, not a config error. A service's graders
    are checked from its ``GET /graders`` description (:func:`_check_service_fields`).

    Raises:
        ConfigError: naming the config's reward field, the dataset and the grader.
    """
    records = _probe_records(cfg, dict(dataset[0]), functions[0])
    if cfg.reward.agent:
        calculator = functions[0].calculator
        runners = {"step": calculator.step_runner, "rollout": calculator.rollout_runner}
    elif cfg.reward.config is not None:
        runners = {"config": functions[0].runner}
    else:
        _check_service_fields(cfg, dataset, functions[0], records["config"][0])
        return
    for source, runner in runners.items():
        if not isinstance(runner, GradingRunner):
            continue
        for record in records[source]:
            try:
                runner.check(record, 0, nulls_ok=True)
            except MappingError as exc:
                raise cfg.error(
                    f"reward.{source}",
                    f"{exc.detail}; the dataset ({cfg.dataset.path}, columns "
                    f"{dataset.column_names}) does not provide it, so every sample would be "
                    "unscored",
                ) from None


def _check_service_fields(
    cfg: TrainConfig, dataset: Any, function: Any, record: dict[str, Any]
) -> None:
    """:func:`check_reward_fields` for a reward on a service, from what its ``GET /graders``
    says each grader reads (its mapper, else its required fields): only the field a mapper path
    starts at is known here, so a path that goes deeper is checked by the service alone.

    Raises:
        ConfigError: naming ``reward.url``, the grader and the dataset's columns.
    """
    description = getattr(function.backend, "reward_description", None)
    if not isinstance(description, dict):
        return
    sent = set(record)
    for read in described_reads(description):
        if read.required and read.field not in sent:
            raise cfg.error(
                "reward.url",
                f"{read.describe()} on {cfg.reward.url}, which the records lack (they have "
                f"{sorted(sent)}); the dataset ({cfg.dataset.path}, columns "
                f"{dataset.column_names}) does not provide it, so every sample would be "
                "unscored",
            )


def _masked(
    env: LoadedEnvironment, functions: list[Any], args: GRPOConfig
) -> tuple[list[Any], GRPOConfig]:
    """A plain reward's functions in a run with an environment, each giving a rollout cut short
    ``None`` (:class:`~trainer._agent.CutMasked`), then the environment's ``get_reward()`` as
    TRL would add it, masked too (:class:`~trainer._agent.EnvRewardFunction`), with weight 1
    after any ``reward_weights`` already set (TRL appends the same)."""
    extra = env_reward_functions(env)
    if extra and args.reward_weights is not None:
        args.reward_weights = [*args.reward_weights, *[1.0] * len(extra)]
    return [CutMasked(f, env) for f in functions] + extra, args


def build_trainer(
    cfg: TrainConfig, *, output_dir: Path | None = None, max_steps: int | None = None
) -> GRPOTrainer:
    """A ``GRPOTrainer`` for the whole config (model loaded, dataset read, rewards connected).

    Raises:
        ConfigError: anything wrong with the config or the files it names.
    """
    functions = reward_functions(cfg)
    args = grpo_args(
        cfg,
        output_dir=Path(output_dir or cfg.output_dir),
        max_steps=max_steps,
        reward_names=[f.__name__ for f in functions],
        weights=reward_weights(cfg, functions),
    )
    dataset = load_prompts(cfg)
    if cfg.reward.agent:
        check_columns(dataset.column_names, f"{cfg.source}: dataset.path")
    else:
        check_dataset_columns(dataset.column_names, f"{cfg.source}: dataset.path")
    check_reward_fields(cfg, dataset, functions)
    model, tokenizer = load_model(cfg)
    env = cfg.loaded_environment
    agent: dict[str, Any] = {}
    if env is not None:
        agent["tools"] = env.trl_tools() or None
        agent["environment_factory"] = env.trl_factory()
        if not cfg.reward.agent:
            functions, args = _masked(env, functions, args)
    try:
        with warnings.catch_warnings():
            # TRL marks environment_factory experimental on every run; it is what we build on.
            warnings.filterwarnings("ignore", "You are using 'environment_factory'", UserWarning)
            return GRPOTrainer(
                model=model,
                processing_class=tokenizer,
                reward_funcs=functions,
                args=args,
                train_dataset=dataset,
                **agent,
            )
    except ValueError as exc:  # e.g. the generation batch is not divisible by num_generations
        raise cfg.error("grpo", str(exc)) from None
