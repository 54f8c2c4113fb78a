"""MathGrader in two source trees, result by result: the same scores, reasons and metadata?

    python bench/math_differential.py OLD_TREE [NEW_TREE]     (NEW_TREE: this checkout)

e.g. ``git worktree add /tmp/wt_math HEAD`` and ``python bench/math_differential.py
/tmp/wt_math``. Each tree grades, in a subprocess of its own (its own ``graders`` on
``sys.path``, its own worker pool):

* ``equiv``: the labelled pairs of ``tests/data/math_equiv.jsonl``, one at a time through one
  grader (what a grader learns from earlier checks is in play) and then all at once;
* ``grpo``: the GRPO-shaped batch of ``bench/math_grpo.py`` (150 golds x 16 completions)
  through ``GradingRunner(max_concurrency=64)``, twice over one grader (cold, then warm);
* ``red_team``: the red-team cases with a reference answer (``tests.red_team.load_cases``),
  with their query (the echo check), one at a time and all at once.

A result is its score (or error kind and message), reason and metadata. Prints the count of
results compared and every one that differs; exits 1 if any does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import asyncio, json, logging, sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[1] + "/bench")
logging.getLogger("math_verify").setLevel(logging.ERROR)
from graders import MathGrader
from rm_service import GraderConfig, GradingRunner
from tests.red_team import load_cases
from math_grpo import batch


def plain(result):
    score = getattr(result, "score", None)
    if score is None:
        return ["error", result.kind, result.error]
    return ["score", score, result.reason, json.loads(json.dumps(result.metadata, default=str))]


async def one_by_one(records):
    grader = MathGrader()
    return [plain(await grader.aevaluate(**r)) for r in records]


async def together(records):
    grader = MathGrader()
    return [plain(r) for r in await asyncio.gather(*(grader.aevaluate(**r) for r in records))]


def runner_twice(records):
    grader = MathGrader()
    config = GraderConfig(grader=grader, mapper={"reference_response": "gold"})
    runner = GradingRunner({"m": config}, max_concurrency=64)
    out = []
    for _ in range(2):
        out += [plain(r) for r in asyncio.run(runner.arun(records))["m"]]
    return out


equiv = [
    {"response": c["pred"], "reference_response": c["gold"]}
    for c in map(json.loads, open(sys.argv[1] + "/tests/data/math_equiv.jsonl"))
]
red = [
    {"response": c["response"], "reference_response": c["reference"], "query": c["query"]}
    for c in load_cases()
    if c.get("reference") is not None
]
results = {
    "equiv/one_by_one": asyncio.run(one_by_one(equiv)),
    "equiv/together": asyncio.run(together(equiv)),
    "grpo/runner": runner_twice(batch(150, 16)),
    "red_team/one_by_one": asyncio.run(one_by_one(red)),
    "red_team/together": asyncio.run(together(red)),
}
print(json.dumps(results))
"""


def grade_in(tree: Path) -> dict[str, list[Any]]:
    """Every result of every set, graded by ``tree``'s code in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tree)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, list[Any]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        return 2
    old_tree = Path(sys.argv[1]).resolve()
    new_tree = Path(sys.argv[2]).resolve() if len(sys.argv) == 3 else ROOT
    old, new = grade_in(old_tree), grade_in(new_tree)
    compared = differ = 0
    for name, old_results in old.items():
        new_results = new[name]
        assert len(old_results) == len(new_results), name
        for i, (a, b) in enumerate(zip(old_results, new_results, strict=True)):
            compared += 1
            if a != b:
                differ += 1
                print(f"{name}[{i}]:\n  old {a}\n  new {b}")
        print(f"{name}: {len(old_results)} results")
    print(f"old {old_tree} vs new {new_tree}: {compared} results compared, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
