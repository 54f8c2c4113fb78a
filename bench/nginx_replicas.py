"""What the shipped nginx.conf costs: POST /grade (one rule-graded record) straight to a replica
and through nginx in front of two, sequentially on one keep-alive client, then 8 at a time.

    python bench/nginx_replicas.py

Real ``rm-service serve`` processes and the real nginx (``/usr/sbin/nginx``), with
``docker/nginx.conf`` rendered for loopback upstreams as the tests render it. Figures go in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.app.uvicorn_server import running_server  # noqa: E402
from tests.test_docker_files import running_nginx  # noqa: E402

N = 500
BODY = {"records": [{"response": "<think>3+4</think><answer>7</answer>", "label": "7"}]}


def sequential(base: str) -> tuple[float, float]:
    with httpx.Client(base_url=base, timeout=30) as c:
        for _ in range(50):
            c.post("/grade", json=BODY)
        took = []
        for _ in range(N):
            start = time.perf_counter()
            r = c.post("/grade", json=BODY)
            took.append(time.perf_counter() - start)
            assert r.status_code == 200, r.text
    took.sort()
    return statistics.median(took) * 1e3, took[int(0.99 * N)] * 1e3


async def concurrent(base: str, k: int = 8, n: int = 800) -> float:
    limits = httpx.Limits(max_connections=k)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as c:
        sem = asyncio.Semaphore(k)

        async def one() -> None:
            async with sem:
                r = await c.post("/grade", json=BODY)
                assert r.status_code == 200, r.text

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - start)


def main() -> None:
    print("command: python bench/nginx_replicas.py")
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, "
        f"{len(os.sched_getaffinity(0))} cores"
    )
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        d = Path(tmp)
        replicas = []
        for name in "ab":
            (d / name).mkdir()
            replicas.append(stack.enter_context(running_server(d / name, "--log-level", "warning")))
        scratch = d / "nginx"
        scratch.mkdir()
        scratch.chmod(0o755)
        lb = stack.enter_context(running_nginx([f"127.0.0.1:{r.port}" for r in replicas], scratch))
        for label, base in [("direct, one replica", replicas[0].base_url), ("nginx, two", lb)]:
            p50, p99 = sequential(base)
            rps = asyncio.run(concurrent(base))
            print(
                f"{label}: sequential p50 {p50:.2f} ms, p99 {p99:.2f} ms; 8 at a time {rps:.0f}/s"
            )


if __name__ == "__main__":
    main()
