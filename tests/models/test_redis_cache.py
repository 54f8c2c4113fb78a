"""The judge cache's Redis tier against a real ``redis-server``: shared between caches (replicas),
degraded without losing a verdict when Redis dies or freezes, and back when it returns."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

from rm_service._config import load_config
from rm_service._exceptions import ConfigError
from rm_service.models import ChatResult, JudgeCache, SamplingParams, Usage
from rm_service.models._redis import RedisLink, RedisStore, backend_totals
from tests.redis_support import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture, imported for pytest


def _cache(server: RedisServer, **kw: float) -> JudgeCache:
    opts: dict[str, float] = {"timeout": 0.25, "retry_after": 0.3, **kw}
    return JudgeCache(store=RedisStore(server.url, **opts))


class Judge:
    """A judge call that counts itself: the paid-for calls."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay

    def __call__(self, text: str) -> Callable[[], Awaitable[ChatResult]]:
        async def call() -> ChatResult:
            self.calls += 1
            if self.delay:
                await asyncio.sleep(self.delay)
            return ChatResult(text=text, model="m", usage=Usage(3, 1), latency_s=0.1)

        return call


def _key(i: int) -> str:
    return JudgeCache.make_key("g", "m", [{"role": "user", "content": f"q{i}"}], SamplingParams())


async def test_a_verdict_paid_by_one_replica_is_a_hit_on_another(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    a, b = _cache(redis_server), _cache(redis_server)
    judge = Judge()
    try:
        first = await a.get_or_call(_key(1), judge("verdict"))
        again = await b.get_or_call(_key(1), judge("another"))
        assert judge.calls == 1
        assert (first.cached, again.cached, again.text, again.usage) == (
            False,
            True,
            "verdict",
            Usage(3, 1),
        )
        assert b.stats()["store"] == {"get_hit": 1}
        # Concurrent identical requests on one replica ask Redis once and call the judge once.
        results = await asyncio.gather(*(b.get_or_call(_key(2), judge("x")) for _ in range(8)))
        assert judge.calls == 2 and {r.text for r in results} == {"x"}
        assert b.stats()["store"] == {"get_hit": 1, "get_miss": 1}
        assert redis_server.dbsize() == 2
    finally:
        await a.aclose()
        await b.aclose()


async def test_ttl_is_set_on_entries(redis_server: RedisServer) -> None:
    redis_server.flush()
    cache = _cache(redis_server, ttl=60)
    try:
        await cache.get_or_call(_key(1), Judge()("v"))
    finally:
        await cache.aclose()
    reply = redis_server.command("PTTL", f"rm:judge:{_key(1)}")
    assert 50_000 < int(reply[1:].strip()) <= 60_000, reply


async def test_redis_killed_loses_no_verdict_and_is_used_again_when_back(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.flush()
    cache, other = _cache(redis_server), _cache(redis_server)
    judge = Judge()
    before = backend_totals()
    try:
        await cache.get_or_call(_key(0), judge("0"))
        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="rm_service.models._redis"):
            results = await asyncio.gather(
                *(cache.get_or_call(_key(i), judge(str(i))) for i in range(1, 21))
            )
        assert [r.text for r in results] == [str(i) for i in range(1, 21)]
        assert judge.calls == 21  # every call made and kept
        warnings = [r for r in caplog.records if "going on without it" in r.message]
        assert len(warnings) == 1, [r.message for r in caplog.records]
        after = backend_totals()
        assert after.get(("cache", "get", "error"), 0) > before.get(("cache", "get", "error"), 0)
        stats = cache.stats()["store"]
        assert stats["get_error"] >= 1 and stats["set_skipped"] >= 1  # the breaker is open
        redis_server.start()  # empty: it kept nothing
        await asyncio.sleep(0.35)  # past retry_after: the next operation probes
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="rm_service.models._redis"):
            deadline = time.monotonic() + 3
            assert isinstance(cache.store, RedisStore)
            while not cache.store.link.up:
                await cache.get_or_call(_key(100 + judge.calls), judge("probe"))
                assert time.monotonic() < deadline, cache.stats()
                await asyncio.sleep(0.05)
        assert any("is back" in r.message for r in caplog.records)
        await cache.get_or_call(_key(50), judge("paid after the restart"))
        calls = judge.calls
        hit = await other.get_or_call(_key(50), judge("not called"))
        assert (hit.text, judge.calls) == ("paid after the restart", calls)
    finally:
        if redis_server.proc is None or redis_server.proc.poll() is not None:
            redis_server.start()
        await cache.aclose()
        await other.aclose()


async def test_a_frozen_redis_costs_at_most_the_timeout(redis_server: RedisServer) -> None:
    redis_server.flush()
    cache = _cache(redis_server, timeout=0.25, retry_after=30)
    judge = Judge()
    try:
        await cache.get_or_call(_key(0), judge("warm"))  # a pooled connection exists
        redis_server.pause()
        start = time.monotonic()
        results = await asyncio.gather(
            *(cache.get_or_call(_key(i), judge(str(i))) for i in range(1, 33))
        )
        first_batch = time.monotonic() - start
        assert cache.store is not None
        before = cache.store.stats()
        more = await asyncio.gather(
            *(cache.get_or_call(_key(i), judge(str(i))) for i in range(40, 72))
        )
        after = cache.store.stats()
    finally:
        redis_server.resume()
        await cache.aclose()
    assert len(results) == len(more) == 32 and judge.calls == 65
    # Reads and writes each wait at most about the (0.25 s) timeout, with retries (a bound far
    # from a hang, loose enough for a loaded box), then the breaker is open: the second batch
    # skips Redis, every read and write, without waiting on it at all.
    assert first_batch < 5.0, first_batch
    skipped = {
        op: after.get(f"{op}_skipped", 0) - before.get(f"{op}_skipped", 0) for op in ("get", "set")
    }
    assert skipped == {"get": 32, "set": 32}, (before, after)
    tried = {k: after[k] - before.get(k, 0) for k in after if not k.endswith("_skipped")}
    assert not any(tried.values()), tried


def test_one_client_per_event_loop_across_threads(redis_server: RedisServer) -> None:
    redis_server.flush()
    cache = _cache(redis_server)
    judge = Judge()
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        async def go() -> None:
            for i in range(10):
                await cache.get_or_call(_key(i), judge(str(i)))
            await cache.aclose()  # closes this loop's client

        try:
            asyncio.run(go())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert redis_server.dbsize() == 10
    assert 10 <= judge.calls <= 30  # loops may race on a key; every answer is valid


@pytest.mark.parametrize(
    ("cache", "message"),
    [
        ({"redis": "http://localhost:6379"}, "cache.redis: Value error, expected a redis://"),
        ({"redis": "redis://x", "path": "c.db"}, "set path (a SQLite file) or redis"),
        ({"path": "c.db", "ttl": 5}, "ttl applies to a redis cache only"),
        ({"redis": "redis://x", "ttl": 0}, "cache.ttl: Input should be greater than 0"),
        ({"redis": "redis://x", "ttl": 1e20}, "cache.ttl: Input should be less than or equal to"),
        ({"redis": "redis://x", "ttl": float("inf")}, "cache.ttl: Input should be less than"),
        ({"redis": "redis://x", "ttl": float("nan")}, "cache.ttl: Input should be"),
        ({"redis": "redis://x", "redis_timeout": 0}, "cache.redis_timeout"),
    ],
)
def test_config_errors_name_the_field(cache: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"cache": cache, "graders": {"f": {"type": "format"}}})
    assert message in str(err.value)


def test_the_password_is_not_in_errors() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(
            {"cache": {"redis": "http://u:hunter2@h:1"}, "graders": {"f": {"type": "format"}}}
        )
    assert "hunter2" not in str(err.value) and "u:***@h:1" in str(err.value)


def test_importing_rm_service_does_not_import_redis() -> None:
    code = (
        "import sys, rm_service, rm_service._config, rm_service.models;"
        "assert 'redis' not in sys.modules, [m for m in sys.modules if 'redis' in m]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_breaker_probes_once_per_interval_and_a_flapping_redis_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    link = RedisLink("redis://127.0.0.1:9/0", role="cache", retry_after=0.2)
    with caplog.at_level(logging.WARNING, logger="rm_service.models._redis"):
        assert link.available("get")
        link.failed("get", ConnectionError("refused"))
        assert not link.up and not link.available("get") and not link.available("set")
        time.sleep(0.25)
        assert link.available("get")  # the probe
        assert not link.available("get")  # only one
        link.succeeded()
        assert link.up and link.available("get")
        link.failed("set", ConnectionError("refused again"))  # a second outage, soon after
        link.succeeded()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages  # the first outage and its end; the flap is quiet
    assert "failed on get" in messages[0] and "is back" in messages[1]
    assert link.stats() == {"get_error": 1, "set_error": 1, "get_skipped": 2, "set_skipped": 1}


@pytest.mark.parametrize("ttl", [1e20, float("inf")])
def test_a_ttl_redis_cannot_take_is_refused_when_built(ttl: float) -> None:
    """``ttl: 1e20`` failed every write (Redis refuses the expiry), so nothing was ever shared,
    and ``ttl: .inf`` raised ``OverflowError`` out of the cache after the judge had answered."""
    with pytest.raises(ValueError, match="ttl must be > 0 and at most"):
        RedisStore("redis://127.0.0.1:1/0", ttl=ttl)


async def test_the_longest_ttl_is_one_redis_takes(redis_server: RedisServer) -> None:
    from rm_service.models._redis import MAX_TTL

    redis_server.flush()
    a, b = _cache(redis_server, ttl=MAX_TTL), _cache(redis_server, ttl=MAX_TTL)
    judge = Judge()
    try:
        await a.get_or_call(_key(7), judge("kept"))
        again = await b.get_or_call(_key(7), judge("another"))
    finally:
        await a.aclose()
        await b.aclose()
    assert judge.calls == 1 and again.text == "kept"
    assert a.store is not None and a.store.stats().get("set_error", 0) == 0
