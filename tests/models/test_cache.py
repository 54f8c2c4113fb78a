"""JudgeCache: content keys, hits, coalescing, failures, cancellation, LRU, SQLite, threads."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from rm_service.models._base import ChatResult, JudgeHTTPError, SamplingParams, TokenLogprob, Usage
from rm_service.models._cache import JudgeCache

MESSAGES = [{"role": "system", "content": "judge"}, {"role": "user", "content": "grade this"}]
PARAMS = SamplingParams(max_tokens=64)


class Backend:
    """Counts calls; returns a fixed answer after ``delay``, or raises ``error``."""

    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.calls = 0
        self.delay = delay
        self.error = error

    async def __call__(self) -> ChatResult:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return ChatResult(
            text='{"reason": "ok", "score": 4}',
            model="judge-1",
            usage=Usage(100, 12),
            latency_s=0.5,
            logprobs=(TokenLogprob("4", -0.1, (("4", -0.1), ("5", -2.5))),),
            finish_reason="stop",
            attempts=2,
        )


def key(**overrides: object) -> str:
    args = {"namespace": "relevance", "model": "judge-1", "messages": MESSAGES, "params": PARAMS}
    args.update(overrides)
    return JudgeCache.make_key(**args)  # type: ignore[arg-type]


def test_key_is_deterministic_and_sensitive_to_every_part() -> None:
    k = key()
    assert k == key() and len(k) == 64
    assert k == key(messages=[dict(m) for m in MESSAGES])
    assert k != key(namespace="correctness")
    assert k != key(model="judge-2")
    assert k != key(messages=[*MESSAGES[:1], {"role": "user", "content": "grade that"}])
    assert k != key(params=SamplingParams(max_tokens=65))
    assert k != key(params=dataclasses.replace(PARAMS, top_logprobs=5, logprobs=True))
    schema = {"name": "v", "schema": {"type": "object"}}
    assert key(params=SamplingParams(json_schema=schema)) == key(
        params=SamplingParams(json_schema=dict(schema))
    )


async def test_hit_avoids_the_call_and_is_marked_cached() -> None:
    cache, backend = JudgeCache(), Backend()
    first = await cache.get_or_call(key(), backend)
    second = await cache.get_or_call(key(), backend)
    assert backend.calls == 1
    assert first.cached is False and first.attempts == 2
    assert second.cached is True and second.attempts == 0
    assert second.text == first.text and second.logprobs == first.logprobs
    assert second.usage == first.usage and second.model == "judge-1"
    assert second.latency_s < 0.5  # the time this request waited, not the original call's
    assert cache.stats() == {
        "hits": 1,
        "misses": 1,
        "coalesced": 0,
        "hit_rate": 0.5,
        "entries": 1,
        "in_flight": 0,
    }


async def test_concurrent_duplicates_coalesce_into_one_call() -> None:
    cache, backend = JudgeCache(), Backend(delay=0.02)
    results = await asyncio.gather(*(cache.get_or_call(key(), backend) for _ in range(10)))
    assert backend.calls == 1
    assert sum(not r.cached for r in results) == 1
    stats = cache.stats()
    assert stats["misses"] == 1 and stats["hits"] == 9 and stats["coalesced"] == 9
    assert stats["in_flight"] == 0


async def test_different_keys_do_not_coalesce() -> None:
    cache, backend = JudgeCache(), Backend(delay=0.01)
    await asyncio.gather(*(cache.get_or_call(key(model=f"m{i}"), backend) for i in range(4)))
    assert backend.calls == 4


async def test_failures_are_shared_by_waiters_but_never_cached() -> None:
    cache = JudgeCache()
    failing = Backend(delay=0.02, error=JudgeHTTPError("HTTP 503", status=503))
    results = await asyncio.gather(
        *(cache.get_or_call(key(), failing) for _ in range(5)), return_exceptions=True
    )
    assert failing.calls == 1
    assert all(isinstance(r, JudgeHTTPError) for r in results)
    assert cache.stats()["entries"] == 0
    working = Backend()
    result = await cache.get_or_call(key(), working)
    assert working.calls == 1 and result.cached is False


async def test_a_cancelled_owner_hands_over_to_a_waiter() -> None:
    cache, backend = JudgeCache(), Backend(delay=0.05)
    owner = asyncio.create_task(cache.get_or_call(key(), backend))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(cache.get_or_call(key(), backend))
    await asyncio.sleep(0.01)
    owner.cancel()
    result = await waiter
    assert owner.cancelled()
    assert result.text.startswith("{")
    assert backend.calls == 2  # the waiter made its own call instead of inheriting the cancel
    assert cache.stats()["in_flight"] == 0


async def test_a_cancelled_waiter_does_not_disturb_the_owner() -> None:
    cache, backend = JudgeCache(), Backend(delay=0.03)
    owner = asyncio.create_task(cache.get_or_call(key(), backend))
    await asyncio.sleep(0.005)
    waiter = asyncio.create_task(cache.get_or_call(key(), backend))
    await asyncio.sleep(0.005)
    waiter.cancel()
    result = await owner
    assert result.cached is False and backend.calls == 1


async def test_lru_evicts_the_least_recently_used() -> None:
    cache, backend = JudgeCache(max_entries=2), Backend()
    for name in ("a", "b"):
        await cache.get_or_call(key(namespace=name), backend)
    await cache.get_or_call(key(namespace="a"), backend)  # touch a
    await cache.get_or_call(key(namespace="c"), backend)  # evicts b
    assert cache.stats()["entries"] == 2
    calls = backend.calls
    await cache.get_or_call(key(namespace="a"), backend)
    assert backend.calls == calls
    await cache.get_or_call(key(namespace="b"), backend)
    assert backend.calls == calls + 1


async def test_sqlite_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "judge.sqlite"
    first, backend = JudgeCache(path=path), Backend()
    original = await first.get_or_call(key(), backend)
    first.close()
    second = JudgeCache(path=path)
    restored = await second.get_or_call(key(), backend)
    assert backend.calls == 1
    assert restored.cached is True
    assert restored.text == original.text
    assert restored.logprobs == original.logprobs
    assert restored.usage == original.usage and restored.model == original.model
    assert restored.finish_reason == "stop"
    # Served from the file once, then from memory.
    assert second.stats()["entries"] == 1
    second.close()


async def test_sqlite_corrupt_row_is_a_miss(tmp_path: Path) -> None:
    path = tmp_path / "judge.sqlite"
    cache, backend = JudgeCache(path=path), Backend()
    await cache.get_or_call(key(), backend)
    cache.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE judge_cache SET value = 'not json'")
    fresh = JudgeCache(path=path)
    await fresh.get_or_call(key(), backend)
    assert backend.calls == 2
    fresh.close()


def test_sync_get_and_put(tmp_path: Path) -> None:
    cache = JudgeCache(path=tmp_path / "c.sqlite")
    assert cache.get(key()) is None
    cache.put(key(), ChatResult(text="5", model="m", cached=True))
    hit = cache.get(key())
    assert hit is not None and hit.text == "5" and hit.cached is True
    other = JudgeCache(path=tmp_path / "c.sqlite")
    assert other.get(key()) is not None
    cache.close()
    other.close()


async def test_clear_resets_memory_and_counters() -> None:
    cache, backend = JudgeCache(), Backend()
    await cache.get_or_call(key(), backend)
    cache.clear()
    assert cache.stats()["entries"] == 0 and cache.stats()["misses"] == 0
    await cache.get_or_call(key(), backend)
    assert backend.calls == 2


def test_shared_across_event_loops_and_threads(tmp_path: Path) -> None:
    cache = JudgeCache(path=tmp_path / "t.sqlite")
    backend_calls: list[int] = []
    lock = threading.Lock()

    async def call() -> ChatResult:
        with lock:
            backend_calls.append(1)
        await asyncio.sleep(0.02)
        return ChatResult(text="4", model="m")

    errors: list[BaseException] = []

    def worker() -> None:
        async def main() -> None:
            await asyncio.gather(*(cache.get_or_call(key(), call) for _ in range(5)))

        try:
            asyncio.run(main())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # At most one call per loop (futures are per loop), and usually fewer once one has stored.
    assert 1 <= len(backend_calls) <= 3
    assert cache.stats()["hits"] + cache.stats()["misses"] == 15
    cache.close()


def test_bad_max_entries() -> None:
    with pytest.raises(ValueError):
        JudgeCache(max_entries=0)


async def test_a_corrupt_file_warns_once_and_the_cache_goes_on_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "judge.sqlite"
    path.write_bytes(b"not a database" * 100)
    cache, backend = JudgeCache(path=path), Backend()
    with caplog.at_level(logging.WARNING, logger="rm_service.models._cache"):
        results = await asyncio.gather(
            *(cache.get_or_call(key(namespace=f"n{i % 4}"), backend) for i in range(12))
        )
        cache.put(key(namespace="sync"), ChatResult(text="5", model="m"))
        assert cache.get(key(namespace="sync")) is not None  # from memory
    assert all(r.text.startswith("{") for r in results)
    assert backend.calls == 4  # memory still caches and coalesces
    assert cache.stats()["misses"] == 4 and cache.stats()["hits"] == 8
    assert cache.file_error is not None and "DatabaseError" in cache.file_error
    assert len(caplog.records) == 1 and str(path) in caplog.records[0].getMessage()
    cache.close()


def _replace_with_directory(path: Path) -> None:
    for p in path.parent.iterdir():
        p.unlink()  # the file and its -wal/-shm companions
    path.mkdir()


async def test_a_file_that_vanishes_mid_run_keeps_the_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "judge.sqlite"
    cache, backend = JudgeCache(path=path), Backend()
    await cache.get_or_call(key(namespace="a"), backend)
    cache.close()
    _replace_with_directory(path)  # the next open fails
    with caplog.at_level(logging.WARNING, logger="rm_service.models._cache"):
        result = await cache.get_or_call(key(namespace="b"), backend)
        await cache.get_or_call(key(namespace="c"), backend)
    assert result.cached is False and backend.calls == 3
    assert cache.file_error is not None
    assert len(caplog.records) == 1


async def test_a_lone_surrogate_is_cached_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "judge.sqlite"
    cache = JudgeCache(path=path)
    messages = [{"role": "user", "content": "grade a\ud800b"}]
    k = key(messages=messages)
    assert k != key(messages=[{"role": "user", "content": "grade a\ud801b"}])

    async def call() -> ChatResult:
        return ChatResult(text="Score: 4 \udcff", model="m")

    assert (await cache.get_or_call(k, call)).text == "Score: 4 \udcff"
    assert cache.file_error is None
    cache.close()
    restored = JudgeCache(path=path).get(k)
    assert restored is not None and restored.text == "Score: 4 \udcff"
