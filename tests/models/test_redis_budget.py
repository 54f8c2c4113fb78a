"""The RPM/TPM budget shared through a real ``redis-server``: replicas (here, limiters with their
own clients on their own loops and threads) stay under the limit together, and fall back to a
local share of it when Redis is gone."""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading
import time
import uuid

import pytest

from rm_service._config import load_config
from rm_service._exceptions import ConfigError
from rm_service.models import JudgeSpec, build_judge
from rm_service.models._openai import OpenAIChatModel
from rm_service.models._redis_budget import RedisRateLimiter
from tests.redis_support import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture, imported for pytest


def _limiter(server: RedisServer, key: str, **kw: float) -> RedisRateLimiter:
    opts: dict[str, float] = {"timeout": 0.25, "retry_after": 0.3, **kw}
    rpm, tpm = opts.pop("rpm", None), opts.pop("tpm", None)
    return RedisRateLimiter(server.url, key, rpm, tpm, **opts)


def test_two_replicas_together_stay_under_the_rpm_budget(redis_server: RedisServer) -> None:
    """40 calls at 1200 rpm (20/s) with a 0.5 s burst, split over two replicas: 10 go at once,
    the other 30 take 1.5 s between them. Each replica alone would have had the whole budget
    and finished its 20 in 0.5 s."""
    key = uuid.uuid4().hex
    stamps: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def replica() -> None:
        async def go() -> None:
            limiter = _limiter(redis_server, key, rpm=1200, burst_s=0.5)
            try:
                for _ in range(20):
                    assert await limiter.acquire()
                    with lock:
                        stamps.append(time.monotonic())
                assert limiter.replicas == 2 or limiter.replicas == 1
                assert limiter.link.up and not limiter.stats().get("acquire_fallback")
            finally:
                await limiter.aclose()

        try:
            asyncio.run(go())
        except BaseException as exc:  # reported below
            errors.append(exc)

    start = time.monotonic()
    threads = [threading.Thread(target=replica) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    elapsed = max(stamps) - start
    assert 1.35 <= elapsed < 4.0, elapsed
    # No window of 1 s holds more than the burst plus a second's worth (10 + 20).
    stamps.sort()
    for i, t in enumerate(stamps):
        assert sum(1 for u in stamps[i:] if u < t + 1.0) <= 31


async def test_a_large_tpm_cost_is_charged_in_full_to_every_replica_and_settled(
    redis_server: RedisServer,
) -> None:
    key = uuid.uuid4().hex
    a = _limiter(redis_server, key, tpm=6000, burst_s=1.0)  # 100 tokens/s, 1 s burst
    b = _limiter(redis_server, key, tpm=6000, burst_s=1.0)
    try:
        assert await a.acquire(500, max_wait=0)  # bigger than the burst: goes, leaves a debt
        assert not await b.acquire(10, max_wait=0)  # the other replica sees the debt (~4 s)
        assert not await a.acquire(10, max_wait=0)
        a.settle(500, 50)  # the call used far less: sent with a's next reservation
        assert await a.acquire(10, max_wait=0)
        assert await b.acquire(10, max_wait=0)
    finally:
        await a.aclose()
        await b.aclose()


async def test_redis_down_falls_back_to_a_local_share_and_comes_back(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    key = uuid.uuid4().hex
    a = _limiter(redis_server, key, rpm=600, tpm=60_000)
    b = _limiter(redis_server, key, rpm=600, tpm=60_000)
    try:
        assert await a.acquire(10) and await b.acquire(10) and await a.acquire(10)
        assert a.replicas == 2
        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="rm_service.models._redis"):
            start = time.monotonic()
            for _ in range(5):
                assert await a.acquire(10)
            assert time.monotonic() - start < 1.0
        assert len([r for r in caplog.records if "going on without it" in r.message]) == 1
        stats = a.stats()
        assert stats["acquire_error"] == 1 and stats["acquire_fallback"] == 5
        local = a._local()
        assert (local.rpm, local.tpm) == (300, 30_000)  # half each: two replicas were seen
        redis_server.start()
        await asyncio.sleep(0.35)
        assert await a.acquire(10)
        assert a.link.up and a.stats()["acquire_fallback"] == 5
    finally:
        if redis_server.proc is None or redis_server.proc.poll() is not None:
            redis_server.start()
        await a.aclose()
        await b.aclose()


async def test_a_frozen_redis_delays_an_acquire_by_the_timeout_at_most(
    redis_server: RedisServer,
) -> None:
    limiter = _limiter(redis_server, uuid.uuid4().hex, rpm=6000, retry_after=30)
    try:
        assert await limiter.acquire()
        redis_server.pause()
        start = time.monotonic()
        assert await limiter.acquire()
        first = time.monotonic() - start
        start = time.monotonic()
        assert await limiter.acquire()
        second = time.monotonic() - start
    finally:
        redis_server.resume()
        await limiter.aclose()
    assert first < 1.0 and second < 0.3, (first, second)


async def test_a_refund_sent_to_a_frozen_redis_is_applied_once(
    redis_server: RedisServer,
) -> None:
    """A settle() refund goes with the next acquire. When that acquire timed out while Redis was
    frozen, Redis still ran it once it woke, and the refund was queued again and sent with a
    later acquire: applied twice, so replicas together went over the limit."""
    key = uuid.uuid4().hex
    tok = f"rm:budget:{key}:tok"

    def tat() -> float:
        reply = redis_server.command("GET", tok)
        return float(reply.split(b"\r\n")[1])

    limiter = _limiter(redis_server, key, tpm=60_000, timeout=0.1, retry_after=0.3)
    try:
        assert await limiter.acquire(10_000)  # ten seconds' worth of tokens
        charged = tat()
        limiter.settle(10_000, 0)  # the call used nothing: a refund of ten seconds, once
        redis_server.pause()
        try:
            assert await limiter.acquire(0)  # times out: the local fallback grants it
        finally:
            redis_server.resume()
        await asyncio.sleep(0.4)  # Redis ran the queued reservation; the breaker probes again
        assert await limiter.acquire(0)
        assert limiter.link.up
        assert tat() - charged == pytest.approx(-10.0, abs=0.5)
    finally:
        await limiter.aclose()


def test_the_judge_spec_builds_a_shared_limiter() -> None:
    spec = JudgeSpec(
        backend="openai",
        base_url="http://127.0.0.1:9/v1",
        model="m",
        rpm=60,
        rate_limit_redis="redis://127.0.0.1:9/0",
    )
    model = build_judge(spec)
    assert isinstance(model, OpenAIChatModel)
    assert isinstance(model.limiter, RedisRateLimiter)
    assert model.limiter.key == "http://127.0.0.1:9/v1|m" and model.limiter.rpm == 60
    # A pickled judge (a Ray worker's copy) keeps sharing the budget.
    copy = pickle.loads(pickle.dumps(model))
    assert isinstance(copy.limiter, RedisRateLimiter)
    assert (copy.limiter.key, copy.limiter.rpm, copy.limiter.link.url) == (
        model.limiter.key,
        60,
        "redis://127.0.0.1:9/0",
    )


@pytest.mark.parametrize(
    ("judge", "message"),
    [
        ({"rate_limit_redis": "redis://h"}, "judge: Value error, rate_limit_redis shares rpm"),
        (
            {"rpm": 5, "rate_limit_redis": "tcp://h"},
            "judge.rate_limit_redis: Value error, expected",
        ),
        ({"rpm": 5, "rate_limit_key": "k"}, "rate_limit_key names a shared budget"),
        (
            {"backend": "local", "rpm": 5, "rate_limit_redis": "redis://h"},
            "not backend 'local'",
        ),
    ],
)
def test_config_errors_name_the_field(judge: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"judge": judge, "graders": {"f": {"type": "format"}}})
    assert message in str(err.value)


async def test_closing_a_judge_closes_its_shared_budget_connection(
    redis_server: RedisServer,
) -> None:
    """A judge's ``aclose()`` closes its Redis budget client too (it used to be left to the
    process's exit): a service that reloads rewards must not leak a connection each time."""

    def clients() -> int:
        return redis_server.command("CLIENT", "LIST").decode().count("\n")

    spec = JudgeSpec(
        backend="openai",
        base_url="http://127.0.0.1:9/v1",
        model="m",
        rpm=600,
        rate_limit_redis=redis_server.url,
        rate_limit_key=uuid.uuid4().hex,
    )
    model = build_judge(spec)
    assert isinstance(model, OpenAIChatModel) and model.limiter is not None
    before = clients()
    assert await model.limiter.acquire()
    assert clients() == before + 1
    await model.aclose()
    for _ in range(100):  # the server drops a closed client within a moment
        if clients() == before:
            break
        await asyncio.sleep(0.02)
    assert clients() == before


async def test_each_schedule_waits_out_the_slots_the_other_booked(
    redis_server: RedisServer,
) -> None:
    """Across a Redis outage the replicas together ran up to three times their budget: slots
    Redis had booked kept being used while the local share started afresh beside them, and
    after Redis came back the local share's booked slots ran beside Redis's new ones."""
    limiter = _limiter(redis_server, uuid.uuid4().hex, rpm=600)  # 10 a second, 1 s of burst

    async def granted_at() -> float:
        assert await limiter.acquire()
        return time.monotonic()

    try:
        # 25 slots from Redis: about 1.5 s of them are still ahead when Redis goes away.
        start = time.monotonic()
        booked = [asyncio.create_task(granted_at()) for _ in range(25)]
        # Redis's answers are in (slow on a loaded box): polling, there is no event to wait on
        while limiter._redis_until < start + 1.2 and time.monotonic() < start + 5:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        redis_server.stop()
        # The last slot Redis booked for this replica (on a loaded box a few late requests
        # may have failed over instead): a second or so ahead.
        redis_until = limiter._redis_until
        assert redis_until > time.monotonic() + 0.1
        fallback = [asyncio.create_task(granted_at()) for _ in range(5)]
        local_slots = await asyncio.gather(*fallback)
        assert min(local_slots) >= redis_until - 0.02, (redis_until, local_slots)
        await asyncio.gather(*booked)
        # Now the local share has slots booked ahead; Redis comes back.
        later = [asyncio.create_task(granted_at()) for _ in range(15)]
        await asyncio.sleep(0.05)
        redis_server.start()
        await asyncio.sleep(0.35)  # retry_after: Redis is tried again
        local_end = limiter._local().booked_until()
        back = await granted_at()
        assert limiter.link.up
        assert back >= local_end - 0.02, (back, local_end)
        await asyncio.gather(*later)
    finally:
        if redis_server.proc is None or redis_server.proc.poll() is not None:
            redis_server.start()
        await limiter.aclose()
