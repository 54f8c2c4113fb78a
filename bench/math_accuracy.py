"""MathGrader accuracy on the labelled equivalence cases, against raw math-verify.

    python bench/math_accuracy.py                      # figures for docs/benchmarks.md
    python bench/math_accuracy.py --failures tune      # also list the misjudged tuning cases

The cases are ``tests/data/math_equiv.jsonl``: (gold, prediction, label) triples taken from the
test suites of public evaluators (Math-Verify, lighteval, Hendrycks MATH, Qwen2.5-Math,
lm-evaluation-harness, TRL, open-r1, verl, ...) plus near-misses derived from them, each with its
source. ``split`` marks the ~30% kept out of tuning (``holdout``, chosen by a hash of the pair).

Rows:
* ``MathGrader``: ``await MathGrader().aevaluate(response=pred, reference_response=gold)``;
  equivalent means a score of 1.0 (an unscored result counts as "not equivalent").
* ``math-verify (default)``: ``verify(parse(gold), parse(pred))`` with math-verify's defaults.
* ``math-verify + $gold$``: the same with an undelimited gold wrapped in ``$...$``, the single
  change that lifts raw math-verify most; the gap to ``MathGrader`` is the rest of the grader.

Positive = "equivalent". Precision is the figure that matters for rewards: a false "equivalent"
is a reward the policy can learn to farm.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data" / "math_equiv.jsonl"


def load() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


def grade_with_grader(rows: list[dict], workers: int | None, timeout: float) -> list[bool]:
    from graders._math import MathGrader, shutdown_math_pool
    from rm_service import GraderScore

    async def main() -> list[bool]:
        grader = MathGrader(timeout=timeout, workers=workers)
        await grader.aevaluate(response="1", reference_response="1")  # start the pool
        results = await asyncio.gather(
            *(grader.aevaluate(response=r["pred"], reference_response=r["gold"]) for r in rows)
        )
        return [isinstance(r, GraderScore) and r.score == 1.0 for r in results]

    try:
        return asyncio.run(main())
    finally:
        shutdown_math_pool()


def pool_overhead(calls: int = 500) -> tuple[float, float]:
    """Microseconds per no-op job through the pool: one at a time, and many in flight."""
    from graders._math import _run_in_pool, shutdown_math_pool

    async def main() -> tuple[float, float]:
        await _run_in_pool(abs, (1,), limit=5)
        await asyncio.sleep(1.0)  # let every worker finish starting
        start = time.perf_counter()
        for _ in range(calls):
            await _run_in_pool(abs, (1,), limit=5)
        sequential = (time.perf_counter() - start) / calls
        start = time.perf_counter()
        await asyncio.gather(*(_run_in_pool(abs, (1,), limit=5) for _ in range(4 * calls)))
        concurrent = (time.perf_counter() - start) / (4 * calls)
        return sequential * 1e6, concurrent * 1e6

    try:
        return asyncio.run(main())
    finally:
        shutdown_math_pool()


def grade_raw(rows: list[dict], wrap_gold: bool) -> list[bool]:
    """Raw math-verify in this (main) thread, where its signal-based timeouts work."""
    from math_verify import parse, verify

    def delimited(text: str) -> bool:
        return "$" in text or "\\boxed" in text or "\\[" in text or "\\(" in text

    out = []
    for r in rows:
        gold = r["gold"]
        if wrap_gold and not delimited(gold):
            gold = f"${gold}$"
        try:
            out.append(bool(verify(parse(gold), parse(r["pred"]))))
        except BaseException:  # math-verify's TimeoutException is a BaseException
            out.append(False)
    return out


def figures(said: list[bool], rows: list[dict]) -> dict[str, float | int]:
    tp = sum(s and r["label"] for s, r in zip(said, rows, strict=True))
    fp = sum(s and not r["label"] for s, r in zip(said, rows, strict=True))
    fn = sum(not s and r["label"] for s, r in zip(said, rows, strict=True))
    tn = len(rows) - tp - fp - fn
    return {
        "n": len(rows),
        "accuracy": (tp + tn) / len(rows),
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def table(name: str, said: list[bool], rows: list[dict], wall: float) -> None:
    for split in ("all", "tune", "holdout"):
        idx = [i for i, r in enumerate(rows) if split == "all" or r["split"] == split]
        f = figures([said[i] for i in idx], [rows[i] for i in idx])
        print(
            f"| {name:<22} | {split:<7} | {f['n']:>3} | {f['accuracy']:.3f} | {f['precision']:.3f}"
            f" | {f['recall']:.3f} | {f['tp']:>3} | {f['fp']:>2} | {f['fn']:>2} | {f['tn']:>3} |"
            + (f" {wall:.1f} s |" if split == "all" else "       |")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=None, help="pool size (default min(4,cpu))")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-check timeout (s)")
    parser.add_argument(
        "--failures",
        choices=["none", "tune", "holdout", "all"],
        default="none",
        help="list the cases MathGrader gets wrong",
    )
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    rows = load()

    print("command:", " ".join(["python", *sys.argv]))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" math-verify {version('math-verify')}, latex2sympy2_extended "
        f"{version('latex2sympy2_extended')}, sympy {version('sympy')}"
    )
    counts = {s: sum(r["split"] == s for r in rows) for s in ("tune", "holdout")}
    positives = sum(r["label"] for r in rows)
    print(
        f"cases: {len(rows)} ({positives} equivalent, {len(rows) - positives} not); "
        f"tune {counts['tune']}, holdout {counts['holdout']}; from {DATA.relative_to(ROOT)}"
    )
    print()
    print(
        "| evaluator              | split   |   n |  acc  | prec  |  rec  "
        "|  tp | fp | fn |  tn | wall  |"
    )
    print(
        "|------------------------|---------|-----|-------|-------|-------|-----|----|----|-----|-------|"
    )
    runs: list[tuple[str, Callable[[], list[bool]]]] = [
        ("MathGrader", lambda: grade_with_grader(rows, args.workers, args.timeout)),
        ("math-verify (default)", lambda: grade_raw(rows, wrap_gold=False)),
        ("math-verify + $gold$", lambda: grade_raw(rows, wrap_gold=True)),
    ]
    ours: list[bool] = []
    for name, run in runs:
        start = time.perf_counter()
        said = run()
        wall = time.perf_counter() - start
        table(name, said, rows, wall)
        if name == "MathGrader":
            ours = said
    print()
    print(
        "wall: MathGrader over a warm pool of "
        f"{args.workers or min(4, os.cpu_count() or 1)} workers (all cases concurrently); "
        "math-verify rows in one thread."
    )
    sequential, concurrent = pool_overhead()
    print(
        f"pool overhead per call (no-op job): {sequential:.0f} us one at a time, "
        f"{concurrent:.0f} us with many in flight"
    )
    if args.failures != "none":
        print()
        for said, r in zip(ours, rows, strict=True):
            if said != r["label"] and args.failures in ("all", r["split"]):
                kind = "FP" if said else "FN"
                print(f"{kind} [{r['split']}] {r['source']}")
                print(f"   gold: {r['gold'][:160]!r}")
                print(f"   pred: {r['pred'][-160:]!r}")


if __name__ == "__main__":
    main()
