"""The judge cache's tiers and the shared rate budget, on a loopback ``redis-server``.

    python bench/redis_cache.py

Per call: a miss that writes Redis, a Redis hit after a memory miss, a memory hit, Redis hits
64 at a time, and one acquire of the shared (Redis) budget against the local limiter. Needs
``redis-server`` on the PATH and the ``redis`` extra. Figures go in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import asyncio
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rm_service.models import ChatResult, JudgeCache, RateLimiter, SamplingParams, Usage  # noqa: E402
from rm_service.models._redis import RedisStore  # noqa: E402
from rm_service.models._redis_budget import RedisRateLimiter  # noqa: E402
from tests.redis_support import RedisServer  # noqa: E402  (starts redis-server on a free port)

N = 2000


def key(i):
    return JudgeCache.make_key(
        "g", "m", [{"role": "user", "content": f"q{i} " + "x" * 400}], SamplingParams()
    )


async def main(server):
    keys = [key(i) for i in range(N)]
    res = ChatResult(
        text='{"reason": "' + "ok " * 100 + '", "score": 4}',
        model="m",
        usage=Usage(300, 100),
        latency_s=0.5,
    )

    async def call():
        return res

    async def per_call(step) -> float:
        """Seconds per call of ``step(k)`` over every key, one at a time."""
        t = time.perf_counter()
        for k in keys:
            await step(k)
        return (time.perf_counter() - t) / N

    writer = JudgeCache(store=RedisStore(server.url))
    miss_put = await per_call(lambda k: writer.get_or_call(k, call))
    await writer.aclose()
    # sequential redis hits (fresh memory), then the same keys again from memory
    reader = JudgeCache(store=RedisStore(server.url))
    redis_hit = await per_call(lambda k: reader.get_or_call(k, call))
    mem_hit = await per_call(lambda k: reader.get_or_call(k, call))
    await reader.aclose()
    # concurrent redis hits (64 at a time)
    reader2 = JudgeCache(store=RedisStore(server.url))
    t = time.perf_counter()
    for i in range(0, N, 64):
        await asyncio.gather(*(reader2.get_or_call(k, call) for k in keys[i : i + 64]))
    conc = time.perf_counter() - t
    await reader2.aclose()
    # budget acquires, unlimited-ish rate
    lim = RedisRateLimiter(server.url, "bench", rpm=1e9, tpm=1e12)
    acq = await per_call(lambda _: lim.acquire(500))
    await lim.aclose()
    loc = RateLimiter(rpm=1e9, tpm=1e12)
    lacq = await per_call(lambda _: loc.acquire(500))
    print(f"miss + redis SET per call: {miss_put * 1e6:.0f} us")
    print(f"redis hit (memory miss) per call, sequential: {redis_hit * 1e6:.0f} us")
    print(f"memory hit per call: {mem_hit * 1e6:.1f} us")
    print(f"redis hits, 64 concurrent: {N / conc:.0f} calls/s")
    print(
        f"shared budget acquire (EVALSHA) per call: {acq * 1e6:.0f} us; "
        f"local limiter: {lacq * 1e6:.1f} us"
    )


print(
    f"command: python bench/redis_cache.py\nmachine: {platform.machine()}, Python "
    f"{platform.python_version()}, {len(__import__('os').sched_getaffinity(0))} cores"
)
server = RedisServer(Path(tempfile.mkdtemp()))
server.start()
try:
    asyncio.run(main(server))
finally:
    server.stop()
