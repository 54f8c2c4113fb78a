"""``OpenAIChatModel``: a judge backend for any OpenAI-compatible chat-completions endpoint.

It speaks only the standard chat-completions fields, so the same object works against OpenAI,
vLLM, Ollama, llama.cpp's server and other compatible servers. Provider-specific fields go in
``extra_body`` (e.g. ``{"chat_template_kwargs": {"enable_thinking": False}}`` for a Qwen3 model
on vLLM). ``response_format`` is sent only when the :class:`SamplingParams` ask for one; it is
never guessed from the model's name.

Design points (most answer a failure seen in other judge clients):

* **One HTTP client per event loop, created lazily.** A client and its connection pool belong to
  the loop they were first used on. The model keeps one client per running loop (created under a
  ``threading.Lock`` on first use there, never in ``__init__``), so one object serves repeated
  ``asyncio.run`` calls, a TRL reward function called once per step, and loops in other threads.
  A loop's client is closed when the loop shuts down its async generators (``asyncio.run`` and
  pytest's runners do), or by :meth:`OpenAIChatModel.aclose`. The machinery is shared with the
  remote reward-model client (:mod:`rm_service.models._session`).
* **The ``direct`` transport by default, chosen by measurement.** The client's CPU per call is
  the bottleneck at scale. ``direct`` sends the chat-completions wire format with no SDK on the
  hot path, over our own keep-alive HTTP/1.1 client per loop (:mod:`rm_service.models._http1`,
  about half aiohttp's CPU per request; aiohttp for URLs it does not take); it costs a fraction
  of the client CPU per call of ``openai.AsyncOpenAI`` and is the only transport that met the
  throughput targets (``docs/benchmarks.md``). The SDK transports (``aiohttp``, ``httpx``) live in
  :mod:`rm_service.models._openai_sdk`, for what only the SDK does (its proxy and Azure
  handling, say). All three share the pool size, deadlines, retries and error classes. The pool
  holds ``max_concurrency`` connections, and per-loop slots of the same size (``_slots.Slots``)
  queue calls above it *before* their request timer starts.
* **Raw JSON.** Every transport returns the response body and it is read with ``json.loads``,
  not through the SDK's pydantic models.
* **Our retries, not the SDK's:** see ``_retry.py``. Every attempt is bounded by ``timeout`` and
  the whole call, retries, pool and rate-limit waits included, by ``deadline``.
* **Errors are mapped by each transport** onto the :class:`JudgeError` classes: the direct client
  maps connection failures, malformed answers and HTTP statuses itself, so the default path never
  imports ``openai`` (about a second to import), and the SDK transports import it on first use,
  in a thread.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from rm_service._exceptions import ConfigError
from rm_service.models._base import (
    ChatResult,
    JudgeError,
    JudgeHTTPError,
    JudgeTimeout,
    Message,
    SamplingParams,
    TokenLogprob,
    Usage,
)
from rm_service.models._body import ChatBody
from rm_service.models._http1 import endpoint, json_poster
from rm_service.models._limits import RateLimiter
from rm_service.models._openai_sdk import SdkClient
from rm_service.models._retry import RetryPolicy, retry_async
from rm_service.models._session import (
    Client,
    LoopState,
    PerLoopSessions,
    check_api_key,
    http_error,
)

__all__ = [
    "DEFAULT_JUDGE_CONCURRENCY",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TRANSPORT",
    "NO_API_KEY",
    "OpenAIChatModel",
    "Transport",
]

Transport = Literal["direct", "aiohttp", "httpx"]
"""How requests are sent. ``aiohttp`` and ``httpx`` go through ``openai.AsyncOpenAI`` on that HTTP
stack; ``direct`` sends the same chat-completions wire format without the SDK on the hot path (the
SDK's request building is much of its per-call CPU), over :mod:`rm_service.models._http1`."""

DEFAULT_TRANSPORT: Transport = "direct"
"""Chosen by ``bench/judge_throughput.py`` and ``bench/judge_cpu.py``: a fraction of the client CPU
per call of the SDK, and the only transport that met the throughput targets
(``docs/benchmarks.md``)."""

DEFAULT_MAX_RETRIES = 4

DEFAULT_JUDGE_CONCURRENCY = 256
"""A judge endpoint's default ceiling on requests in flight per event loop (and its connection
pool): above the runner's default concurrency, so the runner's setting is the one that counts."""

NO_API_KEY = "EMPTY"
"""The placeholder key sent to a non-OpenAI endpoint when none is configured (vLLM, Ollama and
llama.cpp accept any key unless started with one)."""

_OPENAI_HOST = "api.openai.com"
_FRAMES_KEPT = 64
_Frame = tuple[SamplingParams, str, "dict[str, Any] | None", dict[str, Any], tuple[str, str]]
"""A request's fixed part: its params, model name and extra body, the fields, their encoding."""
"""Request frames (one per sampling-params object in use) a model keeps before starting over."""

_dotenv_lock = threading.Lock()
_dotenv_loaded = False


def _load_dotenv_once() -> None:
    """Read ``.env`` from the working directory into the environment, once per process.

    ``usecwd=True`` matters: without it python-dotenv searches upwards from the *calling
    module's* directory (site-packages for an installed rm-service), not the user's directory.
    Variables already set win (``override=False``).
    """
    global _dotenv_loaded
    with _dotenv_lock:
        if _dotenv_loaded:
            return
        from dotenv import find_dotenv, load_dotenv

        path = find_dotenv(usecwd=True)
        if path:
            load_dotenv(path, override=False)
        _dotenv_loaded = True


def _mask(key: str) -> str:
    return "***" if len(key) < 12 else f"{key[:3]}***{key[-4:]}"


class OpenAIChatModel(PerLoopSessions):
    """A judge backend for an OpenAI-compatible endpoint, safe to share across tasks, loops and
    threads.

    Args:
        model: the model name sent with every request.
        base_url: the endpoint, e.g. ``http://localhost:8000/v1``; default ``$OPENAI_BASE_URL``,
            else OpenAI's.
        api_key: default ``$OPENAI_API_KEY``. Required for OpenAI's own endpoint; any other
            endpoint gets :data:`NO_API_KEY` when none is configured. Never shown in ``repr``.
        timeout: seconds one attempt may take (connect to last byte).
        deadline: seconds the whole call may take, retries and waits included; default
            ``4 * timeout``. Past it the call raises :class:`JudgeTimeout`.
        max_retries: retries after the first attempt (default 4), with the default backoff.
        retry_policy: full control over retries and backoff (instead of ``max_retries``).
        max_concurrency: requests in flight per event loop; also the connection-pool size.
            More concurrent calls wait for a slot (within their deadline). The default, 256,
            is a ceiling, not a target: the runner's own ``max_concurrency`` (64 by default)
            is what sets the calls in flight, and a runner raised to 256 gets 256 rather than
            a hidden 64.
        transport: ``"direct"`` (default: the wire format over our HTTP/1.1 client, no SDK),
            ``"aiohttp"`` (``openai.AsyncOpenAI`` on aiohttp) or ``"httpx"`` (the SDK's default).
        rpm: requests-per-minute limit for this model object, shared across loops and threads.
        tpm: tokens-per-minute limit. Charged *before* a call with an estimate, prompt
            characters / 4 + ``max_tokens`` (an over-estimate for English, which errs on the
            safe side), then corrected with the reported usage.
        default_params: sampling settings for calls that pass none.
        extra_body: extra JSON fields merged into every request (they override ours).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        deadline: float | None = None,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        max_concurrency: int = DEFAULT_JUDGE_CONCURRENCY,
        transport: Transport = DEFAULT_TRANSPORT,
        rpm: float | None = None,
        tpm: float | None = None,
        default_params: SamplingParams | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if not model:
            raise ConfigError("OpenAIChatModel needs a model name")
        if timeout <= 0 or (deadline is not None and deadline <= 0):
            raise ConfigError("timeout and deadline must be > 0 seconds")
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if transport not in ("direct", "aiohttp", "httpx"):
            raise ConfigError(
                f"transport must be 'direct', 'aiohttp' or 'httpx', got {transport!r}"
            )
        if retry_policy is not None and max_retries is not None:
            raise ConfigError("pass max_retries or retry_policy, not both")
        _load_dotenv_once()
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if base_url is not None and urlsplit(base_url).scheme not in ("http", "https"):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}")
        if base_url is not None and "@" in urlsplit(base_url).netloc:
            # Every request carries the key as ``Authorization: Bearer``; a URL's user and
            # password would need that header too, and no client sends both.
            raise ConfigError(
                "base_url holds a user name or password (user:pass@host): pass the credential "
                "as api_key= (sent as a bearer token) and give the URL without it"
            )
        host = urlsplit(base_url).hostname if base_url else _OPENAI_HOST
        if api_key is None:
            if host == _OPENAI_HOST:
                raise ConfigError(
                    f"no API key for {_OPENAI_HOST}: pass api_key= or set OPENAI_API_KEY"
                )
            api_key = NO_API_KEY
        check_api_key(api_key, "api_key= or OPENAI_API_KEY")
        self.model = model
        self.base_url = base_url
        self._api_key = api_key
        self.timeout = float(timeout)
        self.deadline = float(deadline) if deadline is not None else 4.0 * self.timeout
        self.retry_policy = retry_policy or RetryPolicy(
            max_retries=DEFAULT_MAX_RETRIES if max_retries is None else max_retries
        )
        self.max_concurrency = max_concurrency
        self.transport: Transport = transport
        self.default_params = default_params or SamplingParams()
        self.extra_body = dict(extra_body) if extra_body else None
        self.limiter = RateLimiter(rpm, tpm) if (rpm or tpm) else None
        self._build_body([], self.default_params)  # fail now on a bad response_format
        self._init_sessions()
        self._frames: dict[int, _Frame] = {}

    @property
    def probe_headers(self) -> dict[str, str]:
        """Headers for a readiness probe of this endpoint (``GET {base_url}/models``): the
        bearer key when one is configured, else none."""
        key = self._api_key
        return {} if key == NO_API_KEY else {"Authorization": f"Bearer {key}"}

    def __repr__(self) -> str:
        limits = f", rpm={self.limiter.rpm}, tpm={self.limiter.tpm}" if self.limiter else ""
        return (
            f"OpenAIChatModel(model={self.model!r}, base_url={self.base_url!r}, "
            f"api_key={_mask(self._api_key)!r}, transport={self.transport!r}, "
            f"max_concurrency={self.max_concurrency}, timeout={self.timeout:g}, "
            f"deadline={self.deadline:g}, max_retries={self.retry_policy.max_retries}{limits})"
        )

    _transient = (*PerLoopSessions._transient, "_frames")

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._frames = {}

    # -- per-loop client -----------------------------------------------------------------------

    def _new_client(self) -> Client:
        if self.transport == "direct":
            base = (self.base_url or f"https://{_OPENAI_HOST}/v1").rstrip("/")
            headers = {
                "Authorization": f"Bearer {self._api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            }
            url = endpoint(base, "chat/completions")
            return json_poster(url, headers, pool=self.max_concurrency, who=self.model)
        return SdkClient(self, endpoint=self.base_url or _OPENAI_HOST)

    def _pool_size(self) -> int:
        return self.max_concurrency

    # -- the call ------------------------------------------------------------------------------

    def _build_body(self, messages: Sequence[Message], p: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m if type(m) is dict else dict(m) for m in messages],
            "temperature": p.temperature,
            "max_tokens": p.max_tokens,
        }
        if p.logprobs or p.top_logprobs:
            body["logprobs"] = True
            if p.top_logprobs:
                body["top_logprobs"] = p.top_logprobs
        fmt = p.response_format
        if fmt == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif fmt == "json_schema":
            if not p.json_schema:
                raise ConfigError("response_format='json_schema' needs SamplingParams.json_schema")
            body["response_format"] = {"type": "json_schema", "json_schema": dict(p.json_schema)}
        elif fmt != "text":
            raise ConfigError(f"unknown response_format {fmt!r}")
        if p.seed is not None:
            body["seed"] = p.seed
        if self.extra_body:
            body.update(self.extra_body)
        return body

    async def achat(
        self, messages: Sequence[Message], params: SamplingParams | None = None
    ) -> ChatResult:
        """Ask the judge; return its answer, or raise a :class:`JudgeError` subclass.

        Args:
            messages: the chat, ``[{"role": ..., "content": ...}, ...]``.
            params: sampling settings; ``None`` uses ``default_params``.

        Raises:
            JudgeTimeout: an attempt timed out on the last try, or the deadline passed.
            JudgeRateLimited: 429 on every try (``retry_after`` from the last one).
            JudgeConnectionError: the endpoint could not be reached.
            JudgeHTTPError: a non-retryable status (at once), a 5xx on every try, or a body that
                is not a chat completion (``status=None``; an error body sent with HTTP 200
                too).
            JudgeError: the judge refused to answer (``message.refusal``); not retried, since it
                would refuse again. An answer a content filter withheld comes back with empty
                text and ``finish_reason="content_filter"``, which the judge grader refuses.
            ConfigError: the params ask for ``json_schema`` without a schema.
        """
        p = self.default_params if params is None else params
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        state = self._states.get(loop) or await self._loop_state(loop)
        frame = self._frames.get(id(p))
        if (
            frame is None
            or frame[0] is not p
            or frame[1] != self.model
            or frame[2] != self.extra_body
        ):
            # Everything but the messages is the same for every call with these params (a
            # grader passes one params object, and the graders sharing this model each theirs):
            # build it, and its encoding, once per params object, model name and extra body
            # (either may be set after the first call). An entry keeps its params alive, so no
            # other object can take its id while it is kept.
            if len(self._frames) >= _FRAMES_KEPT:
                self._frames.clear()
            fields = self._build_body((), p)
            extra = copy.deepcopy(self.extra_body)
            frame = (p, self.model, extra, fields, ChatBody.frame_of(fields))
            self._frames[id(p)] = frame
        body = ChatBody.framed(frame[3], frame[4])
        body["messages"] = [m if type(m) is dict else dict(m) for m in messages]
        cost = 0.0
        if self.limiter is not None and self.limiter.tpm:
            chars = sum(len(c) for m in body["messages"] if isinstance(c := m.get("content"), str))
            cost = chars / 4 + p.max_tokens
        deadline = loop.time() + self.deadline
        # The first attempt is made here, not through retry_async: nearly every call succeeds
        # at once, and the retry loop's coroutine and closure were a share of each call's CPU.
        # A first failure goes to retry_async as its attempt 1 (``failed_first``), so what is
        # retried, when, and what is raised are retry_async's.
        try:
            return await self._attempt(state, loop, body, cost, deadline, 1, started)
        except JudgeError as exc:
            first = exc

        async def attempt(n: int) -> ChatResult:
            return await self._attempt(state, loop, body, cost, deadline, n, started)

        return await retry_async(
            attempt, self.retry_policy, deadline=deadline, clock=loop.time, failed_first=first
        )

    async def _attempt(
        self,
        state: LoopState,
        loop: asyncio.AbstractEventLoop,
        body: dict[str, Any],
        cost: float,
        deadline: float,
        n: int,
        started: float,
    ) -> ChatResult:
        limiter = self.limiter
        if limiter is not None and not await limiter.acquire(cost, max_wait=deadline - loop.time()):
            raise JudgeTimeout(
                f"{self.model}: waiting for the rate limit would pass the "
                f"{self.deadline:g} s deadline",
                attempts=n,
            )
        slots = state.slots
        if not slots.try_acquire():  # all connections busy: wait for one, within the deadline
            try:
                async with asyncio.timeout_at(deadline):
                    await slots.acquire()
            except TimeoutError:
                raise JudgeTimeout(
                    f"{self.model}: no free connection within the {self.deadline:g} s deadline",
                    attempts=n,
                ) from None
        try:
            content = await state.client.post(
                body, n, until=min(deadline, loop.time() + self.timeout)
            )
        except TimeoutError:
            raise self._timeout(loop, deadline, n) from None
        finally:
            slots.release()
        result = self._parse(content, n, started)
        if cost and limiter is not None and result.usage.total_tokens:
            limiter.settle(cost, result.usage.total_tokens)
        return result

    def _timeout(self, loop: asyncio.AbstractEventLoop, deadline: float, n: int) -> JudgeTimeout:
        if loop.time() >= deadline - 1e-3:
            return JudgeTimeout(
                f"{self.model}: no answer within the {self.deadline:g} s deadline", attempts=n
            )
        return JudgeTimeout(f"{self.model}: no answer within {self.timeout:g} s", attempts=n)

    def _http_error(self, status: int, detail: str, headers: Any, n: int) -> JudgeError:
        return http_error(self.model, status, detail, headers, n)

    def _parse(self, content: bytes, n: int, started: float) -> ChatResult:
        """The chat completion in ``content``, its ``latency_s`` the time since ``started``:
        the call's result is built once, here."""
        try:
            data = _json_body(content)
            choice, text = _choice_text(data)
            if text is None:
                refusal = choice["message"].get("refusal")
                raise JudgeError(
                    f"{self.model}: the judge refused to answer: {refusal!r:.300}", attempts=n
                )
            usage = data.get("usage") or {}
            logprobs = None
            lp = choice.get("logprobs")
            if lp and lp.get("content") is not None:
                logprobs = tuple(
                    TokenLogprob(
                        _sampled_token(t["token"]),
                        float(t["logprob"]),
                        tuple(
                            (a["token"], float(a["logprob"])) for a in t.get("top_logprobs") or ()
                        ),
                    )
                    for t in lp["content"]
                )
            return ChatResult(
                text=text,
                model=data.get("model") or self.model,
                usage=Usage(
                    int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
                ),
                logprobs=logprobs,
                latency_s=time.perf_counter() - started,
                finish_reason=choice.get("finish_reason"),
                attempts=n,
            )
        except (
            ValueError,
            LookupError,
            TypeError,
            AttributeError,
            ArithmeticError,  # a token count of 1e400, a logprob of 10**400
            RecursionError,  # a body nested past the parser's depth
        ) as exc:
            why = str(exc) if isinstance(exc, _Malformed) else f"{type(exc).__name__}: {exc}"
            raise JudgeHTTPError(
                f"{self.model}: malformed chat completion ({why}); "
                f"body starts {bytes(content[:120])!r}",
                attempts=n,
                status=None,
            ) from exc


_decode_json = json.JSONDecoder().decode


def _json_body(content: bytes) -> Any:
    """``json.loads(content)``, without its encoding detection where the answer is as good as
    certain: a body that opens with ``{`` and a second byte that is no NUL is UTF-8 to
    ``json.detect_encoding`` (no byte-order mark starts with ``{``, and only a NUL in the first
    two bytes says UTF-16 or UTF-32), so it is decoded as ``json.loads`` then decodes it. Any
    other body, a BOM or a UTF-16 one included, goes through ``json.loads`` itself, errors and
    all."""
    if content[:1] == b"{" and content[1:2] != b"\x00":
        return _decode_json(content.decode("utf-8", "surrogatepass"))
    return json.loads(content)


class _Malformed(ValueError):
    """The body is not a chat completion: its message says how, in words."""


def _sampled_token(value: Any) -> str:
    """A generated token's text. Not text (``null``), the logprobs cannot be lined up with the
    answer, and a verdict reading them failed as an internal error; an alternative that is not
    text is left to the verdict reader, which drops it as no evidence."""
    if not isinstance(value, str):
        raise _Malformed(f"a logprob entry's token is {value!r:.40}, not text")
    return value


def _choice_text(data: Any) -> tuple[dict[str, Any], str | None]:
    """The first choice of a completion body and its answer text: ``None`` when the judge
    refused (``message.refusal``), ``""`` when a content filter withheld the answer (the grader
    reads ``finish_reason`` and says so, for cached answers too).

    Why each shape is named: a ``TypeError`` on ``None`` or an ``IndexError`` told the user
    nothing of a refusal, of an error body sent with HTTP 200, or of content given as a list of
    parts, which this client does not read (it takes the judge's answer as plain text).

    Raises:
        _Malformed: the body is no completion, or its answer is no text.
    """
    if not isinstance(data, dict):
        raise _Malformed(f"the body is a JSON {type(data).__name__}, not an object")
    choices = data.get("choices")
    if choices is None and "error" in data:
        error = data["error"]
        detail = error.get("message", error) if isinstance(error, dict) else error
        raise _Malformed(f"HTTP 200 with an error instead of a completion: {detail!r:.300}")
    if not isinstance(choices, list) or not choices:
        raise _Malformed(f"no choices in the completion (choices: {choices!r:.100})")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise _Malformed(f"the first choice has no message: {choice!r:.100}")
    if message.get("refusal"):
        return choice, None
    text = message.get("content")
    if text is None and choice.get("finish_reason") == "content_filter":
        return choice, ""
    if isinstance(text, list):
        kinds = ", ".join(sorted({str(p.get("type")) for p in text if isinstance(p, dict)}))
        raise _Malformed(
            f"the message content is a list of {len(text)} part(s) ({kinds or 'untyped'}), "
            "not the plain text this client reads"
        )
    if not isinstance(text, str):
        raise _Malformed(f"the message content is {text!r}, not text, and there is no refusal")
    return choice, text
