"""Test helpers in one place: graders importable by string (``support:slow_len``) from a
subprocess too, aggregator inputs (:func:`results`), list comparisons (:func:`approx`), the
in-process judge (:class:`FakeJudge`), and a server thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from rm_service.models._base import ChatResult, Message, SamplingParams, TokenLogprob, Usage


async def slow_len(response: str) -> float:
    """Score ``min(1, len/20)`` after a delay (``RM_TEST_DELAY`` seconds, default 0.02)."""
    await asyncio.sleep(float(os.environ.get("RM_TEST_DELAY", "0.02")))
    return min(1.0, len(response) / 20)


def has_digit(response: str) -> float:
    return float(any(c.isdigit() for c in response))


def min_words(response: str, min_words: int = 3) -> float:
    """1.0 for a response of at least ``min_words`` words (a config's extra key sets it)."""
    return float(len(response.split()) >= min_words)


class InFlight:
    """An async grader that counts how many of its calls overlap."""

    def __init__(self, name: str = "inflight", delay: float = 0.005) -> None:
        self.name = name
        self.delay = delay
        self.now = 0
        self.peak = 0
        self.calls = 0

    async def aevaluate(self, **fields: object):
        from rm_service import GraderScore

        self.now += 1
        self.calls += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.now -= 1
        return GraderScore(name=self.name, score=0.5)


def results(**scores: float | str) -> dict:
    """Aggregator input: ``a=0.5`` is a score; ``a="timeout"`` is an error of that kind (its
    message ``"a broke"``)."""
    from rm_service import GraderError, GraderScore

    return {
        k: GraderError(name=k, error=f"{k} broke", kind=v)  # type: ignore[arg-type]
        if isinstance(v, str)
        else GraderScore(name=k, score=v)
        for k, v in scores.items()
    }


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Run ``app`` under real uvicorn on 127.0.0.1 (a free port) in a daemon thread; yields the
    base URL once it accepts connections, and stops the server on exit."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def short_or_unscored(response: str) -> float:
    """``1 - len/20`` (floored at 0); unscored (``judge_error``) when the response says FAIL."""
    from graders import Unscored

    if "FAIL" in response:
        raise Unscored("the judge said FAIL", kind="judge_error")
    return max(0.0, 1.0 - len(response) / 20)


def embedding_model_missing() -> str | None:
    """Why the packaged MiniLM (the ``local`` extra) cannot load here, or ``None`` when it can:
    tests that need it skip with this reason."""
    from rm_service.models._embed import EmbedderUnavailable, default_model_path

    try:
        default_model_path()
    except EmbedderUnavailable as exc:
        return str(exc)
    return None


def approx(values: list[float | None], **tolerance: float) -> list[object]:
    """``values`` as ``pytest.approx`` items (``tolerance``: its ``rel``/``abs``); ``None``
    (unscored) stays ``None`` and must match exactly."""
    return [None if v is None else pytest.approx(v, **tolerance) for v in values]


# --- the fake judge: an in-process ChatModel with scripted replies --------------------------

DEFAULT_PARAMS = SamplingParams()
FAKE_USAGE = Usage(120, 30)
Reply = Any  # str | ChatResult | BaseException | Callable[[messages, params], Reply]


def verdict(score: Any, reason: str = "looks fine") -> str:
    """A well-formed JSON verdict."""
    return json.dumps({"reason": reason, "score": score})


class FakeJudge:
    """An in-process ``ChatModel``: scripted replies, optional logprobs, delay and a call log.

    Replies are used in order, the last one repeating. A reply is the answer text, a full
    ``ChatResult``, an exception to raise, or a callable ``(messages, params) -> reply``.
    """

    def __init__(
        self,
        *replies: Reply,
        model: str = "fake-judge",
        delay: float = 0.0,
        logprobs: tuple[TokenLogprob, ...] | None = None,
        usage: Usage = FAKE_USAGE,
    ) -> None:
        self.model = model
        self.replies = list(replies) or [verdict(3)]
        self.delay = delay
        self.logprobs = logprobs
        self.usage = usage
        self.calls: list[tuple[list[dict[str, str]], SamplingParams]] = []

    @property
    def n_calls(self) -> int:
        return len(self.calls)

    async def achat(
        self, messages: Sequence[Message], params: SamplingParams = DEFAULT_PARAMS
    ) -> ChatResult:
        self.calls.append(([dict(m) for m in messages], params))
        reply = self.replies[min(len(self.calls), len(self.replies)) - 1]
        if self.delay:
            await asyncio.sleep(self.delay)
        if callable(reply) and not isinstance(reply, BaseException):
            reply = reply(messages, params)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, ChatResult):
            return reply
        return ChatResult(
            text=reply,
            model=self.model,
            usage=self.usage,
            latency_s=0.012,
            logprobs=self.logprobs,
            finish_reason="stop",
        )


def odd_metadata(response: str) -> Any:
    """Scores 1.0 with metadata strict JSON cannot hold as it is: a NaN, an infinity, a numpy
    number and array, a tuple and a set (a custom grader may return any of these)."""
    import math

    import numpy as np

    from rm_service import GraderScore

    return GraderScore(
        name="odd",
        score=1.0,
        reason="ok",
        metadata={
            "ratio": math.nan,
            "big": -math.inf,
            "np": np.float32(0.5),
            "arr": np.array([1, 2]),
            "pair": (1, 2),
            "tags": {"a"},
        },
    )
