"""Build a judge backend from a config block or the environment.

The rule, so one config runs both offline and against a real endpoint with no other change:

* a ``judge:`` block with ``backend: openai`` (or a ``base_url``) → :class:`OpenAIChatModel`;
* a ``judge:`` block with ``backend: local`` → the embedded :class:`LocalChatModel`;
* no ``backend``: ``OPENAI_BASE_URL`` set in the environment (or ``.env``) → OpenAI-compatible
  endpoint, else the embedded local model (offline, no API key).

The model name for an endpoint comes from ``judge.model``, else ``RM_SERVICE_JUDGE_MODEL``, else
``gpt-4o-mini``. Backends are built lazily (the local model loads on the first judge call, not at
config load) and once per distinct spec, so every judge grader of a runner shares one client
pool or one loaded model.

``rate_limit_redis`` shares the ``rpm``/``tpm`` budget between every process that names the same
Redis and budget key (replicas behind a load balancer), instead of giving each process the whole
budget (see :mod:`rm_service.models._redis_budget`). It is a judge setting, not the cache's,
because the limit belongs to the endpoint: a shared budget is as useful without a shared cache
(sampled judges, no caching) as with one, and two judges may share one Redis but not one budget.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rm_service._exceptions import ConfigError
from rm_service.models._base import ChatModel
from rm_service.models._redis import check_redis_url
from rm_service.models._redis_budget import RedisRateLimiter

__all__ = ["DEFAULT_ENDPOINT_MODEL", "JudgeSpec", "build_judge", "judge_factory"]

DEFAULT_ENDPOINT_MODEL = "gpt-4o-mini"


class JudgeSpec(BaseModel):
    """The ``judge:`` block of a reward config (top level, or per grader to override it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["openai", "local"] | None = None
    model: str | None = Field(
        default=None,
        description="endpoint model name, or for 'local' a GGUF file or model directory",
    )
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    max_concurrency: int = Field(default=256, ge=1)
    rpm: float | None = Field(default=None, gt=0)
    tpm: float | None = Field(default=None, gt=0)
    transport: Literal["aiohttp", "httpx"] | None = None
    rate_limit_redis: str | None = Field(
        default=None,
        description="redis://, rediss:// or unix:// URL: share rpm/tpm across replicas",
    )
    rate_limit_key: str | None = Field(
        default=None,
        min_length=1,
        description="names the shared budget (default: the endpoint's base URL and model)",
    )

    @field_validator("rate_limit_redis")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url is not None:
            try:
                check_redis_url(url, "rate_limit_redis")
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("rate_limit_redis: ")) from None
        return url

    @model_validator(mode="after")
    def _shared_budget(self) -> JudgeSpec:
        if self.rate_limit_redis is not None:
            if self.rpm is None and self.tpm is None:
                raise ValueError("rate_limit_redis shares rpm/tpm: set rpm or tpm too")
            if self.backend == "local":
                raise ValueError("rate_limit_redis applies to an endpoint, not backend 'local'")
        elif self.rate_limit_key is not None:
            raise ValueError("rate_limit_key names a shared budget: set rate_limit_redis too")
        return self

    def resolved_model(self) -> str:
        """An endpoint judge's model name, as :func:`build_judge` picks it."""
        return self.model or os.environ.get("RM_SERVICE_JUDGE_MODEL") or DEFAULT_ENDPOINT_MODEL

    def identity(self) -> list[Any]:
        """What the judge is (backend, model, endpoint), resolved as building it would, without
        building it: a run's reward fingerprint counts it."""
        if self.resolved_backend() == "local":
            return ["local", self.model]
        return ["openai", self.resolved_model(), self.base_url or os.environ.get("OPENAI_BASE_URL")]

    def resolved_backend(self) -> Literal["openai", "local"]:
        _load_dotenv()
        if self.backend is not None:
            return self.backend
        if self.base_url or os.environ.get("OPENAI_BASE_URL"):
            return "openai"
        return "local"


def build_judge(spec: JudgeSpec | dict[str, Any] | None = None) -> ChatModel:
    """Build the backend ``spec`` describes (see the module docstring for the rule)."""
    spec = _as_spec(spec)
    if spec.resolved_backend() == "local":
        from rm_service.models._local import LocalChatModel

        return LocalChatModel(spec.model) if spec.model else LocalChatModel()
    from rm_service.models._openai import OpenAIChatModel

    kwargs: dict[str, Any] = {
        "base_url": spec.base_url,
        "api_key": os.environ.get(spec.api_key_env),
        "timeout": spec.timeout,
        "max_retries": spec.max_retries,
        "max_concurrency": spec.max_concurrency,
        "rpm": spec.rpm,
        "tpm": spec.tpm,
    }
    if spec.transport:
        kwargs["transport"] = spec.transport
    model = spec.resolved_model()
    chat = OpenAIChatModel(model, **kwargs)
    if spec.rate_limit_redis is not None:
        key = spec.rate_limit_key or f"{chat.base_url or 'https://api.openai.com/v1'}|{model}"
        chat.limiter = RedisRateLimiter(spec.rate_limit_redis, key, spec.rpm, spec.tpm)
    return chat


_SHARED: dict[JudgeSpec, ChatModel] = {}
_LOCK = threading.Lock()


def judge_factory(spec: JudgeSpec | dict[str, Any] | None = None) -> Callable[[], ChatModel]:
    """A zero-argument callable returning the backend for ``spec``, built on first call and
    shared process-wide by every caller with an equal spec (one pool, one loaded model). Its
    ``identity()`` says what the judge is before it is built."""
    return _JudgeFactory(_as_spec(spec))


class _JudgeFactory:
    __slots__ = ("spec",)

    def __init__(self, spec: JudgeSpec) -> None:
        self.spec = spec

    def __call__(self) -> ChatModel:
        with _LOCK:
            model = _SHARED.get(self.spec)
            if model is None:
                model = _SHARED[self.spec] = build_judge(self.spec)
            return model

    def identity(self) -> list[Any]:
        return self.spec.identity()


def _load_dotenv() -> None:
    """Read ``.env`` from the working directory once, never overriding the real environment."""
    from dotenv import find_dotenv, load_dotenv

    load_dotenv(find_dotenv(usecwd=True), override=False)


def _as_spec(spec: JudgeSpec | dict[str, Any] | None) -> JudgeSpec:
    if isinstance(spec, JudgeSpec):
        return spec
    return JudgeSpec.model_validate(spec or {})
