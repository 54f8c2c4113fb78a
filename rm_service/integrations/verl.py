"""verl's custom reward function, over a reward config in this process or a running rm-service.

::

    python -m verl.trainer.main_ppo ... \\
        reward.custom_reward_function.path=pkg://rm_service.integrations.verl \\
        reward.custom_reward_function.name=compute_score \\
        +reward.custom_reward_function.reward_kwargs.config=/abs/reward.yaml \\
        reward.reward_manager.name=rate_limited +reward.max_concurrent=64
    # over HTTP instead: +reward.custom_reward_function.reward_kwargs.url=http://host:8000

That is verl >= 0.7.1 (checked on 0.7.1, 0.8.0, 0.9.0, 0.9.1); 0.7.0 has the same settings one
level up (``custom_reward_function.*``, ``reward_model.reward_manager``,
``+reward_model.max_concurrent``). ``max_concurrent`` is not in verl's config, hence the ``+``;
without it ``rate_limited`` grades one sample at a time. verl's contract and how it is met:

* **Called per sample** as ``compute_score(data_source=, solution_str=, ground_truth=,
  extra_info=, **reward_kwargs)`` by the reward loop's managers
  (``experimental/reward_loop/reward_manager/*.py``: naive, dapo, gdpo, rate_limited, remote);
  ``reward_kwargs`` from the config arrive in every call, so the reward is chosen there
  (``config``: a YAML path or mapping; ``url``: a service root, with ``api_key`` and
  ``reward``), else from ``$RM_SERVICE_URL`` or ``$RM_SERVICE_CONFIG``. Each choice is built
  once per process and cached (thread-safe): verl calls from thread pools and from a loop per
  worker. A service is described (``GET /graders``) when first used, so a wrong URL, key or
  reward name raises then rather than scoring every sample as a failure.
* **Answered before ``rate_limited`` gives up.** That manager waits ``reward.timeout`` (300 s
  unless set) per sample, then scores it 0.0 with keys of its own (``timeout``, ``acc``); verl
  builds its columns from the first sample's keys, so one such sample fails the step. Each call
  answers within ``deadline`` (:data:`DEFAULT_DEADLINE`, a reward kwarg; keep it below
  ``reward.timeout``) with what is done, the rest unscored. ``rate_limited`` also turns any
  exception into 0.0 (``error``, ``acc``), a first-use ``ConfigError`` included: check a
  reward before training with it (``rm-service check``, ``GET /graders``).
* **The same keys for every sample, none of them verl's.** verl copies every key of the
  returned dict into ``reward_extra_info``, reads the *first* sample's keys from all the others,
  and writes them next to its own columns: ``_validate`` adds ``reward`` and then appends each
  returned key, so a component named ``reward`` (the default aggregator name) doubled that
  column and failed its length check. Each sample returns ``score`` (the reward; verl requires
  it), ``rm/<name>`` and ``rm/<name>/unscored`` per grader and aggregator (:data:`KEY_PREFIX`),
  and ``rm_error``; grading failures (a judge down, the service unreachable mid-training)
  never raise.
* **Unscored is flagged, never only a number.** verl cannot skip a sample, and GDPO trains on
  the ``rm/<name>`` columns (DAPO's filter compares them), so each must be a number: an unscored
  reward or component is ``fallback_score`` there. ``rm/<name>/unscored`` is 1.0 for exactly
  those samples (else 0.0), and ``rm_error`` 1.0 where the reward itself is unscored. A grader
  that failed under a reward that still scored (``on_error: skip``) has ``rm_error = 0``: its
  flag is the only thing that tells its fallback from a real score of that value.
* **Records** are ``{"query": extra_info[question_key] or "", "response": solution_str,
  "ground_truth", "data_source", "extra_info", **other kwargs}``; the config's mappers pick grader
  fields from them (e.g. ``reference_response: ground_truth``). Values are made plain as JSON
  would carry them (numpy arrays, such as a parquet list of acceptable answers, become lists;
  numpy scalars numbers or strings), and what JSON cannot carry (verl's
  ``reward_model_tokenizer``) is dropped, so a record is the same in process and over HTTP.
* **Other callers**: :func:`compute_score_sync` for managers that do not await (the reward
  loop's ``remote`` manager, which rejects async functions; the legacy ``naive``/``dapo``),
  :func:`compute_score_batch` for the legacy ``batch`` manager (one grading pass, one HTTP
  request per ``batch_size`` chunk, for the whole batch), :func:`compute_score_float` for the
  legacy ``prime`` manager, which wants a number. The legacy managers
  (``workers/reward_manager``) are reachable up to verl 0.7.0 only, with
  ``reward_model.use_reward_loop=False``.

The backend cache, the sync bridge and the failure-proof grading pass live in
:mod:`rm_service.integrations._targets`, shared with :mod:`rm_service.integrations.openrlhf`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from rm_service._exceptions import ConfigError, InputError
from rm_service._openrlhf import fallback_columns, unscored_key
from rm_service._result import RecordResult
from rm_service.integrations._backend import LocalBackend, jsonable, logger
from rm_service.integrations._targets import (
    Config,
    Target,
    acached_target,
    fallback_reward,
    finite,
    grade_safely,
    reward_key,
    run_blocking,
)

__all__ = [
    "DEFAULT_DEADLINE",
    "KEY_PREFIX",
    "compute_score",
    "compute_score_batch",
    "compute_score_float",
    "compute_score_sync",
]

T = TypeVar("T")

KEY_PREFIX = "rm/"
"""Put before each component's name in the returned keys. verl writes columns of its own next to
them (``reward``, ``acc``, ``pred``, ``uid``, ``data_source``, ...; more in each release), so
bare component names could collide; none of verl's starts with this. A ``/`` is what verl's own
metric names are made of: ``val-aux/<data_source>/rm/correct/mean@4``, and
``val-aux/<data_source>/rm/correct/unscored/mean@4`` is that component's unscored rate."""

DEFAULT_DEADLINE = 240.0
"""Seconds one :func:`compute_score` call may grade before it answers with what is done (the
rest unscored). verl's ``rate_limited`` manager waits ``reward.timeout`` (default 300 s) per
sample and then scores it 0.0 with keys of its own, which breaks the one key set verl builds its
columns from; answering first keeps a slow sample unscored and masked. Keep it below
``reward.timeout``."""

DROPPED_KWARGS = frozenset({"reward_router_address", "reward_model_tokenizer"})
"""Keyword arguments verl adds for GenRM functions (its reward-model router and tokenizer);
never put in a record."""


def _record(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Any,
    question_key: str,
    extras: Mapping[str, Any],
) -> dict[str, Any]:
    info = extra_info if isinstance(extra_info, Mapping) else {}
    rec = {k: v for k, v in extras.items() if k not in DROPPED_KWARGS}
    rec.update(
        query=info.get(question_key) or "",
        response=solution_str,
        ground_truth=ground_truth,
        data_source=data_source,
        extra_info=extra_info,
    )
    return jsonable(rec)


def check_keys(names: Sequence[str]) -> None:
    """Refuse components whose returned keys would coincide: ``a`` and ``a/unscored`` both make
    ``rm/a/unscored``, and one of the two columns would silently overwrite the other.

    Raises:
        ConfigError: two components make the same key (the message names them).
    """
    keys = Counter(k for name in names for k in (name, unscored_key(name)))
    clash = sorted(k for k, n in keys.items() if n > 1)
    if clash:
        made = ", ".join(repr(KEY_PREFIX + k) for k in clash)
        raise ConfigError(f"component names {list(names)} make the key(s) {made} twice: rename one")


def verl_scores(
    results: Sequence[RecordResult], names: Sequence[str], fallback: float
) -> list[dict[str, float]]:
    """verl's per-sample dicts: ``score``, ``rm/<name>`` and ``rm/<name>/unscored`` for each of
    ``names``, ``rm_error``; the same keys for every sample, ``fallback`` where unscored and
    flagged (``fallback_columns``)."""
    columns = fallback_columns(results, names, fallback)
    errors = columns.pop("rm_error")
    return [
        {
            "score": fallback if r.reward is None else r.reward,
            **{KEY_PREFIX + name: column[i] for name, column in columns.items()},
            "rm_error": errors[i],
        }
        for i, r in enumerate(results)
    ]


async def _score(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Any] | None,
    *,
    config: Config | None,
    url: str | None,
    api_key: str | None,
    reward: str | None,
    fallback_score: float,
    question_key: str,
    deadline: float | None,
    extras: Mapping[str, Any],
) -> list[dict[str, float]]:
    n = len(solution_strs)
    lists = {"data_sources": data_sources, "ground_truths": ground_truths}
    if extra_infos is not None:
        lists["extra_infos"] = extra_infos
    for name, values in lists.items():
        if len(values) != n:
            raise InputError(f"{name!r} has {len(values)} values for {n} solution_strs")
    fallback = fallback_reward(fallback_score, "fallback_score")
    if deadline is not None:
        # the checked number, not the argument: a string "240" passed the check and then failed
        # every comparison, and every sample got the fallback
        deadline = finite(deadline, "deadline")
        if not deadline > 0:
            raise ConfigError(f"deadline must be > 0 seconds (or None), got {deadline!r}")
    target = await acached_target(reward_key(config, url, api_key, reward))
    check_keys(target.names)
    infos = extra_infos if extra_infos is not None else [None] * n
    records = [
        _record(data_sources[i], solution_strs[i], ground_truths[i], infos[i], question_key, extras)
        for i in range(n)
    ]
    return verl_scores(await _grade(target, records, deadline), target.names, fallback)


class _RunnerWithDeadline:
    """A local backend whose runner grades within ``deadline``: what finished is kept, the
    components still running come back unscored (kind ``timeout``), as on the service."""

    def __init__(self, backend: LocalBackend, deadline: float) -> None:
        self.backend = backend
        self.deadline = deadline

    async def agrade(self, records: Sequence[Mapping[str, Any]]) -> list[RecordResult]:
        return await self.backend.runner.agrade(records, deadline=self.deadline)

    def describe(self) -> tuple[str, list[str], list[str]]:
        return self.backend.describe()


async def _grade(
    target: Target, records: list[dict[str, Any]], deadline: float | None
) -> list[RecordResult]:
    """:func:`grade_safely`, answered within ``deadline`` seconds when one is set."""
    if deadline is None:
        return await grade_safely(target, records)
    if isinstance(target.backend, LocalBackend):
        local = Target(_RunnerWithDeadline(target.backend, deadline), target.reward, target.names)
        return await grade_safely(local, records)
    # A service: its client has its own timeouts and retries; this bounds them all.
    try:
        return await asyncio.wait_for(grade_safely(target, records), deadline)
    except TimeoutError:
        logger.warning("rm-service: %d records unscored: no answer in %gs", len(records), deadline)
        return [
            RecordResult(index=i, reward_name=target.reward, components={})
            for i in range(len(records))
        ]


async def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    config: Config | None = None,
    url: str | None = None,
    api_key: str | None = None,
    reward: str | None = None,
    fallback_score: float = 0.0,
    question_key: str = "question",
    deadline: float | None = DEFAULT_DEADLINE,
    **kwargs: Any,
) -> dict[str, float]:
    """One sample's ``{"score", "rm/<component>", "rm/<component>/unscored"..., "rm_error"}``
    for verl's reward loop.

    Args:
        data_source, solution_str, ground_truth, extra_info: what verl passes (the decoded
            response only, the parquet's ground truth and ``extra_info`` dict).
        config: a reward YAML path (absolute: verl's workers may run elsewhere) or a config
            mapping, graded in this process.
        url: a running rm-service's root instead, graded over ``POST /grade``.
        api_key: the service's key; default ``$RM_SERVICE_API_KEY``.
        reward: which of the service's rewards; default ``$RM_SERVICE_REWARD``, else its default.
        fallback_score: the number for an unscored reward or component (verl cannot skip);
            ``rm/<component>/unscored`` and ``rm_error`` flag it.
        question_key: the ``extra_info`` key holding the question (the record's ``query``).
        deadline: seconds to grade before answering with what is done, the rest unscored
            (:data:`DEFAULT_DEADLINE`; below ``rate_limited``'s ``reward.timeout``); ``None``:
            no limit.
        **kwargs: more record fields (verl's GenRM extras are dropped).

    Raises:
        ConfigError: no reward chosen, an invalid config, an unreachable service on first use,
            a non-finite ``fallback_score``, a ``deadline`` not above 0, two components that
            make one key (:func:`check_keys`). Grading failures never raise.
    """
    (out,) = await _score(
        [data_source],
        [solution_str],
        [ground_truth],
        [extra_info],
        config=config,
        url=url,
        api_key=api_key,
        reward=reward,
        fallback_score=fallback_score,
        question_key=question_key,
        deadline=deadline,
        extras=kwargs,
    )
    return out


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    *,
    config: Config | None = None,
    url: str | None = None,
    api_key: str | None = None,
    reward: str | None = None,
    fallback_score: float = 0.0,
    question_key: str = "question",
    deadline: float | None = None,
    **kwargs: Any,
) -> list[dict[str, float]]:
    """:func:`compute_score` for a whole batch in one grading pass, synchronously: verl's legacy
    ``batch`` manager (``reward_manager=batch``, ``custom_reward_function.name=
    compute_score_batch``). Returns one dict per sample, in order; the arguments are
    :func:`compute_score`'s, as lists; ``deadline`` is for the whole batch and off by default
    (no verl manager times a batch).

    Raises:
        InputError: the lists are not all as long as ``solution_strs`` (the message names one).
        ConfigError: as :func:`compute_score`.
    """
    return run_blocking(
        _score(
            data_sources,
            solution_strs,
            ground_truths,
            extra_infos,
            config=config,
            url=url,
            api_key=api_key,
            reward=reward,
            fallback_score=fallback_score,
            question_key=question_key,
            deadline=deadline,
            extras=kwargs,
        )
    )


def compute_score_sync(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    deadline: float | None = DEFAULT_DEADLINE,
    **kwargs: Any,
) -> dict[str, float]:
    """:func:`compute_score` for managers that call it without awaiting (the reward loop's
    ``remote`` Ray workers; the legacy ``naive``/``dapo``). Same arguments."""
    return compute_score_batch(
        [data_source], [solution_str], [ground_truth], [extra_info], deadline=deadline, **kwargs
    )[0]


def compute_score_float(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> float:
    """The reward alone (``score``: ``fallback_score`` when unscored), for verl's legacy
    ``prime`` manager (``workers/reward_manager/prime.py``, reachable up to verl 0.7.0).

    prime calls ``evaluation_func(data_source, solution_str, ground_truth, extra_info)``
    positionally in a process pool it starts for each batch, and reads ``float(result)`` for a
    number, ``float(result[0])`` otherwise: a dict fails there and verl sets the whole batch to
    0.0. It records no per-sample extras, so the components and ``rm_error`` are not logged.
    The pool pickles the function by name, so load it as ``pkg://rm_service.integrations.verl``:
    verl loads a file path as a module of its own that no worker can import. Each of prime's
    processes builds the reward anew (the cache is per process) on every batch; ``batch`` with
    :func:`compute_score_batch` grades the batch in one pass instead.
    """
    return compute_score_sync(data_source, solution_str, ground_truth, extra_info, **kwargs)[
        "score"
    ]
