"""Runner overhead, concurrency efficiency and memory, with in-process graders of fixed latency.

    python bench/runner_overhead.py            # the issue's table (takes ~1 minute)
    python bench/runner_overhead.py --quick    # smaller N, for a smoke run

Each configuration runs in a fresh process so peak RSS is its own. Graders are real
``BaseGrader`` subclasses (field selection, result validation) that sleep L seconds; records come
from a generator and results are consumed from ``astream`` and dropped, as offline grading does,
plus one ``arun`` row, which must hold every result and so grows with N by design.

Figures:
* wall / bound, where bound = calls x L / C: the scheduler's efficiency (target <= 1.1 at 50 ms).
* us per call at L = 0: the runner's own cost per (record, grader) call, aggregation included
  (target <= 20 us; OpenJudge measured 81-90 us).
* peak RSS at N = 5000 and N = 100000: flat when memory is O(concurrency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def child(n: int, conc: int, latency: float, mode: str) -> dict:
    from aggregators import WeightedSumAggregator
    from graders import BaseGrader
    from rm_service import GradingRunner

    class Sleep(BaseGrader):
        required_fields = ("response",)

        def __init__(self, name: str, delay: float) -> None:
            super().__init__(name=name)
            self.delay = delay

        async def _aevaluate(self, response: str) -> float:
            if self.delay >= 0:
                await asyncio.sleep(self.delay)
            return 0.5

    class Inline(Sleep):
        inline = True  # never awaits: the runner runs a record's inline graders in one job

    delay = latency if mode not in ("noawait", "inline") else -1.0
    cls = Inline if mode == "inline" else Sleep
    runner = GradingRunner(
        {f"g{i}": cls(f"g{i}", delay) for i in range(3)},
        aggregators=WeightedSumAggregator("reward"),
        max_concurrency=conc,
    )

    def records():
        for i in range(n):
            yield {"id": i, "query": "q", "response": f"response {i}"}

    async def stream() -> int:
        count = 0
        async for _ in runner.astream(records()):
            count += 1
        return count

    async def collect() -> int:
        out = await runner.arun(records())
        return len(out["reward"])

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    done = asyncio.run(collect() if mode == "arun" else stream())
    wall = time.perf_counter() - t0
    assert done == n
    calls = 3 * n
    bound = calls * latency / conc if latency > 0 else None
    return {
        "n": n,
        "conc": conc,
        "latency_ms": latency * 1000,
        "mode": mode,
        "wall_s": round(wall, 3),
        "bound_s": round(bound, 3) if bound else None,
        "ratio": round(wall / bound, 3) if bound else None,
        "us_per_call": round(wall / calls * 1e6, 2),
        "records_per_s": round(n / wall),
        "rss_before_mib": round(rss0 / 1024, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", nargs=4, metavar=("N", "C", "L", "MODE"))
    args = ap.parse_args()
    if args.child:
        n, c, lat, mode = args.child
        print(json.dumps(child(int(n), int(c), float(lat), mode)))
        return
    big = 20000 if args.quick else 100000
    n = 1000 if args.quick else 5000
    plan = [
        (n, 64, 0.05, "stream"),
        (n, 256, 0.05, "stream"),
        (n, 64, 0.0, "noawait"),
        (n, 256, 0.0, "noawait"),
        (n, 64, 0.0, "inline"),
        (n, 64, 0.0, "stream"),
        (big, 64, 0.0, "noawait"),
        (big, 256, 0.0, "noawait"),
        (big, 64, 0.0, "inline"),
        (n, 64, 0.0, "arun"),
        (big, 64, 0.0, "arun"),
    ]
    cmd = " ".join(["python", "bench/runner_overhead.py", *(["--quick"] if args.quick else [])])
    print(f"# {cmd}")
    print(
        f"# python {platform.python_version()}, {platform.machine()}, "
        f"{_cpu()}, 3 graders per record, WeightedSum aggregate"
    )
    print(
        "| N | C | L | consume | wall s | bound s | wall/bound | us/call | records/s | "
        "RSS after import MiB | peak RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n_, c, lat, mode in plan:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n_), str(c), str(lat), mode],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout)
        label = {
            "stream": "astream",
            "noawait": "astream, no await",
            "inline": "astream, inline graders",
            "arun": "arun",
        }[mode]
        print(
            f"| {r['n']} | {r['conc']} | {r['latency_ms']:g} ms | {label} | {r['wall_s']} | "
            f"{r['bound_s'] or '-'} | {r['ratio'] or '-'} | {r['us_per_call']} | "
            f"{r['records_per_s']} | {r['rss_before_mib']} | {r['peak_rss_mib']} |"
        )


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" x{_nproc()}"
    except OSError:
        pass
    return platform.processor()


def _nproc() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    main()
