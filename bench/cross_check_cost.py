"""What the judges' offline cross-checks cost: CPU per record of the relevance embedding check
(two MiniLM embeddings, query and response) and of the offline harm detector, with every record
in flight at once (so the embedder batches across records, as it does under the runner).

    python bench/cross_check_cost.py [N]      # default 300 records

The records are the side-by-side's ("Question i: what is i + i?" / "The answer is 2i. ..."), all
distinct, so no cache helps. Needs the ``local`` extra. Figures go in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graders._harm import OfflineHarmGrader
from rm_service.models._embed import Embedder


async def main(n: int) -> None:
    data = [
        (
            f"Question {i}: what is {i} + {i}?",
            f"The answer is {2 * i}. It is the sum of two equal terms.",
        )
        for i in range(n + 20)
    ]
    embedder = Embedder()
    embedder.load()
    harm = OfflineHarmGrader(name="harmless_offline")
    await harm.aload()
    checks: dict[str, Callable[[str, str], Awaitable[Any]]] = {
        "relevance cross-check (2 embeddings)": embedder.asimilarity,
        "harmfulness cross-check (offline detector)": lambda q, r: harm.aevaluate(
            response=r, query=q
        ),
    }
    for label, check in checks.items():
        await asyncio.gather(*(check(q, r) for q, r in data[n:]))  # warm, and not timed
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(check(q, r) for q, r in data[:n]))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"{label}: {cpu / n * 1e3:.2f} ms CPU and {wall / n * 1e3:.2f} ms wall per record")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    print(f"command: python bench/cross_check_cost.py {n}")
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, "
        f"{len(os.sched_getaffinity(0))} cores"
    )
    asyncio.run(main(n))
