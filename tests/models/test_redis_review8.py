"""The Redis judge cache's counts and keys, against a real ``redis-server``.

* A stored answer the grader's ``keep`` refuses (one a fresh answer would not be stored as: an
  unparseable verdict another writer left) is a miss: the judge is called for it. The store
  counted it as a hit, so ``rm_cache_backend_hits_total`` in ``/metrics`` rose for a lookup that
  paid a judge call.
* The cache and the rate budget on one Redis DB keep to their own keys (``rm:judge:`` and
  ``rm:budget:``), whatever the budget's key is named."""

from __future__ import annotations

from rm_service.models import ChatResult, JudgeCache, SamplingParams, Usage
from rm_service.models._cache import encode_result
from rm_service.models._redis import RedisStore, backend_totals
from rm_service.models._redis_budget import RedisRateLimiter
from tests.redis_support import RedisServer, cached_call, redis_server

__all__ = ["redis_server"]  # the fixture, imported for pytest

KEY = JudgeCache.make_key("g", "m", [{"role": "user", "content": "q"}], SamplingParams())


def _parses(result: ChatResult) -> bool:
    return result.text.startswith("VERDICT")


async def _fresh() -> ChatResult:
    return ChatResult(text="VERDICT: 1", model="m", usage=Usage(3, 1))


def _gets() -> tuple[int, int]:
    totals = backend_totals()
    return totals.get(("cache", "get", "hit"), 0), totals.get(("cache", "get", "miss"), 0)


async def test_a_stored_answer_keep_refuses_is_counted_as_a_miss_not_a_hit(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    stale = encode_result(ChatResult(text="no verdict here", model="m", usage=Usage(3, 1)))
    assert redis_server.command("SET", f"rm:judge:{KEY}", json_arg(stale)).startswith(b"+OK")
    hits, misses = _gets()
    got, cache = await cached_call(redis_server.url, KEY, _fresh, keep=_parses)
    assert (got.text, got.cached) == ("VERDICT: 1", False)  # a paid call: not cached_calls
    assert cache.stats()["store"] == {"get_miss": 1}
    assert _gets() == (hits, misses + 1)
    # The fresh answer replaced it: the next replica's lookup is a hit, and counted as one.
    again, other = await cached_call(redis_server.url, KEY, _fresh, keep=_parses)
    assert (again.text, again.cached) == ("VERDICT: 1", True)
    assert other.stats()["store"] == {"get_hit": 1}
    assert _gets() == (hits + 1, misses + 1)


def json_arg(text: str) -> str:
    """``text`` as one argument of an inline Redis command (double-quoted, escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def test_the_cache_and_the_budget_on_one_db_keep_to_their_own_keys(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    cache = JudgeCache(store=RedisStore(redis_server.url, ttl=60))
    budget = RedisRateLimiter(redis_server.url, f"rm:judge:{KEY}", rpm=600, tpm=10_000)
    try:
        assert await budget.acquire(10)
        got = await cache.get_or_call(KEY, _fresh)
        assert await budget.acquire(10)
        again = await JudgeCache(store=cache.store).get_or_call(KEY, _fresh)
    finally:
        await cache.aclose()
        await budget.aclose()
    assert (got.cached, again.cached, again.text) == (False, True, "VERDICT: 1")
    keys = sorted(redis_server.command("KEYS", "*").decode().split("\r\n")[2::2])
    assert keys == [f"rm:budget:rm:judge:{KEY}:{part}" for part in ("req", "tok", "who")] + [
        f"rm:judge:{KEY}"
    ]
