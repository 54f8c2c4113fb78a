"""Offline grading end to end: records/s and peak RSS of ``rm-service grade`` as the file grows.

    python bench/offline_grading.py            # N = 10,000 and 100,000
    python bench/offline_grading.py --quick    # N = 2,000 and 20,000

Each run is the real CLI in a fresh process, on a generated R1-format file, with the rule graders
format (think_answer) + number + length and a weighted-sum reward; peak RSS is the child's
(``RUSAGE_CHILDREN``). Flat memory means the peak does not grow with N.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """
graders:
  format: {type: format, mode: think_answer}
  number: {type: number, mapper: {reference_response: ground_truth}}
  length: {type: length_penalty, max_len: 300, buffer: 300}
aggregators:
  - {type: weighted_sum, name: reward, weights: {number: 0.7, format: 0.2, length: 0.1}}
max_concurrency: 64
"""


def make_input(path: Path, n: int) -> None:
    with path.open("w") as f:
        for i in range(n):
            a, b = i % 97, i % 13
            answer = a * b if i % 4 else a * b + 1
            rec = {
                "id": i,
                "query": f"What is {a} * {b}?",
                "response": f"<think>{a} times {b}.</think>\n<answer>{answer}</answer>",
                "ground_truth": str(a * b),
            }
            f.write(json.dumps(rec) + "\n")


def run(n: int, workdir: Path) -> dict:
    src, out, cfg = workdir / f"in{n}.jsonl", workdir / f"out{n}.jsonl", workdir / "r.yaml"
    cfg.write_text(CONFIG)
    make_input(src, n)
    cmd = [
        sys.executable,
        "-m",
        "rm_service.cli",
        "grade",
        str(src),
        "-c",
        str(cfg),
        "-o",
        str(out),
        "--overwrite",
        "--no-progress",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    lines = sum(1 for _ in out.open())
    assert lines == n, (lines, n)
    return {
        "n": n,
        "wall": wall,
        "rps": n / wall,
        "peak_mib": max(peak, before) / 1024,
        "in_mib": src.stat().st_size / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = (2000, 20000) if args.quick else (10000, 100000)
    print(f"# python bench/offline_grading.py{' --quick' if args.quick else ''}")
    print(f"# python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores")
    print("| N | input MiB | wall s | records/s | peak RSS MiB |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            # RUSAGE_CHILDREN keeps the max over all children, so run the small one first.
            r = run(n, Path(d))
            print(
                f"| {r['n']} | {r['in_mib']:.1f} | {r['wall']:.2f} | {r['rps']:.0f} | "
                f"{r['peak_mib']:.1f} |"
            )


if __name__ == "__main__":
    main()
