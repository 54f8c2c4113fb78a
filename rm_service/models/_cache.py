"""``JudgeCache``: content-addressed judge answers, in memory and optionally in SQLite or a
shared store (Redis, :mod:`rm_service.models._redis`).

Why: GRPO samples several completions per prompt and the policy often repeats itself, so a batch
holds many identical (prompt, completion) pairs; re-grading a dataset after a crash or a config
tweak repeats every call. A judge at temperature 0 gives the same answer to the same messages, so
the answer is cached under a digest of everything that determines it and served without a call.

Design points:

* **The key** is the sha256 of (namespace, model name, messages, sampling params), serialised as
  canonical JSON. The judge grader passes its own name as the namespace and renders the messages
  with a fixed placeholder in place of its per-request fence nonce, so the random nonce does not
  defeat the cache (see ``graders._judge``).
* **Only successes are cached.** A backend failure raises and leaves nothing behind; the next
  request tries again. An answer the caller's ``keep`` refuses (an unparseable verdict) is not
  stored, and one read back from the file or the store is put to ``keep`` as a fresh one is.
* **Concurrent identical requests coalesce**: the first becomes the owner and calls the judge;
  the others await its outcome instead of calling too. Futures are per event loop (a future can
  only be awaited on its own loop), so two loops in two threads each make at most one call. If the
  owner is cancelled (a record's deadline), a waiter takes over rather than inheriting the
  cancellation; if the owner's call fails, the waiters share that failure (one failed call, not a
  stampede of retries).
* **Thread-safe, loop-agnostic**: plain ``threading.Lock``\\ s guard the LRU, the counters and the
  in-flight map; nothing is created on an event loop at construction.
* **SQLite I/O runs in a worker thread** (``asyncio.to_thread``). On a local disk a read or a
  committed write is cheaper than the thread hop, but a write can wait up to the busy timeout
  for another process's lock on a shared file, and reads share the connection lock with writes,
  so inline I/O could stall every grader on the loop behind one slow write. The hop is noise
  where it happens: a read only follows an in-memory miss, right before a judge call that takes
  milliseconds to seconds, and a write follows such a call. WAL mode lets several processes
  share the file with readers never blocking writers.
* **A failing file is dropped, never a verdict.** The cache is an optimisation: a corrupt file
  (found at open or on a later read), a full disk or a vanished directory must not turn paid
  judge answers into errors. On the first error of any kind from the file, the cache logs one
  warning naming the file and the error, closes it, and serves from memory alone for the rest of
  its life; the call whose write failed still returns its answer, so every real call is kept
  and counted. The file itself is left as it was, for the user to inspect or delete. Stored
  values and keys are escaped so that no text (a lone surrogate included) can fail to encode.
* **A shared store** (a :class:`Store`, e.g. Redis for replicas behind a load balancer) is the
  alternative to the file: the memory LRU stays in front of it and coalescing stays per loop, so
  a replica asks the store once per key it has not seen, and a verdict any replica paid for is
  a hit on all of them. The store owns its failures (it never raises; it counts them, and may
  come back, unlike a file): a failed read is a miss, so the judge is called; a failed write
  still returns the answer.
* **Results come back with** ``cached=True``, ``attempts=0`` and ``latency_s`` set to the time
  this request waited (near zero for a hit, the remaining call time for a coalesced waiter);
  ``text``, ``logprobs``, ``usage`` and ``model`` are the stored call's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from rm_service.models._base import ChatResult, Message, SamplingParams, TokenLogprob, Usage

__all__ = ["JudgeCache", "Store", "decode_result", "encode_result", "kept", "key_frame", "key_of"]

logger = logging.getLogger(__name__)

_KEY_VERSION = 2  # bump when the key or the stored format changes: old entries then just miss


class _OwnerCancelled:
    """Marker outcome: the owning request was cancelled, so a waiter should call itself."""


_CANCELLED = _OwnerCancelled()
_Outcome = tuple[ChatResult | None, BaseException | None] | _OwnerCancelled


class Store(Protocol):
    """A shared tier behind the memory LRU. Its methods never raise on a backend failure (a
    failed ``get`` is a miss, a failed ``put`` is skipped): the cache is an optimisation."""

    backend: str
    """A short name for metrics and logs (``redis``)."""

    @property
    def description(self) -> str:
        """Where it stores, safe to log (no password)."""
        ...

    async def get(
        self, key: str, keep: Callable[[ChatResult], bool] | None = None
    ) -> ChatResult | None:
        """The stored answer for ``key``, or ``None``. ``keep`` is the caller's test of a fresh
        answer: a stored one it refuses is returned as ``None`` and counted as a miss, since
        the store's hit counts are what ``/metrics`` reports and the judge is called for it."""
        ...

    async def put(self, key: str, result: ChatResult) -> None: ...

    def stats(self) -> dict[str, int]: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


class JudgeCache:
    """An LRU of judge answers keyed by content, with an optional SQLite file behind it.

    Share one instance between graders, tasks, threads and event loops.

    Args:
        max_entries: how many answers the in-memory LRU keeps. The SQLite file is not bounded
            (delete it to reset).
        path: an SQLite file to persist answers across processes; ``None`` for memory only. The
            file and its parent directory are created on first use. If the file fails (corrupt,
            disk full, unwritable), the cache warns once and goes on in memory only.
        store: a shared :class:`Store` (e.g. :class:`~rm_service.models._redis.RedisStore`)
            instead of the file.
    """

    def __init__(
        self,
        max_entries: int = 100_000,
        path: str | Path | None = None,
        *,
        store: Store | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if path is not None and store is not None:
            raise ValueError("pass a path or a store, not both")
        self.store = store
        self.max_entries = max_entries
        self.path = Path(path).expanduser() if path is not None else None
        self._lock = threading.Lock()
        self._lru: OrderedDict[str, ChatResult] = OrderedDict()
        self._inflight: dict[tuple[str, asyncio.AbstractEventLoop], asyncio.Future[_Outcome]] = {}
        self._hits = 0
        self._misses = 0
        self._coalesced = 0
        self._db_lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._file_error: str | None = None

    @property
    def file_error(self) -> str | None:
        """Why the SQLite file was given up (the cache then runs in memory only); ``None`` while
        it works or when there is no file."""
        return self._file_error

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "memory"
        if self.store is not None:
            where = f"{self.store.backend}:{self.store.description}"
        return f"JudgeCache(max_entries={self.max_entries}, path={where!r})"

    # -- keys --

    @staticmethod
    def make_key(
        namespace: str, model: str, messages: Sequence[Message], params: SamplingParams
    ) -> str:
        """The content address of one judge call: a sha256 hex digest.

        It is the sha256 of ``json.dumps([version, namespace, model, [[role, content], ...],
        {param: value}], sort_keys=True, ensure_ascii=False)``; :func:`key_frame` and
        :func:`key_of` build that same text from a per-grader frame and the messages.

        Args:
            namespace: who asks (the grader's name), so two graders never share answers by accident.
            model: the backend's model name.
            messages: the chat messages exactly as they determine the answer.
            params: the sampling parameters (all of them: a different ``max_tokens`` or
                ``top_logprobs`` is a different answer).
        """
        return key_of(key_frame(namespace, model, params), messages)

    # -- the async entry point --

    async def get_or_call(
        self,
        key: str,
        call: Callable[[], Awaitable[ChatResult]],
        keep: Callable[[ChatResult], bool] | None = None,
    ) -> ChatResult:
        """Return the cached answer for ``key``, or await ``call()`` once and cache its result.

        Concurrent requests for the same key on the same event loop share one ``call()``.
        ``keep``: whether an answer is worth storing; one it refuses (a verdict that does not
        parse, an answer cut short) is handed to the callers waiting on it and not stored, so
        the next request asks the judge again rather than replaying the failure for ever. An
        answer read back from the file or the shared store is put to ``keep`` too, as a fresh
        one is: one it refuses (stored by another version or another writer) is a miss, and the
        judge's fresh answer replaces it.

        Raises:
            Whatever ``call()`` raises (nothing is cached then).
        """
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        while True:
            hit = self._memory_get(key)
            if hit is None and self._uses_file():
                hit = kept(await asyncio.to_thread(self._db_get, key), keep)
                if hit is not None:
                    self._memory_put(key, hit)
            if hit is not None:
                with self._lock:
                    self._hits += 1
                return _as_cached(hit, started)
            fut, owner = self._claim(key, loop)
            if owner and self.store is not None:
                # Ask the shared store as the owner only: concurrent identical requests on this
                # loop wait for this one read (and the call, on a miss), not one read each.
                try:
                    hit = await self.store.get(key, keep)
                except asyncio.CancelledError:
                    self._release(key, loop, fut, _CANCELLED)
                    raise
                if hit is not None:
                    self._memory_put(key, hit)
                    self._release(key, loop, fut, (hit, None))
                    with self._lock:
                        self._hits += 1
                    return _as_cached(hit, started)
            if owner:
                return await self._own(key, loop, fut, call, started, keep)
            outcome = await asyncio.shield(fut)
            if isinstance(outcome, _OwnerCancelled):
                continue  # the owner gave up; look again, and call ourselves if still missing
            result, error = outcome
            if error is not None:
                raise error
            assert result is not None
            with self._lock:
                self._hits += 1
                self._coalesced += 1
            return _as_cached(result, started)

    def _claim(
        self, key: str, loop: asyncio.AbstractEventLoop
    ) -> tuple[asyncio.Future[_Outcome], bool]:
        """The in-flight future for ``key`` on ``loop``, and whether the caller now owns it."""
        with self._lock:
            fut = self._inflight.get((key, loop))
            if fut is not None:
                return fut, False
            fut = loop.create_future()
            self._inflight[(key, loop)] = fut
            return fut, True

    async def _own(
        self,
        key: str,
        loop: asyncio.AbstractEventLoop,
        fut: asyncio.Future[_Outcome],
        call: Callable[[], Awaitable[ChatResult]],
        started: float,
        keep: Callable[[ChatResult], bool] | None = None,
    ) -> ChatResult:
        # Re-check under ownership: another request may have stored the answer between our miss
        # and our claim, and a second call would be wasted.
        hit = self._memory_get(key)
        if hit is not None:
            self._release(key, loop, fut, (hit, None))
            with self._lock:
                self._hits += 1
            return _as_cached(hit, started)
        with self._lock:
            self._misses += 1
        try:
            result = await call()
        except asyncio.CancelledError:
            self._release(key, loop, fut, _CANCELLED)
            raise
        except BaseException as exc:
            self._release(key, loop, fut, (None, exc))
            raise
        if not _keeps(keep, result):
            self._release(key, loop, fut, (result, None))
            return result
        self._memory_put(key, result)
        if self._uses_file() or self.store is not None:
            try:
                if self.store is not None:
                    await self.store.put(key, result)
                else:
                    await asyncio.to_thread(self._db_put, key, result)
            except asyncio.CancelledError:
                self._release(key, loop, fut, (result, None))
                raise
        self._release(key, loop, fut, (result, None))
        return result

    def _release(
        self,
        key: str,
        loop: asyncio.AbstractEventLoop,
        fut: asyncio.Future[_Outcome],
        outcome: _Outcome,
    ) -> None:
        with self._lock:
            if self._inflight.get((key, loop)) is fut:
                del self._inflight[(key, loop)]
        if not fut.done():
            # A result, never an exception: an exception nobody awaits would be logged as
            # "never retrieved" when the future is collected.
            fut.set_result(outcome)

    # -- synchronous access --

    def get(self, key: str) -> ChatResult | None:
        """The cached answer for ``key`` (memory, then the file), without counting a hit or miss.

        Blocking when a file is configured; from async code prefer :meth:`get_or_call`. A
        shared store is not consulted here (it is asynchronous): memory and file only.
        """
        hit = self._memory_get(key)
        if hit is None and self._uses_file():
            hit = self._db_get(key)
            if hit is not None:
                self._memory_put(key, hit)
        return None if hit is None else dataclasses.replace(hit, cached=True)

    def put(self, key: str, result: ChatResult) -> None:
        """Store ``result`` under ``key`` (memory and file; not a shared store, which is
        asynchronous). Blocking when a file is configured."""
        self._memory_put(key, result)
        if self._uses_file():
            self._db_put(key, result)

    def stats(self) -> dict[str, Any]:
        """Counters since construction (or :meth:`clear`).

        ``hits`` counts every request served without a call (memory, file, or coalesced onto an
        in-flight call; ``coalesced`` is that last part); ``misses`` counts calls made.
        When a shared store is configured, ``store`` holds its own counts (hits, misses,
        errors and skips per operation).
        """
        with self._lock:
            total = self._hits + self._misses
            out: dict[str, Any] = {
                "hits": self._hits,
                "misses": self._misses,
                "coalesced": self._coalesced,
                "hit_rate": self._hits / total if total else 0.0,
                "entries": len(self._lru),
                "in_flight": len(self._inflight),
            }
        if self.store is not None:
            out["store"] = self.store.stats()
        return out

    def clear(self) -> None:
        """Forget every in-memory answer and reset the counters (the file is left alone)."""
        with self._lock:
            self._lru.clear()
            self._hits = self._misses = self._coalesced = 0

    def close(self) -> None:
        """Close the SQLite connection (it reopens on next use, unless the file was given up),
        and the shared store's connections as far as that can be done without awaiting (prefer
        :meth:`aclose` from async code)."""
        self._close_file()
        if self.store is not None:
            self.store.close()

    async def aclose(self) -> None:
        """Close the file and the shared store's connections of this event loop (both reopen on
        next use; a store's connections belong to their loop, so each loop closes its own)."""
        self._close_file()
        if self.store is not None:
            await self.store.aclose()

    def _close_file(self) -> None:
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- memory --

    def _memory_get(self, key: str) -> ChatResult | None:
        with self._lock:
            hit = self._lru.get(key)
            if hit is not None:
                self._lru.move_to_end(key)
            return hit

    def _memory_put(self, key: str, result: ChatResult) -> None:
        stored = dataclasses.replace(result, cached=False)
        with self._lock:
            self._lru[key] = stored
            self._lru.move_to_end(key)
            while len(self._lru) > self.max_entries:
                self._lru.popitem(last=False)

    # -- SQLite (called from worker threads) --

    def _uses_file(self) -> bool:
        # Read without a lock: a stale True only costs a hop to _db_get/_db_put, which look again.
        return self.path is not None and self._file_error is None

    def _connection(self) -> sqlite3.Connection:
        # Caller holds _db_lock: one connection, used by one thread at a time.
        if self._db is None:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            try:
                db.isolation_level = None  # autocommit: each put is its own short transaction
                with contextlib.suppress(sqlite3.OperationalError):  # e.g. a read-only medium
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=NORMAL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS judge_cache "
                    "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
                )
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _give_up_file(self, exc: Exception) -> None:
        """Drop the file after its first error: warn once, close it, run in memory from now on."""
        # Caller holds _db_lock.
        if self._file_error is not None:
            return
        self._file_error = f"{type(exc).__name__}: {exc}"
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = None
        logger.warning(
            "judge cache %s failed (%s); grading goes on with an in-memory cache only for the "
            "rest of this process (the file is left as it is: move or delete it to start a "
            "fresh one)",
            self.path,
            self._file_error,
        )

    def _db_get(self, key: str) -> ChatResult | None:
        with self._db_lock:
            if self._file_error is not None:
                return None
            try:
                row = (
                    self._connection()
                    .execute("SELECT value FROM judge_cache WHERE key = ?", (key,))
                    .fetchone()
                )
            except Exception as exc:  # any failure of an optional file: see the module docstring
                self._give_up_file(exc)
                return None
        if row is None:
            return None
        try:
            return decode_result(row[0])
        except (ValueError, KeyError, TypeError):
            return None  # a corrupt or foreign row is a miss, not a crash

    def _db_put(self, key: str, result: ChatResult) -> None:
        with self._db_lock:
            if self._file_error is not None:
                return
            try:
                self._connection().execute(
                    "INSERT OR REPLACE INTO judge_cache (key, value, created) VALUES (?, ?, ?)",
                    (key, encode_result(result), time.time()),
                )
            except Exception as exc:  # any failure of an optional file: see the module docstring
                self._give_up_file(exc)


def kept(stored: ChatResult | None, keep: Callable[[ChatResult], bool] | None) -> ChatResult | None:
    """``stored`` if ``keep`` would have stored it as a fresh answer, else ``None`` (a miss):
    the one test for the file here and for a shared store (:meth:`Store.get`)."""
    if stored is None or _keeps(keep, stored):
        return stored
    return None


def _keeps(keep: Callable[[ChatResult], bool] | None, result: ChatResult) -> bool:
    """Whether ``keep`` passes ``result``; one that raises refuses it (logged). It raised
    where nothing released the key's in-flight call (in a store's ``get``, or on a fresh
    answer), so every later request for that key waited for ever."""
    try:
        return keep is None or bool(keep(result))
    except Exception:
        logger.warning("judge cache: the keep test raised; the answer is not cached", exc_info=True)
        return False


def _as_cached(result: ChatResult, started: float) -> ChatResult:
    return dataclasses.replace(
        result, cached=True, attempts=0, latency_s=time.perf_counter() - started
    )


def key_frame(namespace: str, model: str, params: SamplingParams) -> tuple[str, str]:
    """The constant text around the messages in a call's key (see :meth:`JudgeCache.make_key`).

    Why: a grader's namespace, model and sampling parameters are the same for every call, so
    it builds this once and :func:`key_of` only encodes the messages.
    """
    head = json.dumps([_KEY_VERSION, namespace, model], ensure_ascii=False)[:-1]
    fields = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    tail = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=_json_default)
    return head + ", [", "], " + tail + "]"


def key_of(frame: tuple[str, str], messages: Sequence[Message]) -> str:
    """The key of a call from its :func:`key_frame` and its messages."""
    enc = _encode_str
    body = ", ".join(
        f"[{enc(str(m.get('role', '')))}, {enc(str(m.get('content', '')))}]" for m in messages
    )
    blob = frame[0] + body + frame[1]
    # surrogatepass: a lone surrogate in a message is still a key, not a crash.
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


_encode_str: Callable[[str], str] = json.encoder.encode_basestring  # json.dumps' own, for a str


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} into a cache key")


def encode_result(result: ChatResult) -> str:
    """A stored answer: JSON, ASCII only (see the module docstring)."""
    logprobs = None
    if result.logprobs is not None:
        logprobs = [[t.token, t.logprob, [list(a) for a in t.top]] for t in result.logprobs]
    return json.dumps(
        {
            "text": result.text,
            "model": result.model,
            "usage": [result.usage.prompt_tokens, result.usage.completion_tokens],
            "latency_s": result.latency_s,
            "logprobs": logprobs,
            "finish_reason": result.finish_reason,
        },
        ensure_ascii=True,  # a lone surrogate in an answer is escaped, never an encoding error
    )


def decode_result(value: str) -> ChatResult:
    """The answer :func:`encode_result` stored; ``ValueError`` on a corrupt value, whatever is
    wrong with it (a short ``usage`` list, a number too large for a float), so every store
    treats it as a miss and replaces it, rather than failing that record on every try."""
    try:
        return _decoded(value)
    except Exception as exc:
        raise ValueError(f"a corrupt cache entry: {type(exc).__name__}: {exc}") from None


def _decoded(value: str) -> ChatResult:
    d = json.loads(value)
    logprobs = None
    if d["logprobs"] is not None:
        logprobs = tuple(
            # An alternative is kept as the client kept it (the verdict reader drops one that
            # is not text); str() made a null one the text "None".
            TokenLogprob(_text(tok), float(lp), tuple((a, float(b)) for a, b in top))
            for tok, lp, top in d["logprobs"]
        )
    latency = float(d.get("latency_s") or 0.0)
    finish = d.get("finish_reason")
    return ChatResult(
        text=_text(d["text"]),
        model=_text(d["model"]),
        usage=Usage(int(d["usage"][0]), int(d["usage"][1])),
        latency_s=latency if math.isfinite(latency) else 0.0,
        logprobs=logprobs,
        finish_reason=None if finish is None else _text(finish),
    )


def _text(value: Any) -> str:
    """A stored text field, which :func:`encode_result` only ever writes as a string: anything
    else (a ``null`` answer read as the text ``"None"``, a number) is a foreign value."""
    if not isinstance(value, str):
        raise TypeError(f"a text field holds {type(value).__name__}")
    return value
