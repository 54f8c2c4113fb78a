"""``remote_reward_model`` against a mock vLLM ``/classify``: records/s and requests, one record
per request against batches of 32, with the server answering at once or after a latency.

    python bench/remote_reward_model.py [N]      # default 512 records, all in flight

The mock server (``tests/rm_server.py``) runs in a thread of this process, so the CPU per record
printed is the client's and the mock's together: compare rows with each other, not with a real
vLLM. Figures go in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graders import get_grader
from tests.rm_server import RMServer


async def run(url: str, n: int, **params: object) -> tuple[float, float]:
    g = get_grader("remote_reward_model", url=url, **params)
    await g.aevaluate(query="warm", response="up")  # the session, not timed
    wall, cpu = time.perf_counter(), time.process_time()
    results = await asyncio.gather(
        *(g.aevaluate(query=f"q{i}", response=f"r{i}") for i in range(n))
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert all(getattr(r, "score", None) is not None for r in results), "a record was unscored"
    await g.aclose()
    return wall, cpu


def main(n: int) -> None:
    print(f"command: python bench/remote_reward_model.py {n}")
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, "
        f"{len(os.sched_getaffinity(0))} cores"
    )
    print("| mock latency | max_batch | records/s | requests | CPU per record (client + mock) |")
    print("|---|---:|---:|---:|---:|")
    for latency in (0.0, 0.02):
        with RMServer(latency=latency) as srv:
            for max_batch in (1, 32):
                srv.reset_stats()
                wall, cpu = asyncio.run(
                    run(srv.url("classify"), n, max_batch=max_batch, max_inflight=4)
                )
                print(
                    f"| {latency * 1e3:.0f} ms | {max_batch} | {n / wall:,.0f} | "
                    f"{srv.stats.requests} | {cpu / n * 1e6:,.0f} µs |"
                )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 512)
