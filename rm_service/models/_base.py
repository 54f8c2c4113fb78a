"""The judge-backend contract: chat messages in; text, token logprobs, usage and latency out.

Every backend (an OpenAI-compatible endpoint, the embedded local model, a test fake) implements one
method, :meth:`ChatModel.achat`. Judge graders build prompts and parse verdicts; backends only talk
to models. Backends raise the :class:`JudgeError` family for failures (they are exceptions *here*,
between two layers we own); the judge grader turns each into an unscored ``GraderError`` with
``kind="judge_error"`` or ``"timeout"``, never a score.

Error tree::

    RMServiceError
    └── JudgeError                  the judge could not give an answer
        ├── JudgeTimeout            a per-call or overall deadline passed
        ├── JudgeRateLimited        429 after every retry (``retry_after`` seconds, if sent)
        ├── JudgeConnectionError    refused, reset, DNS
        └── JudgeHTTPError          any other non-2xx status (``status``), or a malformed body
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

# The judge exceptions live in the one exception tree; re-exported here, where backends raise them.
from rm_service._exceptions import (
    JudgeConnectionError,
    JudgeError,
    JudgeHTTPError,
    JudgeRateLimited,
    JudgeTimeout,
)

__all__ = [
    "ChatModel",
    "ChatResult",
    "JudgeConnectionError",
    "JudgeError",
    "JudgeHTTPError",
    "JudgeRateLimited",
    "JudgeTimeout",
    "Message",
    "ResponseFormat",
    "SamplingParams",
    "TokenLogprob",
    "Usage",
]

Message = Mapping[str, str]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""

ResponseFormat = Literal["text", "json_object", "json_schema"]
"""How the judge is asked to answer. Chosen by explicit configuration, never guessed from the
model name: a guess sends strict json_schema to servers that reject it."""


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Per-call sampling settings. Part of the cache key, so keep them hashable and explicit.

    Attributes:
        temperature: 0.0 for a deterministic judge.
        max_tokens: cap on the judge's answer length.
        logprobs: ask for token log-probabilities (needed for ``score_mode="expected"``).
        top_logprobs: how many alternatives per position (OpenAI allows up to 20).
        response_format: ``text``, ``json_object`` or ``json_schema`` (with ``json_schema``).
        json_schema: the schema for ``json_schema`` mode, as ``{"name": ..., "schema": {...}}``.
        seed: passed through where the backend supports it.
    """

    temperature: float = 0.0
    max_tokens: int = 256
    logprobs: bool = False
    top_logprobs: int = 0
    response_format: ResponseFormat = "text"
    json_schema: Mapping[str, Any] | None = None
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token, its log-probability, and the top alternatives at that position."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call (zeros when the backend does not report them)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True, slots=True)
class ChatResult:
    """What a backend returns for one call.

    Attributes:
        text: the answer's text.
        model: the model that answered (as the backend reports it).
        usage: token counts.
        latency_s: wall time of the call, retries included.
        logprobs: per generated token, when asked for and supported; else ``None``.
        finish_reason: ``stop``, ``length``, ... as reported.
        attempts: how many requests it took (1 = no retry).
        cached: served from the judge cache, no call made.
    """

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    logprobs: tuple[TokenLogprob, ...] | None = None
    finish_reason: str | None = None
    attempts: int = 1
    cached: bool = False


@runtime_checkable
class ChatModel(Protocol):
    """A judge backend. Implementations must be safe to share between tasks, threads and event
    loops: create loop-bound resources (HTTP clients, semaphores) per loop, lazily."""

    model: str

    async def achat(
        self, messages: Sequence[Message], params: SamplingParams = SamplingParams()
    ) -> ChatResult:
        """Answer ``messages``; raise :class:`JudgeError` (or a subclass) on failure."""
        ...
