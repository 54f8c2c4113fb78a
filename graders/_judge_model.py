"""The judge backend a grader holds: a ``ChatModel`` given directly, or built once from a factory.

One idea: resolving the judge model lazily and thread-safely, so a grader stays stateless after
construction and copies of it (committee samples) share one construction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rm_service._exceptions import ConfigError
from rm_service.models._base import ChatModel, ChatResult, JudgeError, Usage

__all__ = ["ModelSpec"]

ModelSpec = ChatModel | Callable[[], ChatModel]
"""A judge backend, or a zero-argument callable that builds one on first use."""


class _ModelRef:
    """A judge backend given directly or as a factory, built at most once, thread-safely.

    Held by reference, so copies of a grader (committee samples) share one construction.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self._lock = threading.Lock()
        self._model: ChatModel | None = None
        self._factory: Callable[[], ChatModel] | None = None
        if isinstance(spec, ChatModel):
            self._model = spec
        elif callable(spec):
            self._factory = spec
        else:
            raise ConfigError(
                "model must be a ChatModel or a zero-argument callable returning one, "
                f"got {type(spec).__name__}"
            )

    @property
    def name(self) -> str | None:
        return None if self._model is None else str(self._model.model)

    @property
    def identity(self) -> list[Any]:
        """What the judge is (backend, model, endpoint): a run's reward fingerprint counts it,
        so a resume with another judge is refused. A config's judge says it itself, the same
        built or not; a model given directly is named by itself; a bare factory only by its
        name."""
        of_factory = getattr(self._factory, "identity", None)
        if callable(of_factory):
            return list(of_factory())
        model = self._model
        if model is not None:
            return [type(model).__name__, str(model.model), getattr(model, "base_url", None)]
        return ["factory", getattr(self._factory, "__qualname__", "?")]

    def get(self) -> ChatModel:
        model = self._model
        if model is not None:
            return model
        with self._lock:
            if self._model is None:
                assert self._factory is not None
                try:
                    built = self._factory()
                except JudgeError:
                    raise
                except Exception as exc:
                    raise JudgeError(
                        f"building the judge model failed: {type(exc).__name__}: {exc}"
                    ) from exc
                if not isinstance(built, ChatModel):
                    raise JudgeError(
                        f"the model factory returned {type(built).__name__}, not a ChatModel"
                    )
                self._model = built
            return self._model


def _call_meta(
    model: str, result: ChatResult | None, started: float, attempts: int
) -> dict[str, Any]:
    usage = result.usage if result is not None else Usage()
    latency = result.latency_s if result is not None else time.perf_counter() - started
    meta: dict[str, Any] = {
        "model": model,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
        },
        "latency_s": round(latency, 6),
        "attempts": attempts,
        "cached": bool(result.cached) if result is not None else False,
    }
    if result is not None and result.finish_reason not in (None, "stop"):
        meta["finish_reason"] = result.finish_reason
    return meta
