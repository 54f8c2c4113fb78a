"""Reward configs: YAML validated by pydantic, built into a :class:`GradingRunner`.

A config names graders by registry name (or ``"module:attr"``), says how to map record fields,
and lists aggregators::

    judge:                          # optional: the backend of every LLM judge (see models)
      backend: openai
      model: gpt-4o-mini
    graders:
      correct:
        type: math
        mapper: {reference_response: ground_truth}
      format:
        type: format
        mode: think_answer          # any other key is a parameter of the grader
      harmless:
        type: harmfulness           # an LLM judge: gets the shared judge backend
    aggregators:
      - type: weighted_sum
        name: reward
        weights: {correct: 0.8, format: 0.2}
        on_error: skip
    max_concurrency: 64

Every error names the file and the field (``reward.yaml: graders.correct.type: ...``), and is
raised at load time, before any record is read.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aggregators import get_aggregator
from graders import get_grader
from graders._base import takes_judge
from rm_service._exceptions import ConfigError, RMServiceError
from rm_service._mapper import GraderConfig
from rm_service._runner import DEFAULT_MAX_CONCURRENCY, MAX_CONCURRENCY, GradingRunner
from rm_service.models._cache import JudgeCache
from rm_service.models._factory import JudgeSpec, judge_factory
from rm_service.models._redis import (
    DEFAULT_RETRY_AFTER,
    DEFAULT_TIMEOUT,
    MAX_TTL,
    RedisStore,
    check_redis_url,
)

M = TypeVar("M", bound=BaseModel)

__all__ = [
    "AggregatorSpec",
    "CacheSpec",
    "GraderSpec",
    "RewardConfig",
    "build_runner",
    "load_config",
    "load_runner",
    "validate_yaml",
]


class GraderSpec(BaseModel):
    """One grader: ``type`` plus its parameters; ``mapper`` and ``call_timeout`` are ours."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1)
    mapper: dict[str, str] | None = None
    call_timeout: float | None = Field(default=None, gt=0)
    judge: JudgeSpec | None = None

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class CacheSpec(BaseModel):
    """The judge cache: in memory, plus a SQLite file when ``path`` is set, or a Redis shared by
    every replica when ``redis`` is.

    ``path`` and ``redis`` are alternatives, not tiers: Redis is already shared and outlives a
    process, and a second persistent tier would need rules for which one is the truth when they
    disagree (one failed a write the other took) for no gain a user asked for. ``ttl`` and the
    ``redis_*`` settings apply to Redis only, so they are refused without it rather than ignored.
    """

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    redis: str | None = Field(
        default=None, description="redis://, rediss:// or unix:// URL of a shared cache"
    )
    ttl: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TTL,
        description="seconds a Redis entry lives (unset: for ever)",
    )
    max_entries: int = Field(default=100_000, ge=1)
    redis_timeout: float = Field(
        default=DEFAULT_TIMEOUT, gt=0, le=30, description="seconds to connect and per operation"
    )
    redis_retry_after: float = Field(
        default=DEFAULT_RETRY_AFTER,
        gt=0,
        description="seconds Redis is skipped after a failure before it is tried again",
    )

    @field_validator("redis")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url is not None:
            try:
                check_redis_url(url, "redis")
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("redis: ")) from None
        return url

    @model_validator(mode="after")
    def _one_tier(self) -> CacheSpec:
        if self.path is not None and self.redis is not None:
            raise ValueError("set path (a SQLite file) or redis (a shared cache), not both")
        if self.redis is None:
            for name in ("ttl", "redis_timeout", "redis_retry_after"):
                if name in self.model_fields_set:
                    raise ValueError(f"{name} applies to a redis cache only: set redis too")
        return self

    def build(self) -> JudgeCache:
        """The cache this block describes."""
        if self.redis is not None:
            store = RedisStore(
                self.redis,
                ttl=self.ttl,
                timeout=self.redis_timeout,
                retry_after=self.redis_retry_after,
            )
            return JudgeCache(max_entries=self.max_entries, store=store)
        return JudgeCache(max_entries=self.max_entries, path=self.path)


class AggregatorSpec(BaseModel):
    """One aggregator: ``type`` (``weighted_sum``, ``min``, ``gate``, ``formula``, ...), a
    ``name`` for its result, and its parameters (``weights``, ``on_error``, ...)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1)
    name: str = Field(default="reward", min_length=1)

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RewardConfig(BaseModel):
    """A whole reward: graders, aggregators, and how to run them."""

    model_config = ConfigDict(extra="forbid")

    # A key, like an aggregator's name, is a result's name: an empty one made a nameless
    # column that no formula or weight can read.
    graders: dict[Annotated[str, Field(min_length=1)], GraderSpec] = Field(min_length=1)
    aggregators: list[AggregatorSpec] = Field(default_factory=list)
    judge: JudgeSpec | None = None
    cache: CacheSpec | None = None
    reward: str | None = None
    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY, ge=1, le=MAX_CONCURRENCY)
    call_timeout: float | None = Field(default=None, gt=0)
    id_field: str = "id"


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load``, refusing a mapping that repeats a key: YAML itself lets the last one
    win, so ``weights: {a: 0.9, b: 0.1, a: 0.0}`` or a second ``aggregators:`` block changed the
    reward without a word, and ``check`` called it ok.

    A merge key (``<<: *defaults``) is no repeated key: it is left to the base loader, which
    merges the anchored mapping under the keys written beside it, as YAML means."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base loader reports an unhashable key itself
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"the key {key!r} appears twice (first on line {seen[key].line + 1}); "
                    "YAML would keep only the last",
                    mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """YAML as :func:`yaml.safe_load` reads it, but a repeated key is an error."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no Python objects


def validate_yaml(source: str | Path | dict[str, Any], model: type[M]) -> tuple[M, str]:
    """Read a YAML file (or take an already-parsed dict) and validate it as ``model``; returns
    the model and the label errors use (the path, or ``<config>``).

    Raises:
        ConfigError: unreadable file, bad YAML, or a field that fails validation; the message
            names the file and the field's dotted location.
    """
    label = str(source) if not isinstance(source, dict) else "<config>"
    if isinstance(source, dict):
        data: Any = source
    else:
        try:
            data = load_yaml(Path(source).read_text())
        except OSError as exc:
            raise ConfigError(f"{label}: cannot read: {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{label}: invalid YAML: {exc}") from exc
        except ValueError as exc:  # an integer of more digits than Python converts by default
            raise ConfigError(f"{label}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{label}: expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data), label
    except ValidationError as exc:
        lines = [
            f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in exc.errors()
        ]
        raise ConfigError(f"{label}: " + "; ".join(lines)) from None


_BUILT: dict[int, tuple[weakref.ref[RewardConfig], dict[str, Any], GradingRunner]] = {}
"""The runner :func:`load_config` built to validate a config, with the config as it was then,
until :func:`build_runner` takes it: building it again would construct every grader twice (judge
clients, embedders, caches). The snapshot is how a config edited in between (``cfg.reward = ...``)
is told apart: that one gets a runner of its own, not the one built before the edit."""


def load_config(source: str | Path | dict[str, Any]) -> RewardConfig:
    """Read and validate a reward config from a YAML file (or an already-parsed dict), and build
    its runner so a bad grader parameter fails here, not at the first record. The first
    :func:`build_runner` call on the returned config hands that runner over instead of building
    another.

    Raises:
        ConfigError: as :func:`validate_yaml`, or a grader/aggregator that cannot be built.
    """
    cfg, label = validate_yaml(source, RewardConfig)
    runner = _build_labelled(cfg, label)
    key = id(cfg)
    _BUILT[key] = (weakref.ref(cfg, lambda _: _BUILT.pop(key, None)), cfg.model_dump(), runner)
    return cfg


def load_runner(source: str | Path | dict[str, Any], **overrides: Any) -> GradingRunner:
    """Read, validate and build a config's runner in one step, building it once (``overrides``
    go to :class:`GradingRunner`): for a face that needs the runner and not the config.

    Raises:
        ConfigError: as :func:`load_config`.
    """
    cfg, label = validate_yaml(source, RewardConfig)
    return _build_labelled(cfg, label, **overrides)


def _build_labelled(cfg: RewardConfig, label: str, **overrides: Any) -> GradingRunner:
    try:
        return _build(cfg, **overrides)
    except RMServiceError as exc:
        raise ConfigError(f"{label}: {exc}") from None


def build_runner(cfg: RewardConfig, **overrides: Any) -> GradingRunner:
    """The runner a config describes. ``overrides`` go to :class:`GradingRunner`.

    Without overrides, the first call on a config from :func:`load_config`, unedited since,
    returns the runner that validated it; every other call builds a new one.
    """
    built = _BUILT.get(id(cfg))
    if built is not None and built[0]() is cfg:
        del _BUILT[id(cfg)]
        if not overrides and cfg.model_dump() == built[1]:
            return built[2]
    return _build(cfg, **overrides)


def _build(cfg: RewardConfig, **overrides: Any) -> GradingRunner:

    cache = None
    if cfg.cache is not None:
        cache = cfg.cache.build()
    concurrency = int(overrides.get("max_concurrency") or cfg.max_concurrency)
    configs: dict[str, GraderConfig] = {}
    for name, spec in cfg.graders.items():
        try:
            params = spec.params()
            if takes_judge(spec.type):
                # Shared and lazy: one backend per distinct spec, built on the first call.
                judge = _pooled(spec.judge or cfg.judge, concurrency)
                params.setdefault("model", judge_factory(judge))
                if cache is not None:
                    params.setdefault("cache", cache)
            elif spec.judge is not None:
                raise ConfigError(f"grader type {spec.type!r} takes no judge")
            grader = get_grader(spec.type, **params)
            configs[name] = GraderConfig(
                grader=grader, mapper=spec.mapper, call_timeout=spec.call_timeout
            )
        except RMServiceError as exc:
            raise ConfigError(f"graders.{name}: {exc}") from None
    aggs = []
    taken = {name: f"graders.{name}" for name in cfg.graders}
    for i, agg in enumerate(cfg.aggregators):
        try:
            built = get_aggregator(agg.type, name=agg.name, **agg.params())
            _check_place(cfg.aggregators, i, built, taken)
        except RMServiceError as exc:
            raise ConfigError(f"aggregators[{i}] ({agg.name}): {exc}") from None
        aggs.append(built)
        taken[agg.name] = f"aggregators[{i}]"
    kwargs: dict[str, Any] = {
        "max_concurrency": cfg.max_concurrency,
        "call_timeout": cfg.call_timeout,
        "reward": cfg.reward,
        "id_field": cfg.id_field,
        **overrides,
    }
    return GradingRunner(configs, aggregators=aggs, **kwargs)


def _check_place(specs: list[AggregatorSpec], i: int, agg: Any, taken: dict[str, str]) -> None:
    """Refuse, naming the keys, what the runner would refuse naming only the result: a name
    already taken (every aggregator is ``reward`` unless named, so a second unnamed one clashed
    with a name the config never wrote), and a component that an aggregator further down
    defines (one sees only the graders and the aggregators above it, so a gate listed before
    the sum it wraps was told its inner was unknown, though the config defines it)."""
    spec = specs[i]
    if spec.name in taken:
        hint = "" if "name" in spec.model_fields_set else " (unnamed, it is 'reward': name it)"
        raise ConfigError(f"the name {spec.name!r} is already taken by {taken[spec.name]}{hint}")
    below = {s.name: f"aggregators[{j}]" for j, s in enumerate(specs) if j > i}
    ahead = [c for c in getattr(agg, "components", None) or () if c in below]
    if ahead:
        raise ConfigError(
            f"it reads {ahead[0]!r}, which {below[ahead[0]]} defines below it; an aggregator "
            "sees only the graders and the aggregators above it, so list it after that one"
        )


def _pooled(spec: JudgeSpec | None, concurrency: int) -> JudgeSpec:
    """``spec`` with the judge's connection pool as wide as the runner's concurrency, unless
    the config sets the judge's own ``max_concurrency``: a runner grading 256 records at once
    through a pool of 64 would queue three calls in four behind the pool."""
    spec = spec if spec is not None else JudgeSpec()
    if "max_concurrency" in spec.model_fields_set:
        return spec
    return spec.model_copy(update={"max_concurrency": concurrency})
