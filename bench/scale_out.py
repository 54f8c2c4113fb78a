"""Scale-out: records/s of ``rm-service grade --engine ray`` with 1 and 2 grading actors, against
the local engine on the same file, Ray's fixed start-up cost, and what that predicts for 10M
records on N machines.

    python bench/scale_out.py                  # 4,000 records
    python bench/scale_out.py --records 20000

The input is examples/math_sample.jsonl replicated to ``--records`` records (GRPO-shaped:
several responses per prompt, some wrong, some badly formatted), with unique ids. Two rewards:

* rules: examples/rules.yaml (format + number + length: microseconds a record);
* math: examples/reward.yaml (math-verify in a worker pool + format + length: CPU-bound).

Each engine runs as the real CLI in a fresh process. The Ray runs join one local Ray instance
started here (``ray start``-like, ``address`` passed with ``--address``), so a run's time is the
job's: reading, actors starting, grading, writing the Parquet parts, reading them back for the
summary. Ray's own start-up (``ray.init`` of a new instance) is measured once, apart.

The estimate for 10M records takes one actor's marginal rate (the job on 3n records less the job
on n: no start-up in it) as the rate of every core of every machine but one (left to reads,
writes and the checkpoint filter): ``T = startup + 10e6 / (N * (cores - 1) * rate_per_core)``.
Per-core rates hold across machines only while the judge (for judge graders) or storage keeps
up; rules and math need neither.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"rules": ROOT / "examples" / "rules.yaml", "math": ROOT / "examples" / "reward.yaml"}


def make_input(path: Path, n: int) -> None:
    base = [
        json.loads(x)
        for x in (ROOT / "examples" / "math_sample.jsonl").read_text().split("\n")
        if x
    ]
    with path.open("w") as f:
        for i in range(n):
            rec = dict(base[i % len(base)])
            rec["id"] = f"{rec['id']}-{i}"
            f.write(json.dumps(rec) + "\n")


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=4000)
    ap.add_argument("--machines", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--cores", type=int, default=32, help="cores per machine for the estimate")
    args = ap.parse_args()
    print("command: python " + " ".join(sys.argv))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")  # fmt: skip

    import ray

    t0 = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=(os.cpu_count() or 1) + 2,
        include_dashboard=False,
        log_to_driver=False,
    )
    startup = time.perf_counter() - t0
    # After ray.init: it set RAY_AUTH_MODE=token, which a process joining the instance needs.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RM_SERVICE_")}
    env["PYTHONPATH"] = str(ROOT)
    address = ray.get_runtime_context().gcs_address
    n = args.records
    rates: dict[tuple[str, str], float] = {}
    marginal: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = work / "in.jsonl"
        make_input(src, n)
        big = work / "big.jsonl"
        make_input(big, 3 * n)
        cli = [sys.executable, "-m", "rm_service.cli", "grade", str(src), "--no-progress"]
        # A tiny job: Ray's fixed cost a job pays (actors start, read, write, read back).
        tiny = work / "tiny.jsonl"
        tiny.write_text("".join(src.read_text().splitlines(keepends=True)[:32]))
        fixed = timed(
            [*cli[:4], str(tiny), "-c", str(CONFIGS["rules"]), "-o", str(work / "tiny.parquet"),
             "--engine", "ray", "--address", address, "--no-progress"],
            env,
        )  # fmt: skip
        print(f"\nray.init (new local instance): {startup:.1f} s")
        print(
            f"fixed cost of one --engine ray job (32 records, CLI process included): {fixed:.1f} s"
        )
        print(f"\n{'reward':<6} {'engine':<16} {'records':>8} {'wall s':>8} {'rec/s':>8}")
        for reward, cfg in CONFIGS.items():
            runs: list[tuple[str, list[str]]] = [
                ("local", ["-c", str(cfg), "-o", str(work / f"{reward}.local.jsonl")]),
            ]
            for w in (1, 2):
                runs.append(
                    (
                        f"ray, {w} actor(s)",
                        [
                            "-c",
                            str(cfg),
                            "-o",
                            str(work / f"{reward}.ray{w}.parquet"),
                            "--engine",
                            "ray",
                            "--address",
                            address,
                            "--workers",
                            str(w),
                        ],
                    )
                )
            for name, extra in runs:
                wall = timed([*cli, *extra], env)
                rates[(reward, name)] = n / wall
                print(f"{reward:<6} {name:<16} {n:>8} {wall:>8.1f} {n / wall:>8.0f}")
            # The marginal rate of one actor: the same job on 3n records, less the n-record
            # job, leaves out every fixed cost (processes, actors, the first batch).
            wall_n = n / rates[(reward, "ray, 1 actor(s)")]
            wall_3n = timed(
                [*cli[:4], str(big), "-c", str(cfg), "-o", str(work / f"{reward}.big.parquet"),
                 "--engine", "ray", "--address", address, "--workers", "1", "--no-progress"],
                env,
            )  # fmt: skip
            print(f"{reward:<6} {'ray, 1 actor(s)':<16} {3 * n:>8} {wall_3n:>8.1f} "
                  f"{3 * n / wall_3n:>8.0f}")  # fmt: skip
            extra_s = wall_3n - wall_n
            marginal[reward] = 2 * n / extra_s if extra_s > 0 else float("nan")
    ray.shutdown()

    print("\nestimate for 10M records: T = startup + 10e6 / (N * (cores - 1) * rate_per_core)")
    print(f"  rate_per_core: one actor's marginal rate, 2n records / (time(3n) - time(n)), n = {n}")
    print(f"  startup: ray.init + one job's fixed cost = {startup:.1f} + {fixed:.1f} s; "
          f"cores = {args.cores} per machine, one left to reads and writes")  # fmt: skip
    for reward in CONFIGS:
        per_core = marginal[reward]
        if not per_core > 0:
            print(f"  {reward:<6} not measurable at n = {n}: rerun with a larger --records")
            continue
        cells = []
        for m in args.machines:
            t = startup + fixed + 10e6 / (m * (args.cores - 1) * per_core)
            cells.append(f"N={m}: {t / 60:.1f} min")
        print(f"  {reward:<6} rate_per_core {per_core:>7.0f} rec/s -> " + ", ".join(cells))


if __name__ == "__main__":
    main()
