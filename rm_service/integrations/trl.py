"""Reward functions for TRL's ``GRPOTrainer(reward_funcs=...)``, in-process or over HTTP.

::

    from rm_service.integrations.trl import RMServiceReward, RemoteReward

    reward = RMServiceReward("reward.yaml")                 # one function: the config's reward
    trainer = GRPOTrainer(..., reward_funcs=reward)
    trainer = GRPOTrainer(..., reward_funcs=reward.per_component())   # one per grader
    trainer = GRPOTrainer(..., reward_funcs=RemoteReward("http://127.0.0.1:8000"))

TRL's contract (trl 1.16, ``GRPOTrainer._calculate_rewards``) and how it is met:

* **Called as** ``f(prompts=, completions=, completion_ids=, **kwargs)``, once per generation
  batch. ``kwargs`` are the dataset's other columns (one list each, aligned with ``prompts``)
  plus TRL's extras ``trainer_state``, ``log_extra``, ``log_metric`` (and ``environments``),
  which are used here and never sent to a grader. Each record a grader sees is
  ``{"prompt", "query", "response", "completion", "completion_ids"?, "messages"?, **columns}``;
  the reward config's mappers pick grader fields from it (e.g. ``reference_response:
  solution``). ``query``/``response`` are plain text in both of TRL's formats: for
  conversational data, the last user message and the completion's last assistant message;
  ``messages`` is then the whole conversation. A dataset column named like one of these
  fields is an error (it would be shadowed: a gold ``response`` column graded as the
  completion). Sent to a service, records go through
  :func:`~rm_service.integrations._backend.jsonable` (NaN becomes null, values JSON cannot
  carry, such as images, are dropped).
* **Returns** ``list[float | None]`` of exactly the batch's length. ``None`` where the reward is
  unscored (judge down, unparseable verdict, bad record): TRL turns it into NaN and leaves that
  sample out of the function's mean and the weighted sum instead of training on a fake 0.
* **Async.** TRL runs async reward functions concurrently on its background event-loop thread;
  nothing here uses signals, and the runner's math pool and judge clients are safe off the main
  thread and across loops.
* **One grading pass per batch for many functions.** :meth:`RMServiceReward.per_component`
  returns one named function per component; they share a per-batch memo, so TRL's
  ``reward_weights`` / ``multi_objective_aggregation`` act on our components and each gets its
  own ``rewards/<name>/mean`` curve while every record is graded once.
* **The config decides which records train, in every mode.** TRL combines the functions with a
  weighted ``nansum``, so a record with one component ``None`` would still be trained on the
  others. Where the config's reward is unscored (``on_error: unscored``, the default), every
  component function therefore returns ``None`` too: TRL then masks the record (NaN reward,
  advantage 0, outside its group's baseline), exactly as the single function does. Where the
  config keeps the record scored (``on_error: skip`` or a substitute), the components pass
  through as they are, failed ones ``None``.
* **TRL's sum is the config's reward** when ``GRPOConfig.reward_weights`` is
  :meth:`RMServiceReward.reward_weights`: the config's ``weighted_sum`` weights normalised to
  sum 1, as the aggregator applies them (TRL does not normalise; its default of all ones sums
  the components). TRL's logged ``reward`` then equals ``rm_service/reward/mean``, except on
  records whose reward skipped or substituted a component: TRL neither renormalises nor
  substitutes (a warning says so, once).
* **Logged** with ``log_metric`` (averaged by TRL per logging step): ``rm_service/failure_rate``
  (share of unscored rewards), ``rm_service/latency_s`` (grading time per batch) and, per
  component, ``rm_service/<name>/failure_rate`` and ``rm_service/<name>/mean`` (the latter only
  for components that are not TRL functions themselves: TRL logs ``rewards/<name>/mean``).
  With a single function, each grader's scores also go to the completions table through
  ``log_extra``, as ``rm_service/<name>``; ``rm_service/errors`` holds each row's failures
  (a grader named ``errors`` is ``rm_service/errors/score`` there).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aggregators import WeightedSumAggregator
from rm_service._exceptions import ConfigError, InputError
from rm_service._result import GraderScore, RecordResult
from rm_service._runner import GradingRunner
from rm_service.integrations._backend import Backend, RemoteBackend, RewardSource, as_backend

__all__ = [
    "RECORD_FIELDS",
    "RMServiceReward",
    "RemoteReward",
    "check_dataset_columns",
    "trl_records",
]

logger = logging.getLogger("rm_service.integrations")

TRL_EXTRAS = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})
"""Keyword arguments TRL adds for the function itself; never forwarded to graders."""

RECORD_FIELDS = frozenset(
    {"prompt", "query", "response", "completion", "completion_ids", "messages"}
)
"""The record fields built from the batch itself; a dataset column may not reuse these names."""


def check_dataset_columns(columns: Iterable[str], where: str) -> None:
    """Refuse dataset columns named like the fields a reward record builds from the batch.

    TRL itself drops ``completion`` and ``completion_ids`` (and ``prompt``, which it reads)
    before calling a reward function, and this face sets ``query``, ``response`` and
    ``messages``; a gold answer kept under one of these names would be replaced by the
    generated text, and a completion compared with itself scores 1.0. Checked when a trainer is
    built, before any model loads.

    Raises:
        ConfigError: naming ``where`` and the columns.
    """
    clash = sorted((RECORD_FIELDS - {"prompt"}).intersection(columns))
    if clash:
        raise ConfigError(
            f"{where}: column(s) {clash} would be replaced by the generated completion's fields "
            f"before the reward sees them; rename them (e.g. to 'reference_{clash[0]}') and map "
            "the new name in the reward config"
        )


def _text(content: Any) -> str:
    """A message's ``content`` as text: a string, or the text parts of a multimodal list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # _text again: a part's null text is no text, where str() made it the word "None"
        return "".join(_text(p["text"]) for p in content if isinstance(p, Mapping) and "text" in p)
    return str(content)


_ERRORS_COLUMN = "rm_service/errors"


def _table_columns(graders: Sequence[str]) -> dict[str, str]:
    """Each grader's completions-table column, ``rm_service/<name>``. A grader named ``errors``
    would share :data:`_ERRORS_COLUMN`: TRL extends a column with every list logged under its
    name, so it held twice as many values as rows (TRL's table then fails to build, or, once its
    deques are full, shows scores beside the wrong rows). That grader's column is
    ``rm_service/errors/score`` instead (more ``/score`` while another grader holds that)."""
    taken = {f"rm_service/{g}" for g in graders} | {_ERRORS_COLUMN}
    out = {}
    for g in graders:
        column = f"rm_service/{g}"
        if column == _ERRORS_COLUMN:
            while column in taken:
                column += "/score"
            taken.add(column)
        out[g] = column
    return out


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(m, Mapping) for m in value)


def _query_of(prompt: Any) -> str:
    if _is_conversation(prompt):
        users = [m for m in prompt if m.get("role") == "user"]
        return _text((users or prompt)[-1].get("content")) if prompt else ""
    return _text(prompt)


def _response_of(completion: Any) -> str:
    if _is_conversation(completion):
        # The model's last word: a completion cut off after a tool result ends with that result.
        said = [m for m in completion if m.get("role") == "assistant"]
        return _text((said or completion)[-1].get("content")) if completion else ""
    return _text(completion)


def trl_records(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    completion_ids: Sequence[Sequence[int]] | None = None,
    columns: Mapping[str, Sequence[Any]] | None = None,
) -> list[dict[str, Any]]:
    """The grader records of one TRL batch (see the module docstring for their fields).

    Raises:
        InputError: ``prompts``, ``completions``, ``completion_ids`` or a column is not as long
            as the batch; the message names it.
    """
    n = len(completions)
    lists: dict[str, Sequence[Any]] = {"prompts": prompts, **(columns or {})}
    if completion_ids is not None:
        lists["completion_ids"] = completion_ids
    for key, values in lists.items():
        if len(values) != n:
            raise InputError(f"{key!r} has {len(values)} values for {n} completions")
    clash = sorted(RECORD_FIELDS.intersection(columns or {}))
    if clash:
        # Silently shadowing a gold ``response`` column with the completion would grade each
        # completion against itself.
        raise InputError(
            f"dataset column(s) {clash} would be overwritten by the fields this reward sets "
            f"({sorted(RECORD_FIELDS)}); rename them, e.g. dataset.rename_column("
            f"{clash[0]!r}, 'reference_{clash[0]}'), and map the new name in the reward config"
        )
    records = []
    for i, completion in enumerate(completions):
        rec = {key: values[i] for key, values in (columns or {}).items()}
        prompt = prompts[i]
        rec.update(
            prompt=prompt,
            query=_query_of(prompt),
            response=_response_of(completion),
            completion=completion,
        )
        if completion_ids is not None:
            rec["completion_ids"] = list(completion_ids[i])
        if _is_conversation(prompt) and _is_conversation(completion):
            rec["messages"] = [*prompt, *completion]
        records.append(rec)
    return records


@dataclass
class _Batch:
    prompts: Sequence[Any]
    completions: Sequence[Any]
    loop: asyncio.AbstractEventLoop
    task: asyncio.Task[tuple[list[RecordResult], float]]
    readers: set[str] = field(default_factory=set)

    def same(self, prompts: Sequence[Any], completions: Sequence[Any]) -> bool:
        return (self.prompts is prompts or self.prompts == prompts) and (
            self.completions is completions or self.completions == completions
        )


class _Shared:
    """What an :class:`RMServiceReward` and its per-component siblings share: the backend and
    the memo of the current batch (graded once, read once by each sibling)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.lock = threading.Lock()
        self.batch: _Batch | None = None
        # Components handed to TRL as functions: per_component()'s, and any function once called
        # (a parent whose per_component() siblings are what TRL gets is never called).
        self.functions: set[str] = set()
        self.warned_adjusted = False

    async def grade(
        self, reader: str, prompts: Sequence[Any], completions: Sequence[Any], records: Callable
    ) -> tuple[list[RecordResult], float, bool]:
        """``(results, seconds, fresh)``; ``fresh`` when this call graded (others reuse it)."""
        loop = asyncio.get_running_loop()
        with self.lock:
            batch = self.batch
            fresh = not (
                batch is not None
                and batch.loop is loop
                and reader not in batch.readers
                and batch.same(prompts, completions)
            )
            if fresh:
                task = loop.create_task(self._timed(records()))
                batch = self.batch = _Batch(prompts, completions, loop, task)
            assert batch is not None
            batch.readers.add(reader)
        # shield: one reader being cancelled must not cancel the grading its siblings await.
        results, seconds = await asyncio.shield(batch.task)
        return results, seconds, fresh

    async def _timed(self, records: list[dict[str, Any]]) -> tuple[list[RecordResult], float]:
        start = time.perf_counter()
        results = await self.backend.agrade(records)
        return results, time.perf_counter() - start


class RMServiceReward:
    """A TRL reward function over a grading runner (or any :class:`Backend`).

    Args:
        source: a :class:`~rm_service.GradingRunner`, a :class:`~rm_service.RewardConfig`, a
            reward YAML path or a config dict.
        component: which result to return; default the config's reward.
        name: the name TRL logs it under (``rewards/<name>/mean``); default the component.
        include_completion_ids: put TRL's ``completion_ids`` in each record (for token-length
            graders).

    Raises:
        ConfigError: an invalid config, or ``component`` is not one of its results.
    """

    def __init__(
        self,
        source: RewardSource | Backend,
        *,
        component: str | None = None,
        name: str | None = None,
        include_completion_ids: bool = True,
    ) -> None:
        self._shared = _Shared(as_backend(source))
        reward_name, self._graders, self._names = self._shared.backend.describe()
        self._reward = reward_name
        self.include_completion_ids = include_completion_ids
        self._bind(component or reward_name, name)

    def _bind(self, component: str, name: str | None) -> None:
        if component not in self._names:
            raise ConfigError(f"component {component!r} is not one of {self._names}")
        self.component = component
        self.__name__ = name or component

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__name__!r}, backend={self._shared.backend!r})"

    @property
    def components(self) -> list[str]:
        """Every grader and aggregator name of the reward, in config order."""
        return list(self._names)

    @property
    def backend(self) -> Backend:
        """What grades: a runner in this process, or a service (its ``reward_description``)."""
        return self._shared.backend

    @property
    def runner(self) -> GradingRunner | None:
        """The runner that grades in this process, or ``None`` for a reward on a service."""
        runner = getattr(self._shared.backend, "runner", None)
        return runner if isinstance(runner, GradingRunner) else None

    def per_component(self, components: Sequence[str] | None = None) -> list[RMServiceReward]:
        """One function per component (default: every grader), sharing one grading pass per
        batch with each other and with this function. Pass them all to ``reward_funcs``;
        ``GRPOConfig.reward_weights`` then weighs them in this order: use
        :meth:`reward_weights` for TRL's sum to be the config's reward.

        Each returns ``None`` for a record the config's reward leaves unscored, even where its
        own component scored: TRL's ``nansum`` would otherwise train that record on the
        components that did. The config's ``on_error`` (``skip`` or a substitute) is how to
        keep such records scored, and then their components pass through.
        """
        out = []
        for comp in components if components is not None else self._graders:
            sibling = copy.copy(self)
            sibling._bind(comp, None)
            self._shared.functions.add(comp)
            out.append(sibling)
        return out

    def reward_weights(self, components: Sequence[str] | None = None) -> list[float]:
        """``GRPOConfig.reward_weights`` for ``per_component(components)``, in the same order:
        the config's ``weighted_sum`` weights normalised to sum 1, as the aggregator applies
        them. TRL's weighted sum of the functions is then the config's reward for every record
        whose reward skipped or substituted nothing, and TRL's logged ``reward`` equals
        ``rm_service/reward/mean``. (TRL uses the weights as given: raw weights such as
        ``{correct: 3, format: 1}``, or its default of ones, scale or reshape the sum.) This
        holds for TRL's default ``multi_objective_aggregation="sum_then_normalize"``; under
        ``normalize_then_sum`` TRL sums per-component z-scores, which no weights make equal.

        Raises:
            ConfigError: the reward is not a weighted sum (a gate, min, formula: no weights
                reproduce it; choose them yourself), a component it weighs is not among
                ``components``, or a name is not a component.
        """
        names = list(components) if components is not None else list(self._graders)
        unknown = [n for n in names if n not in self._names]
        if unknown:
            raise ConfigError(f"component(s) {unknown} are not among {self._names}")
        weights = _reward_weights(self._shared.backend)
        missing = [c for c in weights if c not in names]
        if missing:
            raise ConfigError(
                f"the reward {self._reward!r} weighs {missing} too; without a function for "
                f"them TRL's weighted sum cannot equal it (components: {names})"
            )
        return [weights.get(n, 0.0) for n in names]

    async def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        self._shared.functions.add(self.component)
        columns = {k: v for k, v in kwargs.items() if k not in TRL_EXTRAS}
        ids = completion_ids if self.include_completion_ids else None
        results, seconds, fresh = await self._shared.grade(
            self.component,
            prompts,
            completions,
            lambda: trl_records(prompts, completions, ids, columns),
        )
        if fresh:
            self._log(results, seconds, kwargs.get("log_metric"), kwargs.get("log_extra"))
        if self.component == self._reward:
            return [_score(r, self.component) for r in results]
        # A record the config's reward leaves unscored trains on nothing (see per_component).
        return [
            _score(r, self.component) if _score(r, self._reward) is not None else None
            for r in results
        ]

    def _log(
        self,
        results: list[RecordResult],
        seconds: float,
        log_metric: Callable[[str, float], None] | None,
        log_extra: Callable[[str, list[Any]], None] | None,
    ) -> None:
        if not results:
            return
        n = len(results)
        reward_name = self._reward
        if reward_name not in self._shared.functions and not self._shared.warned_adjusted:
            self._warn_adjusted(results)
        if log_metric is not None:
            log_metric("rm_service/failure_rate", sum(r.reward is None for r in results) / n)
            log_metric("rm_service/latency_s", seconds)
            for comp in self._names:
                scores = [_score(r, comp) for r in results]
                got = [s for s in scores if s is not None]
                if got and comp not in self._shared.functions:  # TRL logs rewards/<fn>/mean
                    log_metric(f"rm_service/{comp}/mean", math.fsum(got) / len(got))
                log_metric(f"rm_service/{comp}/failure_rate", 1 - len(got) / n)
        if log_extra is not None:
            if self._shared.functions == {reward_name}:  # one function: show its parts
                for comp, column in _table_columns(self._graders).items():
                    # Prefixed: TRL's table puts these after its own columns and its reward
                    # functions' ("prompt", "step", another function named like a grader),
                    # so a bare name replaced that column, and "advantage" replaced this one.
                    log_extra(column, [_score(r, comp) for r in results])
            log_extra(
                _ERRORS_COLUMN,
                [
                    "; ".join(f"{k}: {e.kind}: {e.error}" for k, e in r.errors.items())
                    for r in results
                ],
            )

    def _warn_adjusted(self, results: list[RecordResult]) -> None:
        """Say once when TRL's sum of components cannot be the config's reward for some
        records: the reward skipped (renormalised) or substituted an unscored component."""
        adjusted = 0
        for r in results:
            comp = r.components.get(self._reward)
            meta = comp.metadata if isinstance(comp, GraderScore) else {}
            adjusted += bool(meta.get("skipped") or meta.get("substituted"))
        if adjusted:
            self._shared.warned_adjusted = True
            logger.warning(
                "rm-service: the reward %r skipped or substituted unscored components (on_error) "
                "for %d of %d records; TRL's weighted sum of the per-component functions leaves "
                "those components out without renormalising or substituting, so it trains these "
                "records on a different number than the config's reward (TRL's `reward` differs "
                "from rm_service/%s/mean). Pass the single function to train on the config's "
                "reward exactly.",
                self._reward,
                adjusted,
                len(results),
                self._reward,
            )


def _reward_weights(backend: Backend) -> dict[str, float]:
    """The reward's weights normalised to sum 1, per component (zero weights left out); a
    reward that is a grader weighs itself 1.

    Raises:
        ConfigError: the reward is not a weighted sum, or the service does not publish its
            weights.
    """
    reward, graders, _ = backend.describe()
    if reward in graders:
        return {reward: 1.0}
    runner = getattr(backend, "runner", None)
    if isinstance(runner, GradingRunner):
        agg = next(a for a in runner.aggregators if a.name == reward)
        weights = agg.weights if isinstance(agg, WeightedSumAggregator) else None
    else:  # a service: its GET /graders entry for the reward (RemoteBackend keeps it)
        described = getattr(backend, "reward_description", None) or {}
        entries = [a for a in described.get("aggregators", []) if a.get("name") == reward]
        entry = entries[0] if entries else None
        weights = None
        if entry is not None and entry.get("type") == "weighted_sum":
            # The config's raw weights (none: equal), normalised by the aggregator itself.
            raw = entry.get("weights") or dict.fromkeys(entry.get("components") or [], 1.0)
            weights = WeightedSumAggregator(reward, raw).weights if raw else None
    if weights is None:
        raise ConfigError(
            f"the reward {reward!r} is not a weighted_sum of components (or its weights are "
            "not known here), so no GRPOConfig.reward_weights make TRL's weighted sum equal "
            "it: pass the single function, or choose the weights yourself"
        )
    return weights


def _score(result: RecordResult, component: str) -> float | None:
    comp = result.components.get(component)
    return comp.score if isinstance(comp, GraderScore) else None


class RemoteReward(RMServiceReward):
    """:class:`RMServiceReward` over ``POST /grade`` of a running ``rm-service serve``.

    Same contract; a batch is split into ``batch_size`` chunks sent concurrently, each retried
    ``retries`` times with jittered backoff (429 honours ``Retry-After``). A chunk that still
    fails comes back as ``None`` for each of its samples, logged at WARNING, never as zeros.
    The service is asked once, here, for the reward's components (``GET /graders``), so a wrong
    URL, key or reward name fails at construction rather than mid-training.

    Args:
        url: the service root, e.g. ``http://127.0.0.1:8000``.
        api_key: the service's key; default ``$RM_SERVICE_API_KEY``.
        reward: which configured reward; default the service's default.
        batch_size: records per request.
        timeout: seconds per request (the service gets a slightly shorter grading deadline).
        retries: retries per chunk after the first attempt.
        component, name: as for :class:`RMServiceReward`.
        include_completion_ids: send ``completion_ids`` too (off by default: they can be most
            of the request body, and rule and judge graders read text).

    Raises:
        ConfigError: the service cannot be reached, rejects the key, or has no such reward.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        reward: str | None = None,
        batch_size: int = 256,
        timeout: float = 60.0,
        retries: int = 3,
        component: str | None = None,
        name: str | None = None,
        include_completion_ids: bool = False,
    ) -> None:
        backend = RemoteBackend(
            url,
            api_key=api_key if api_key is not None else os.environ.get("RM_SERVICE_API_KEY"),
            reward=reward,
            batch_size=batch_size,
            timeout=timeout,
            retries=retries,
        )
        super().__init__(
            backend, component=component, name=name, include_completion_ids=include_completion_ids
        )
