"""Where a training integration gets its grades: this process, or a running ``rm-service serve``.

Both backends answer the same question, ``await backend.agrade(records) -> list[RecordResult]``
in input order, so every shim (TRL, verl, OpenRLHF) is written once over either. The remote
backend rebuilds :class:`RecordResult` objects from ``POST /grade``'s JSON, so an unscored
component arrives as the same :class:`GraderError` (kind and reason) it was on the server.

Why the remote client is shaped this way:

* **A failed batch is unscored, never zeros.** After its retries, a chunk that still fails comes
  back as records whose every component is a :class:`GraderError` (kind ``judge_error``) saying
  what failed; the failure is logged at WARNING. A trainer then masks those samples.
* **One short-lived ``httpx.AsyncClient`` per call.** Training loops call from whatever loop
  they own (TRL's background thread, verl's per-worker loops, ``asyncio.run`` per call in
  OpenRLHF's thread); a client bound to one loop breaks on the next. The TLS context, the
  expensive part of a new client, is built once and shared. Chunks of a batch share the client.
* **Retries reuse the judge policy** (:mod:`rm_service.models._retry`): 429 (honouring
  ``Retry-After``), 5xx, timeouts and refused connections are retried with jittered backoff;
  other 4xx are not (the batch is wrong, asking again gives the same answer).
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import httpx

from rm_service._config import RewardConfig, build_runner, load_config
from rm_service._exceptions import ConfigError
from rm_service._result import GraderError, RecordResult
from rm_service._runner import GradingRunner
from rm_service._wire import record_from_json
from rm_service.models._base import (
    JudgeConnectionError,
    JudgeError,
    JudgeHTTPError,
    JudgeRateLimited,
    JudgeTimeout,
)
from rm_service.models._body import escape_surrogates, scrub_surrogates
from rm_service.models._retry import RetryPolicy, retry_after_from_headers, retry_async

__all__ = ["Backend", "LocalBackend", "RemoteBackend", "RewardSource", "as_backend", "jsonable"]

logger = logging.getLogger("rm_service.integrations")

RewardSource = GradingRunner | RewardConfig | str | Path | Mapping[str, Any]


class Backend(Protocol):
    """Grades records; knows its reward's name and component names."""

    async def agrade(self, records: Sequence[Mapping[str, Any]]) -> list[RecordResult]: ...

    def describe(self) -> tuple[str, list[str], list[str]]:
        """``(reward component, grader names, every component name)``."""
        ...


class LocalBackend:
    """Grades in this process with a :class:`GradingRunner` (built from a config if given one)."""

    def __init__(self, source: RewardSource) -> None:
        if isinstance(source, GradingRunner):
            self.runner = source
        else:
            cfg = source if isinstance(source, RewardConfig) else load_config(_plain(source))
            self.runner = build_runner(cfg)

    def __repr__(self) -> str:
        return f"LocalBackend(reward={self.runner.reward_name!r}, components={self.runner.names})"

    async def agrade(self, records: Sequence[Mapping[str, Any]]) -> list[RecordResult]:
        return await self.runner.agrade(records)

    def describe(self) -> tuple[str, list[str], list[str]]:
        return self.runner.reward_name, list(self.runner.grader_configs), list(self.runner.names)


def _plain(source: Any) -> str | Path | dict[str, Any]:
    return source if isinstance(source, str | Path) else dict(source)


def as_backend(source: RewardSource | Backend) -> Backend:
    """``source`` itself when it already grades, else a :class:`LocalBackend` over it."""
    if hasattr(source, "agrade") and hasattr(source, "describe"):
        return source
    return LocalBackend(source)


@cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle is slow next to a request: once per process, not once per client.
    return ssl.create_default_context()


class RemoteBackend:
    """Grades through ``POST {url}/grade`` of a running rm-service.

    Args:
        url: the service root, e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``Authorization: Bearer``; default none.
        reward: which configured reward to use; default the service's default.
        batch_size: records per request (a chunk the service refuses as too large, over its
            ``max_records`` or body limit, is halved until it fits); the chunks of
            one call are sent concurrently.
        timeout: seconds one request may take; the service is asked to finish grading a little
            before it (its per-request ``deadline``), so slow components come back unscored
            with kind ``timeout`` rather than the whole chunk failing.
        retries: retries per chunk after the first attempt.
        backoff: the backoff scale in seconds (full jitter, doubling per retry).
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
        backoff: float = 0.5,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"url must start with http:// or https://, got {url!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size!r}")
        if not (isinstance(timeout, int | float) and 0 < timeout < math.inf):
            # inf was accepted, and every call then failed sending the deadline inf * 0.9
            raise ConfigError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        self.url = url.rstrip("/")
        self.reward = reward
        self.batch_size = batch_size
        self.timeout = timeout
        self.policy = RetryPolicy(max_retries=retries, base_delay=backoff, malformed_retries=0)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._described: tuple[str, list[str], list[str]] | None = None
        self.reward_description: dict[str, Any] | None = None
        """The reward's ``GET /graders`` entry (aggregators, weights), once described."""
        self._lock = threading.Lock()
        self._queued: dict[asyncio.AbstractEventLoop, list[tuple[list[Any], asyncio.Future[Any]]]]
        self._queued = {}
        self._sending: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"RemoteBackend(url={self.url!r}, reward={self.reward!r})"

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            headers=self._headers,
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            verify=_tls_context(),
            trust_env=False,
        )

    def describe(self) -> tuple[str, list[str], list[str]]:
        """The reward's component names, from ``GET /graders`` (fetched once).

        Raises:
            ConfigError: the service cannot be reached or has no such reward.
        """
        with self._lock:
            if self._described is None:
                self._described = self._fetch_description()
            return self._described

    def _fetch_description(self) -> tuple[str, list[str], list[str]]:
        try:
            resp = httpx.get(
                f"{self.url}/graders",
                headers=self._headers,
                timeout=min(self.timeout, 10.0),
                verify=_tls_context(),
                trust_env=False,
            )
            resp.raise_for_status()
            body = resp.json()
            name = self.reward or body["default"]
            desc = body["rewards"][name]
        except KeyError:
            raise ConfigError(f"{self.url} has no reward {self.reward!r}") from None
        except (httpx.HTTPError, ValueError) as exc:
            raise ConfigError(f"cannot describe {self.url}/graders: {exc}") from exc
        graders = list(desc["graders"])
        names = [*graders, *(a["name"] for a in desc["aggregators"])]
        self.reward_description = desc
        return desc["reward"], graders, names

    async def agrade(self, records: Sequence[Mapping[str, Any]]) -> list[RecordResult]:
        """Grade ``records`` (indexes 0..n-1), sharing requests with concurrent callers.

        Calls made on one event loop in the same turn (verl's reward loop gathers one
        ``compute_score`` per sample) are coalesced: their records go out together, in
        ``batch_size`` chunks, and each caller gets its own slice back. Without this, every
        sample would be one HTTP request on a new connection.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[list[RecordResult]] = loop.create_future()
        with self._lock:
            queued = self._queued.get(loop)
            if queued is None:
                queued = self._queued[loop] = []
                loop.call_soon(self._flush, loop)
            queued.append((list(records), waiter))
        return await waiter

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            queued = self._queued.pop(loop, [])
        task = loop.create_task(self._send(queued))
        self._sending.add(task)  # a reference until done: the loop keeps only weak ones
        task.add_done_callback(self._sending.discard)

    async def _send(self, queued: list[tuple[list[Any], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._grade_now([rec for records, _ in queued for rec in records])
        except BaseException as exc:  # a bug or cancellation: every caller hears of it
            for _, waiter in queued:
                if not waiter.done():
                    waiter.set_exception(exc)
            raise
        start = 0
        for records, waiter in queued:
            part = results[start : start + len(records)]
            start += len(records)
            if not waiter.done():  # the caller may have been cancelled meanwhile
                waiter.set_result([r.model_copy(update={"index": i}) for i, r in enumerate(part)])

    async def _grade_now(self, records: list[Mapping[str, Any]]) -> list[RecordResult]:
        if self._described is None:
            try:
                await asyncio.to_thread(self.describe)
            except ConfigError as exc:
                logger.warning(
                    "rm-service %s: %d records unscored: %s", self.url, len(records), exc
                )
                return [self._failed(i, rec, str(exc)) for i, rec in enumerate(records)]
        chunks = [
            (start, records[start : start + self.batch_size])
            for start in range(0, len(records), self.batch_size)
        ]
        async with self._client() as client:
            parts = await asyncio.gather(*(self._chunk(client, s, c) for s, c in chunks))
        return [rec for part in parts for rec in part]

    async def _chunk(
        self, client: httpx.AsyncClient, start: int, records: list[Mapping[str, Any]]
    ) -> list[RecordResult]:
        body: dict[str, Any] = {
            "records": jsonable(records),
            "deadline": self.timeout * 0.9,
            "include_metadata": True,  # a remote reward gives what a local one gives
        }
        if self.reward is not None:
            body["reward"] = self.reward
        deadline = time.monotonic() + self.timeout * (self.policy.max_retries + 1)

        async def attempt(n: int) -> list[RecordResult]:
            return self._parse(await self._post(client, body, n), start, len(records))

        try:
            return await retry_async(attempt, self.policy, deadline=deadline)
        except JudgeError as exc:
            if getattr(exc, "status", None) == 413 and len(records) > 1:
                # Too large for the service (its body or record limit): halves, each alone. A
                # chunk of long completions, which verl merges from per-sample calls, lost
                # every record to one 413.
                mid = len(records) // 2
                first, second = await asyncio.gather(
                    self._chunk(client, start, records[:mid]),
                    self._chunk(client, start + mid, records[mid:]),
                )
                return first + second
            logger.warning(
                "rm-service %s: records %d..%d unscored after %d attempt(s): %s",
                self.url,
                start,
                start + len(records) - 1,
                exc.attempts,
                exc,
            )
            return [self._failed(start + i, rec, str(exc)) for i, rec in enumerate(records)]

    async def _post(self, client: httpx.AsyncClient, body: dict[str, Any], n: int) -> Any:
        try:
            # httpx's timeout bounds each read, not the request: a server that trickles a byte
            # now and then held a training step for as long as it liked.
            async with asyncio.timeout(self.timeout):
                resp = await client.post(f"{self.url}/grade", json=body)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise JudgeTimeout(f"no answer within {self.timeout} s", attempts=n) from exc
        except httpx.TransportError as exc:
            raise JudgeConnectionError(f"cannot reach {self.url}: {exc!r}", attempts=n) from exc
        except httpx.HTTPError as exc:  # a broken body, redirect loops: not worth retrying
            raise JudgeHTTPError(f"{type(exc).__name__}: {exc}", attempts=n) from exc
        if resp.status_code == 429:
            raise JudgeRateLimited(
                f"HTTP 429: {resp.text[:200]}",
                attempts=n,
                retry_after=retry_after_from_headers(resp.headers),
            )
        if resp.status_code != 200:
            raise JudgeHTTPError(
                f"HTTP {resp.status_code}: {resp.text[:300]}", attempts=n, status=resp.status_code
            )
        try:
            return resp.json()
        except ValueError as exc:
            raise JudgeHTTPError(f"response is not JSON: {exc}", attempts=n) from exc

    def _parse(self, body: Any, start: int, n: int) -> list[RecordResult]:
        reward_name = self.describe()[0]  # cached by agrade
        try:
            results = body["results"]
            if len(results) != n:
                raise ValueError(f"{len(results)} results for {n} records")
            return [record_from_json(r, start + i, reward_name) for i, r in enumerate(results)]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # A 200 that is not a /grade response is a broken or foreign server: not retried.
            # (AttributeError: "results" holding a string or "scores" a list crashed TRL's step.)
            raise JudgeHTTPError(f"malformed /grade response: {exc!r}", status=200) from exc

    def _failed(self, index: int, record: Mapping[str, Any], why: str) -> RecordResult:
        reward_name, _, names = self._described or ("reward", [], ["reward"])
        error = f"rm-service {self.url}: {why}"
        return RecordResult(
            index=index,
            id=record.get("id"),
            reward_name=reward_name,
            components={n: GraderError(name=n, error=error, kind="judge_error") for n in names},
        )


_SKIP = object()


def jsonable(value: Any) -> Any:
    """``value`` in plain JSON types, dropping what has no JSON form (a tokenizer, a client).

    numpy and torch values become numbers and lists (``.tolist()``), tuples lists, keys strings,
    a lone surrogate in a string U+FFFD (UTF-8 has no form for it), and NaN or infinite floats
    ``None`` (a missing value, as pandas and parquet mean it; JSON has no NaN). A list holding
    something unrepresentable is dropped whole rather than silently shortened. Used on every
    record sent to a service, so a record means the same there.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if type(value) is str:  # a lone surrogate as U+FFFD: the request failed to encode
        return value if value.isascii() else scrub_surrogates(value)
    if value is None or type(value) in (bool, int, float):
        return value
    if isinstance(value, str):  # a subclass (numpy.str_, a str Enum): its plain text
        return jsonable(str.__str__(value))
    if isinstance(value, int | float):  # a subclass (numpy.float64, IntEnum): the plain number
        return float(value) if isinstance(value, float) else int(value)
    if isinstance(value, Mapping):
        # A key's lone surrogate as its escape, not U+FFFD: keys that differ only there
        # ("a\ud800", "a\udfff") stay two keys, where U+FFFD made them one and lost a value.
        items = ((escape_surrogates(str(k)), jsonable(v)) for k, v in value.items())
        return {k: v for k, v in items if v is not _SKIP}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        # Any sequence, not only lists and tuples: verl hands over OmegaConf's ListConfig.
        out = [jsonable(v) for v in value]
        return _SKIP if any(v is _SKIP for v in out) else out
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        try:
            return jsonable(tolist())
        except Exception:
            return _SKIP
    return _SKIP
