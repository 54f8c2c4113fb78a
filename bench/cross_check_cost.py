"""What the judges' offline cross-checks cost: CPU per record of the relevance embedding check
(two MiniLM embeddings, query and response) and of the offline harm detector, with every record
in flight at once (so the embedder batches across records, as it does under the runner).

    python bench/cross_check_cost.py [N]          # default 300 records
    python bench/cross_check_cost.py 100 --long   # also answers of about 37, 127 and 247 words

The records are the side-by-side's ("Question i: what is i + i?" / "The answer is 2i. ..."), all
distinct, so no cache helps. ``--long`` adds rows for longer answers (a two-sentence explanation
repeated 1, 4 and 8 times), to show how the cost grows with the text. Needs the ``local`` extra.
Figures go in ``docs/benchmarks.md``.
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

_EXPLANATION = (
    "To solve this, first note that the sum of two equal terms is twice the term. "
    "We can check it by adding the numbers directly, or by multiplying by two. "
)


def _records(n: int, repeats: int) -> list[tuple[str, str]]:
    if repeats == 0:  # the side-by-side's records
        return [
            (
                f"Question {i}: what is {i} + {i}?",
                f"The answer is {2 * i}. It is the sum of two equal terms.",
            )
            for i in range(n + 20)
        ]
    return [
        (
            f"Question {i}: what is {i} + {i}? Show your work.",
            f"Case {i}. " + _EXPLANATION * repeats + f"So the answer is {2 * i}.",
        )
        for i in range(n + 20)
    ]


async def main(n: int, long: bool) -> None:
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
    for repeats in (0, 1, 4, 8) if long else (0,):
        data = _records(n, repeats)
        words = len(data[0][1].split())
        for label, check in checks.items():
            await asyncio.gather(*(check(q, r) for q, r in data[n:]))  # warm, and not timed
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(check(q, r) for q, r in data[:n]))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(
                f"answers of ~{words} words, {label}: {cpu / n * 1e3:.2f} ms CPU and "
                f"{wall / n * 1e3:.2f} ms wall per record"
            )


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--long"]
    long = "--long" in sys.argv[1:]
    n = int(args[0]) if args else 300
    print(f"command: python bench/cross_check_cost.py {n}{' --long' if long else ''}")
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, "
        f"{len(os.sched_getaffinity(0))} cores"
    )
    asyncio.run(main(n, long))
