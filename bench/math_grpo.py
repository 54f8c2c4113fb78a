"""MathGrader throughput on a GRPO-shaped batch, against raw math-verify in one thread.

    python bench/math_grpo.py                  # 150 golds x 16 completions, 3 runs
    python bench/math_grpo.py --golds 50 --k 8 --runs 1

The batch is what a GRPO step grades: ``G`` prompts, ``K`` completions of each, so every gold
comes ``K`` times. Golds are integers, fractions, surds, decimals and polynomials; completions
write the gold boxed, inline, in display math, after ``</think>``, or get it wrong (``gold + 1``,
``0``) or give no answer.

Rows:
* ``math-verify, 1 thread``: ``verify(parse("$" + gold + "$"), parse(completion))`` in a loop,
  what a hand-written TRL/verl reward does.
* ``MathGrader``: ``GradingRunner(max_concurrency=64)`` over the same records, with a fresh
  worker pool per run (no cache carried from the run before), started before the clock.

Each run prints wall-clock rates and CPU-time rates: the box may be shared, and CPU seconds are
what a busy neighbour disturbs least. ``cpu`` for MathGrader is the parent process's plus its
workers' (read from ``/proc``). Single-check latency is the median of one record at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def batch(golds: int, k: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    shapes = []
    for i in range(golds):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        shapes.append(
            [str(a * b), f"\\frac{{{a}}}{{{b}}}", f"{a}\\sqrt{{{b}}}", f"{a}.{b % 10}"][i % 5]
            if i % 5 < 4
            else f"x^2 + {a}x + {b}"
        )
    out = []
    for gold in shapes:
        forms = [
            f"<think>work</think>\nThe answer is $\\boxed{{{gold}}}$.",
            f"So the final answer is \\boxed{{{gold}}}.",
            f"Therefore the answer is ${gold}$",
            f"\\boxed{{{gold} + 1}}",
            "The answer is \\boxed{0}.",
            f"After simplifying we get $\\boxed{{{gold}}}$ which is final.",
            "I am not sure.",
            f"$${gold}$$",
        ]
        out += [{"response": forms[rng.randrange(len(forms))], "gold": gold} for _ in range(k)]
    return out


def raw_verify(record: dict[str, str]) -> float:
    from math_verify import parse, verify

    try:
        return 1.0 if verify(parse("$" + record["gold"] + "$"), parse(record["response"])) else 0.0
    except Exception:
        return 0.0


def cpu_of(pids: list[int]) -> float:
    """CPU seconds (user + system) of processes by pid, from /proc; 0 where unreadable."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_raw(data: list[dict[str, str]]) -> tuple[list[float], float, float]:
    wall, cpu = time.perf_counter(), time.thread_time()
    scores = [raw_verify(r) for r in data]
    return scores, time.perf_counter() - wall, time.thread_time() - cpu


def run_grader(data: list[dict[str, str]]) -> tuple[list[float | None], float, float]:
    from graders import MathGrader
    from graders._math_pool import _get_pool, shutdown_math_pool
    from rm_service import GraderConfig, GradingRunner

    shutdown_math_pool()  # a fresh pool: no gold or verdict cached by an earlier run
    grader = MathGrader()
    runner = GradingRunner(
        {"m": GraderConfig(grader=grader, mapper={"reference_response": "gold"})},
        max_concurrency=64,
    )
    asyncio.run(grader.aload())
    pool = _get_pool(None)
    started = time.monotonic() + 120
    while time.monotonic() < started:  # every worker started and warmed up, none still busy
        workers = list(pool._workers)
        if len(workers) == pool.size and all(w.ready for w in workers):
            break
        time.sleep(0.1)
    time.sleep(0.5)
    pids = [w.process.pid for w in list(pool._workers)]
    wall, cpu, workers_cpu = time.perf_counter(), time.process_time(), cpu_of(pids)
    results = asyncio.run(runner.arun(data))["m"]
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu + cpu_of(pids) - workers_cpu
    return [getattr(r, "score", None) for r in results], wall, cpu


def latency(data: list[dict[str, str]], n: int) -> tuple[float, float]:
    """Median seconds for one check alone: raw math-verify, and MathGrader (pool warm)."""
    from graders import MathGrader

    records = data[:: max(1, len(data) // n)][:n]
    raw = []
    for r in records:
        t = time.perf_counter()
        raw_verify(r)
        raw.append(time.perf_counter() - t)
    grader = MathGrader()

    async def ours() -> list[float]:
        await grader.aload()
        out = []
        for r in records:
            t = time.perf_counter()
            await grader.aevaluate(response=r["response"], reference_response=r["gold"])
            out.append(time.perf_counter() - t)
        return out

    return statistics.median(raw), statistics.median(asyncio.run(ours()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--golds", type=int, default=150)
    parser.add_argument("--k", type=int, default=16, help="completions per gold")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    data = batch(args.golds, args.k)
    n = len(data)
    print("command:", " ".join(["python", *sys.argv]))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, math-verify {version('math-verify')}, "
        f"sympy {version('sympy')}, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"batch: {args.golds} golds x {args.k} completions = {n} checks")
    raw_verify(data[0])  # imports and regex caches, outside the clock
    runs = []
    for i in range(args.runs):
        raw, raw_wall, raw_cpu = run_raw(data)
        ours, our_wall, our_cpu = run_grader(data)
        agree = sum(1 for a, b in zip(raw, ours, strict=True) if b is not None and a == b) / n
        run = {
            "raw_per_s": round(n / raw_wall, 1),
            "ours_per_s": round(n / our_wall, 1),
            "speedup": round(raw_wall / our_wall, 2),
            "raw_per_cpu_s": round(n / raw_cpu, 1),
            "ours_per_cpu_s": round(n / our_cpu, 1),
            "agreement": round(agree, 4),
            "unscored": sum(1 for b in ours if b is None),
        }
        runs.append(run)
        print(
            f"run {i + 1}: math-verify 1 thread {run['raw_per_s']:.0f}/s, MathGrader "
            f"{run['ours_per_s']:.0f}/s, speedup {run['speedup']:.2f}x (wall); per CPU-second "
            f"{run['raw_per_cpu_s']:.0f} vs {run['ours_per_cpu_s']:.0f} checks; agreement "
            f"{agree:.4f}, unscored {run['unscored']}; load average {os.getloadavg()[0]:.2f}"
        )
    raw_one, our_one = latency(data, 50)
    print(
        f"single check (median of 50, one at a time): math-verify {raw_one * 1e3:.2f} ms, "
        f"MathGrader {our_one * 1e3:.2f} ms"
    )
    speedups = [r["speedup"] for r in runs]
    print(f"speedup over {len(runs)} runs: median {statistics.median(speedups):.2f}x, {speedups}")
    print(
        json.dumps(
            {
                "n": n,
                "runs": runs,
                "median_speedup": statistics.median(speedups),
                "single_ms": {"math_verify": raw_one * 1e3, "math_grader": our_one * 1e3},
            }
        )
    )


if __name__ == "__main__":
    main()
