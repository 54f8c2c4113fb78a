"""OpenRLHF's ``reward_func``, for ``--reward.remote_url /path/to/this/file.py``.

::

    export RM_SERVICE_CONFIG=/abs/reward.yaml          # or RM_SERVICE_URL=http://host:8000
    RM=$(python -c 'import rm_service.integrations.openrlhf as m; print(m.__file__)')
    python -m openrlhf.cli.train_ppo_ray ... --data.label_key answer --reward.remote_url $RM

OpenRLHF loads the file with ``importlib`` (``spec_from_file_location``), so this module uses
absolute imports only. From 0.9.1 (``utils/agent.py``) it calls ``reward_func(queries, prompts,
labels)`` through ``asyncio.to_thread``, one sample per call; 0.8.3 to 0.9.0
(``utils/remote_rm_utils.py``) hand it to ``ray.remote`` and call it per
``micro_rollout_batch_size`` chunk, so it must pickle by value (:func:`reward_func` does; 0.8.2
and older want a bare tensor back, not this dict). Nothing but those lists reaches it, so its
settings are environment variables:

* ``RM_SERVICE_CONFIG``: a reward YAML graded in this process; or ``RM_SERVICE_URL``: a running
  rm-service (with ``RM_SERVICE_API_KEY``, and ``RM_SERVICE_REWARD`` to pick one of its rewards).
  The URL wins when both are set. The choice is built once per process and cached.
* ``RM_SERVICE_LABEL_FIELD`` (default ``label``): the record field each label goes to; map it
  in the config (``mapper: {reference_response: label}``). Unset (or ``label``) while no grader
  reads ``label`` and exactly one gold answer is read from another field (``ground_truth`` in
  ``examples/reward.yaml``), the labels go there. With an in-process config, a grader that
  requires a field no sample will carry is a ``ConfigError`` on first use, naming the fix.
* ``RM_SERVICE_STRIP_PATTERNS`` (default: the end/pad tokens of ChatML, Llama 2/3, Phi): regexes,
  separated by whitespace, removed from queries and prompts; set it empty to strip nothing.
* ``RM_SERVICE_UNSCORED_FALLBACK`` (default ``0.0``): the reward of an unscored sample
  (OpenRLHF needs numbers); such a sample also gets ``extra_logs.rm_error = 1``.

The protocol is ``POST /get_reward``'s, from the same helpers: the response is what follows the
prompt in the query (found with whitespace next to special tokens ignored, truncated prompts
included; else a guess flagged ``extra_logs.prompt_not_found = 1`` and logged), ``scores`` are
the rewards clipped to [0, 1] (dynamic filtering), and every value is a float32 tensor when
torch is importable (OpenRLHF's own examples return tensors), else a list. Grading failures
never raise; they come back as the fallback with ``rm_error = 1``, and are logged (a WARNING
with counts, at most one a minute). In ``extra_logs`` an unscored component is NaN, with
``<component>/unscored = 1``, never a number: OpenRLHF averages every sample's value, so any
stand-in would drag its logged mean (see ``rm_service._openrlhf``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from rm_service._exceptions import ConfigError, InputError
from rm_service._openrlhf import (
    DEFAULT_LABEL_FIELD,
    ChatTokenStripper,
    PromptLog,
    UnscoredLog,
    check_labels,
    described_reads,
    log_key_problem,
    openrlhf_records,
    openrlhf_response,
)
from rm_service._query_split import strip_patterns_setting
from rm_service.integrations._backend import LocalBackend
from rm_service.integrations._targets import (
    Target,
    cached_target,
    fallback_reward,
    grade_safely,
    reward_key,
    run_blocking,
)

__all__ = ["reward_func"]

_unscored = UnscoredLog("reward_func")
_prompts = PromptLog("reward_func")


@lru_cache(maxsize=8)
def _stripper(patterns: str | None) -> ChatTokenStripper:
    try:
        return ChatTokenStripper(strip_patterns_setting(patterns))
    except Exception as exc:  # re.error, with the offending pattern
        raise ConfigError(f"RM_SERVICE_STRIP_PATTERNS: invalid regex: {exc}") from None


@lru_cache(maxsize=16)
def _label_field(target: Target, asked: str) -> str:
    """The field ``target``'s labels go to, checked once per target and setting (a failure is
    not cached: each call raises until the setting is fixed). For a service, from what its
    ``GET /graders`` says the reward's graders read: labels sent to a field nothing read left
    every sample unscored, and OpenRLHF trained on the fallback."""
    backend = target.backend
    if isinstance(backend, LocalBackend):
        source: Any = backend.runner
    else:
        description = getattr(backend, "reward_description", None)
        if not isinstance(description, Mapping):
            return asked
        source = described_reads(description)
    fields = check_labels(
        {target.reward: source},
        asked,
        face="reward_func",
        setting="RM_SERVICE_LABEL_FIELD={}",
        strict=True,
    )
    return fields[target.reward]


def _tensors(out: dict[str, Any]) -> dict[str, Any]:
    """``out`` with every list a float32 tensor, when torch can be imported (never at module
    import: ``import rm_service`` stays torch-free)."""
    try:
        import torch
    except ImportError:
        return out

    def tensor(values: list[float]) -> Any:
        return torch.tensor(values, dtype=torch.float32)

    return {
        "rewards": tensor(out["rewards"]),
        "scores": tensor(out["scores"]),
        "extra_logs": {k: tensor(v) for k, v in out["extra_logs"].items()},
    }


def reward_func(
    queries: Sequence[str],
    prompts: Sequence[str] | None = None,
    labels: Sequence[Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """``{"rewards", "scores", "extra_logs": {<component>..., "prompt_not_found",
    "rm_error"}}``, each as long as ``queries``. ``kwargs`` are accepted for forward
    compatibility and ignored.

    Raises:
        InputError: ``prompts`` or ``labels`` not as long as ``queries`` (the message names it).
        ConfigError: no reward configured, an invalid config or environment variable, a
            service that cannot be reached on first use, or two components that make one
            ``extra_logs`` key (``a`` and ``a/unscored``; one named ``prompt_not_found``).
    """
    # OpenRLHF 0.7-0.9.0 hand this function to Ray (``ray.remote(reward_module.reward_func)``),
    # which pickles it by value: the file is loaded as a module named "reward_func" that no
    # worker can import, and by value this module's caches and locks cannot be pickled. So the
    # work is done by the importable copy of this module, named here and imported at call time.
    from rm_service.integrations.openrlhf import _reward_func

    return _reward_func(queries, prompts, labels)


def _reward_func(
    queries: Sequence[str], prompts: Sequence[str] | None, labels: Sequence[Any] | None
) -> dict[str, Any]:
    """:func:`reward_func`'s work, in the importable module (see there)."""
    fallback = fallback_reward(
        os.environ.get("RM_SERVICE_UNSCORED_FALLBACK") or 0.0, "RM_SERVICE_UNSCORED_FALLBACK"
    )
    stripper = _stripper(os.environ.get("RM_SERVICE_STRIP_PATTERNS"))
    target = cached_target(reward_key(None, None, None, None))
    clash = log_key_problem(target.reward, target.names)
    if clash is not None:  # a service's reward too: its components are known only here
        raise ConfigError(f"reward_func, {clash}")
    label_field = _label_field(
        target, os.environ.get("RM_SERVICE_LABEL_FIELD") or DEFAULT_LABEL_FIELD
    )
    try:
        batch = openrlhf_records(
            list(queries),
            list(prompts) if prompts is not None else None,
            list(labels) if labels is not None else None,
            stripper=stripper,
            label_field=label_field,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    _prompts.observe(batch.splits)
    results = run_blocking(grade_safely(target, batch.records))
    _unscored.observe(results, target.reward)
    out = openrlhf_response(results, target.names, batch.splits, fallback=fallback, legacy=False)
    return _tensors(out)
