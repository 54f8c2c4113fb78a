"""``RemoteRMClient``: a learned reward model behind HTTP, scored in batches.

The GPU weights of a reward model live in a model server; rm-service stays CPU-only and
stateless and sends it text. Three wire forms are spoken, one per client (``format``):

* ``classify``: vLLM's pooling ``/classify`` for ``*ForSequenceClassification`` models. Request
  ``{"model"?, "input": [text, ...], "add_special_tokens": false}``; response ``{"data": [{"index",
  "label", "probs": [...], "num_classes"}, ...], "usage"}``. ``probs`` already went through the
  model's activation (a sigmoid for a one-label reward model, a softmax for several), so they
  are probabilities; except for a model whose config says ``problem_type: regression``, which
  vLLM answers with the raw value (score it with a sigmoid map, or use ``pooling``).
* ``pooling``: vLLM's ``/pooling``. The same request plus ``"encoding_format": "float"`` and
  ``"use_activation": false``, so the number that comes back is the raw head output (the
  logit TRL reads as the reward); response ``{"data": [{"index", "data": [...]}, ...]}``, where
  ``data`` is the pooled vector (one value per label) or, for a per-token pooler, one such row
  per token, of which the last token's is used.
* ``get_reward``: OpenRLHF's ``serve_rm`` protocol (which ``rm-service serve`` also speaks).
  Request ``{"query": [prompt + response, ...], "prompts": [prompt, ...], "labels"?: [...]}``;
  response ``{"rewards": [...], "scores"?, "extra_logs"?}`` (the older ``{"score": [...]}`` too).
  A sample flagged ``extra_logs.rm_error == 1`` was not scored by the server (its reward is a
  fallback), so it is reported unscored here, never as its stand-in number.

The text sent is TRL's for a reward model: ``prompt + response``, no separator, and no special
tokens added by the server (TRL tokenizes with ``add_special_tokens=False``). With ``input_format:
chat`` the vLLM forms send ``{"messages": [...]}`` instead and vLLM applies the model's own chat
template, as TRL does for conversational data; that form carries one conversation per request,
so chat requests are never batched.

Design points:

* **Batching per request** through a :class:`~rm_service.models._batch.MicroBatcher`: records
  waiting at the same time go out as one request of up to ``max_batch`` texts, with
  ``max_inflight`` requests at once per event loop.
* **The judges' retries, deadlines, limits and errors** (:mod:`rm_service.models._openai`): the
  same :class:`RetryPolicy` (429 with ``Retry-After``, 5xx, timeouts, refused connections; a
  malformed body once), ``timeout`` per attempt and ``deadline`` per call, the same
  :class:`RateLimiter`, the same :class:`JudgeError` classes (so a grader maps them to unscored
  kinds as the judges do), and its per-loop aiohttp session and closer.
* **Honest parsing.** A body that is not JSON, lacks its list or holds another number of items
  than were sent is malformed (:class:`JudgeHTTPError`, ``status=None``) for the whole batch;
  one item without a usable number is an :class:`RMValue` with ``error``, the others keep theirs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from rm_service._exceptions import ConfigError
from rm_service._result import ErrorKind
from rm_service.models._base import JudgeError, JudgeHTTPError, JudgeTimeout
from rm_service.models._batch import MicroBatcher
from rm_service.models._http1 import json_poster
from rm_service.models._limits import RateLimiter
from rm_service.models._retry import RetryPolicy, retry_async
from rm_service.models._session import Client, LoopState, PerLoopSessions, check_api_key

__all__ = [
    "DEFAULT_PATHS",
    "FORMATS",
    "InputForm",
    "RMFormat",
    "RMInput",
    "RMValue",
    "RemoteRMClient",
]

RMFormat = Literal["classify", "pooling", "get_reward"]
InputForm = Literal["text", "chat"]

FORMATS: tuple[RMFormat, ...] = ("classify", "pooling", "get_reward")
DEFAULT_PATHS = {f: f"/{f}" for f in FORMATS}
"""The path appended to a ``url`` given without one (``http://host:8000``)."""


@dataclass(frozen=True, slots=True)
class RMInput:
    """One record to score: ``prompt`` and ``response`` texts, or (``chat`` input) the whole
    conversation in ``messages``, response last; ``label`` goes out as ``get_reward``'s
    ``labels``."""

    prompt: str
    response: str
    messages: tuple[Mapping[str, str], ...] | None = None
    label: Any = None


@dataclass(frozen=True, slots=True)
class RMValue:
    """What the server said about one item: ``raw``, its number as sent (NaN included; ``None``
    when there is none), or ``error`` with its unscored ``kind`` (``unparseable``; ``judge_error``
    for a sample the server flagged itself); ``detail`` (label, classes); and of the batch's call,
    ``batch_size`` items, ``attempts`` requests and ``latency_s``, retries included."""

    raw: float | None
    error: str | None = None
    kind: ErrorKind = "unparseable"
    detail: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 1
    attempts: int = 1
    latency_s: float = 0.0


_REFUSED_INPUT = frozenset({400, 413, 422})
"""Statuses with which a model server refuses a request for what it holds (vLLM answers 400 for
the whole batch when one text is past the model's context): each record is then sent alone."""

_PROBES = 2
"""Records of a refused batch sent alone, one after another, before the others, while the server
has not yet taken a request from this client: if none is taken, the refusal is the request's
form (a config error: ``extra_body``, ``model``), not one record, and the rest keep the batch's
error instead of a request each."""


class RemoteRMClient(PerLoopSessions):
    """A reward-model endpoint, safe to share across tasks, loops and threads.

    Args:
        url: the endpoint, e.g. ``http://vllm:8000/classify``; a URL without a path gets the
            format's (:data:`DEFAULT_PATHS`).
        format: ``classify``, ``pooling`` or ``get_reward`` (see the module docstring).
        model: the ``model`` sent to vLLM (default: none, the server's only model).
        input_format: ``text`` (``prompt + response``, batched) or ``chat`` (vLLM applies the chat
            template; one conversation per request; not for ``get_reward``).
        api_key: sent as ``Authorization: Bearer``; none by default.
        timeout: seconds one attempt may take.
        deadline: seconds a batch's call may take, retries and waits included; default
            ``4 * timeout``.
        max_retries: retries after the first attempt, with the judges' backoff (default 4).
        rpm / tpm: request and token limits (tokens estimated as characters / 4, corrected with
            the reported ``usage``).
        max_batch: the most texts in one request.
        max_wait_s: how long a batch's first record may wait for company (0: go as soon as a
            request slot is free; records that arrive meanwhile form the next batch).
        max_inflight: requests in flight at once per event loop (and connections in the pool).
        label_index: which of the model's values is the reward when it has several (a
            ``probs`` list, a pooled vector); with one value it may be left out.
        extra_body: extra JSON fields merged into every request (they override ours).
    """

    def __init__(
        self,
        url: str,
        *,
        format: RMFormat = "classify",
        model: str | None = None,
        input_format: InputForm = "text",
        api_key: str | None = None,
        timeout: float = 30.0,
        deadline: float | None = None,
        max_retries: int = 4,
        rpm: float | None = None,
        tpm: float | None = None,
        max_batch: int = 32,
        max_wait_s: float = 0.0,
        max_inflight: int = 4,
        label_index: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if format not in FORMATS:
            raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
        if input_format not in ("text", "chat"):
            raise ConfigError(f"input_format must be 'text' or 'chat', got {input_format!r}")
        if input_format == "chat" and format == "get_reward":
            raise ConfigError(
                "input_format: chat needs a vLLM form (classify or pooling); get_reward sends text"
            )
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"url must be an http:// or https:// URL, got {url!r}")
        if parts.path in ("", "/"):
            url = url.rstrip("/") + DEFAULT_PATHS[format]
        if timeout <= 0 or (deadline is not None and deadline <= 0):
            raise ConfigError("timeout and deadline must be > 0 seconds")
        if label_index is not None and label_index < 0:
            raise ConfigError(f"label_index must be >= 0, got {label_index}")
        self.url = url
        self.format: RMFormat = format
        self.model = model
        self.input_format: InputForm = input_format
        if api_key:
            check_api_key(api_key, "api_key")
        self._api_key = api_key
        self.timeout = float(timeout)
        self.deadline = float(deadline) if deadline is not None else 4.0 * self.timeout
        self.max_batch = 1 if input_format == "chat" else max_batch
        self.max_wait_s = float(max_wait_s)
        self.max_inflight = max_inflight
        self.label_index = label_index
        self.extra_body = dict(extra_body) if extra_body else None
        try:  # each checks its own numbers (max_batch, max_wait_s, max_inflight: the batcher's)
            self.limiter = RateLimiter(rpm, tpm) if (rpm or tpm) else None
            self.retry_policy = RetryPolicy(max_retries=max_retries)
            self._setup()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def _setup(self) -> None:
        self._init_sessions()
        self._accepted = False  # per process: the server took a request of ours
        self.batcher: MicroBatcher[RMInput, RMValue] = MicroBatcher(
            self._run_split,
            max_batch=self.max_batch,
            max_wait_s=self.max_wait_s,
            max_inflight=self.max_inflight,
        )

    def __repr__(self) -> str:
        return (
            f"RemoteRMClient(url={self.url!r}, format={self.format!r}, model={self.model!r}, "
            f"input_format={self.input_format!r}, api_key={'***' if self._api_key else None!r}, "
            f"max_batch={self.max_batch}, max_inflight={self.max_inflight}, "
            f"timeout={self.timeout:g}, deadline={self.deadline:g})"
        )

    _transient = (*PerLoopSessions._transient, "batcher")

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._setup()

    @property
    def probe(self) -> tuple[str, dict[str, str], int]:
        """``(url, headers, ok_below)`` for a readiness probe: ``GET url`` answering a status
        below ``ok_below`` means the server is up. vLLM serves ``/health`` (200 once the model
        is loaded); a ``get_reward`` server need have nothing but its one POST route, so a GET
        of that route answering anything but a 5xx (405, 404) shows it is up."""
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        if self.format == "get_reward":
            return self.url, headers, 500
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/health", headers, 400

    async def score(self, item: RMInput) -> RMValue:
        """The server's value for one item, sent in a batch with whatever else is waiting.

        Raises:
            JudgeError: the batch's request failed after the retries (:class:`JudgeTimeout`
                when the deadline passed, :class:`JudgeHTTPError` with ``status=None`` for a
                malformed response).
        """
        return await self.batcher.submit(item)

    # -- per-loop session ----------------------------------------------------------------------

    transport = "direct"  # our HTTP/1.1 client (see PerLoopSessions)

    def _new_client(self) -> Client:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return json_poster(self.url, headers, pool=self.max_inflight, who=self.url)

    def _pool_size(self) -> int:
        return self.max_inflight

    # -- one batch -----------------------------------------------------------------------------

    def _body(self, items: Sequence[RMInput]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.format == "get_reward":
            body["query"] = [i.prompt + i.response for i in items]
            body["prompts"] = [i.prompt for i in items]
            if any(i.label is not None for i in items):
                body["labels"] = [i.label for i in items]
        else:
            if self.model:
                body["model"] = self.model
            if self.input_format == "chat":
                (item,) = items
                body["messages"] = [dict(m) for m in item.messages or ()]
            else:
                body["input"] = [i.prompt + i.response for i in items]
                body["add_special_tokens"] = False
            if self.format == "pooling":
                body["encoding_format"] = "float"
                body["use_activation"] = False
        if self.extra_body:
            body.update(self.extra_body)
        return body

    # -- a refused batch, split ------------------------------------------------------------

    async def _run_split(self, items: list[RMInput]) -> list[RMValue | Exception]:
        """A batch; one the server refuses as a whole (:data:`_REFUSED_INPUT`) is sent again one
        record per request, within the batch's deadline and its rate limits and slots, so one
        input the model cannot take fails alone and its batch-mates keep their scores (as in
        the local grader). A record that was alone in its request is not sent again. Until the
        server has taken one of this client's requests, at most :data:`_PROBES` records go
        alone first: a server that refuses them too refuses the config, and the batch costs
        1 + ``_PROBES`` requests, not one per record."""
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + self.deadline
        try:
            values = await self._run(items)
        except JudgeHTTPError as exc:
            if exc.status not in _REFUSED_INPUT or len(items) == 1:
                raise
            refused = exc
        else:
            self._accepted = True
            return list(values)
        out: list[RMValue | Exception] = []
        if not self._accepted:
            for item in items[:_PROBES]:
                out.append(await self._alone(item, deadline, refused.attempts, started))
                if isinstance(out[-1], RMValue):
                    break
            else:  # none taken alone either: the server refuses the request, not a record
                return out + [refused] * (len(items) - len(out))
        rest = items[len(out) :]
        out += await asyncio.gather(
            *(self._alone(i, deadline, refused.attempts, started) for i in rest)
        )
        return out

    async def _alone(
        self, item: RMInput, deadline: float, before: int, started: float
    ) -> RMValue | Exception:
        """``item`` in a request of its own, by the batch's ``deadline``; its ``attempts`` count
        the ``before`` requests of its refused batch too."""
        try:
            async with asyncio.timeout_at(deadline):
                (value,) = await self._run([item])
        except JudgeError as exc:
            exc.attempts += before
            return exc
        except TimeoutError:
            return JudgeTimeout(
                f"{self.url}: no answer within the {self.deadline:g} s deadline",
                attempts=before + 1,
            )
        self._accepted = True
        return dataclasses.replace(
            value, attempts=value.attempts + before, latency_s=time.perf_counter() - started
        )

    async def _run(self, items: list[RMInput]) -> list[RMValue]:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        state = self._states.get(loop) or await self._loop_state(loop)
        body = self._body(items)
        cost = 0.0
        if self.limiter is not None and self.limiter.tpm:
            cost = sum(_chars(i) for i in items) / 4
        deadline = loop.time() + self.deadline

        async def attempt(n: int) -> tuple[list[RMValue], int]:
            return await self._attempt(state, loop, body, len(items), cost, deadline, n)

        values, attempts = await retry_async(
            attempt, self.retry_policy, deadline=deadline, clock=loop.time
        )
        latency = time.perf_counter() - started
        return [
            RMValue(
                raw=v.raw,
                error=v.error,
                kind=v.kind,
                detail=v.detail,
                batch_size=len(items),
                attempts=attempts,
                latency_s=latency,
            )
            for v in values
        ]

    async def _attempt(
        self,
        state: LoopState,
        loop: asyncio.AbstractEventLoop,
        body: dict[str, Any],
        count: int,
        cost: float,
        deadline: float,
        n: int,
    ) -> tuple[list[RMValue], int]:
        limiter = self.limiter
        if limiter is not None and not await limiter.acquire(cost, max_wait=deadline - loop.time()):
            raise JudgeTimeout(
                f"{self.url}: waiting for the rate limit would pass the {self.deadline:g} s "
                "deadline",
                attempts=n,
            )
        try:
            until = min(deadline, loop.time() + self.timeout)
            async with asyncio.timeout_at(until):  # the wait for a slot too
                async with state.slots:
                    content = await state.client.post(body, n, until=until)
        except TimeoutError:
            if loop.time() >= deadline - 1e-3:
                raise JudgeTimeout(
                    f"{self.url}: no answer within the {self.deadline:g} s deadline", attempts=n
                ) from None
            raise JudgeTimeout(
                f"{self.url}: no answer within {self.timeout:g} s", attempts=n
            ) from None
        values, tokens = self._parse(content, count, n)
        if cost and limiter is not None and tokens:
            limiter.settle(cost, tokens)
        return values, n

    # -- parsing -------------------------------------------------------------------------------

    def _malformed(self, why: str, content: bytes, n: int) -> JudgeHTTPError:
        return JudgeHTTPError(
            f"{self.url}: malformed {self.format} response ({why}); body starts "
            f"{bytes(content[:120])!r}",
            attempts=n,
            status=None,
        )

    def _parse(self, content: bytes, count: int, n: int) -> tuple[list[RMValue], int]:
        """One :class:`RMValue` per item sent, and the prompt tokens the server reported."""
        try:
            doc = json.loads(content)
        except ValueError as exc:
            raise self._malformed(f"not JSON: {exc}", content, n) from None
        if not isinstance(doc, dict):
            raise self._malformed("not a JSON object", content, n)
        if self.format == "get_reward":
            return self._parse_rewards(doc, content, count, n), 0
        data = doc.get("data")
        if not isinstance(data, list):
            raise self._malformed("no 'data' list", content, n)
        if len(data) != count:
            raise self._malformed(f"{len(data)} items for {count} inputs", content, n)
        indices = [d.get("index") if isinstance(d, dict) else None for d in data]
        if all(type(i) is int for i in indices):  # answered in any order: put them in ours
            order = {i: d for i, d in zip(indices, data, strict=True)}
            if set(order) != set(range(count)):
                raise self._malformed(f"indices {indices} are not 0..{count - 1}", content, n)
            data = [order[i] for i in range(count)]
        usage = doc.get("usage")
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        values = [self._item(d) for d in data]
        return values, tokens if type(tokens) is int else 0

    def _item(self, item: Any) -> RMValue:
        if not isinstance(item, dict):
            return RMValue(None, f"item is {type(item).__name__}, not an object")
        if self.format == "classify":
            probs = item.get("probs")
            detail = {"label": item.get("label"), "num_classes": item.get("num_classes")}
            return _pick(probs, self.label_index, "probs", detail)
        values = item.get("data")
        if isinstance(values, list) and values and isinstance(values[-1], list):
            values = values[-1]  # one row per token: the last token's, where a reward is read
        return _pick(values, self.label_index, "data", {})

    def _parse_rewards(
        self, doc: dict[str, Any], content: bytes, count: int, n: int
    ) -> list[RMValue]:
        key = "rewards" if "rewards" in doc else "score"
        rewards = doc.get(key)
        if not isinstance(rewards, list):
            raise self._malformed("no 'rewards' list", content, n)
        if len(rewards) != count:
            raise self._malformed(f"{len(rewards)} rewards for {count} queries", content, n)
        logs = doc.get("extra_logs")
        flags = logs.get("rm_error") if isinstance(logs, dict) else None
        if flags is None:
            flags = [0] * count
        elif not (
            isinstance(flags, list)
            and len(flags) == count
            and all(isinstance(f, int | float) for f in flags)
        ):
            # Flags that cannot be read say some samples' rewards are stand-ins without saying
            # which: taking them as all clear would score a fallback 0.0 as a real reward.
            raise self._malformed(
                f"extra_logs.rm_error is {flags!r:.80}, not a list of {count} flags", content, n
            )
        out = []
        for reward, flag in zip(rewards, flags, strict=True):
            if flag:
                out.append(
                    RMValue(
                        None,
                        "the server could not score this sample (extra_logs.rm_error = 1); "
                        f"its reward {reward!r} is a fallback",
                        kind="judge_error",
                    )
                )
            else:
                out.append(_pick([reward], None, key, {}))
        return out


def _chars(item: RMInput) -> int:
    """The characters an input sends, the rate budget's estimate of its tokens (chat input
    sends its messages: the prompt and response fields are empty there)."""
    chat = sum(len(m.get("content") or "") for m in item.messages or ())
    return len(item.prompt) + len(item.response) + chat


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _pick(values: Any, index: int | None, what: str, detail: dict[str, Any]) -> RMValue:
    """The one number of ``values`` that is the reward, or an :class:`RMValue` saying why not."""
    if not isinstance(values, list) or not values:
        return RMValue(
            None, f"{what} is {values!r}, not a non-empty list of numbers", detail=detail
        )
    if index is None:
        if len(values) != 1:
            return RMValue(
                None,
                f"{what} holds {len(values)} values; set label_index to say which is the reward",
                detail=detail,
            )
        index = 0
    if index >= len(values):
        return RMValue(
            None, f"label_index {index} is past the {len(values)} values of {what}", detail=detail
        )
    value = values[index]
    if not _is_number(value):
        return RMValue(None, f"{what}[{index}] is {value!r}, not a number", detail=detail)
    try:
        raw = float(value)
    except OverflowError:  # an integer past the float range
        return RMValue(None, f"{what}[{index}] is too large for a float", detail=detail)
    if not math.isfinite(raw):
        return RMValue(raw, f"{what}[{index}] is {raw!r}, not a finite number", detail=detail)
    return RMValue(raw, detail=detail)
