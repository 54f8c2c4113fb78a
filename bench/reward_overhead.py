"""Time a GRPO step spends in the reward: in-process vs the service over loopback.

    python bench/reward_overhead.py                 # 64 completions, 300 batches per mode
    python bench/reward_overhead.py --batch 64 --batches 300 --warmup 30

What: the wall time of one reward call for a batch of ``--batch`` completions with the rule
graders of ``examples/rules.yaml`` (format, number, length; a weighted sum), as TRL makes it: an
``async`` reward function run with ``asyncio.run_coroutine_threadsafe`` on a background
event-loop thread while the caller blocks on ``.result()``. Four modes:

* ``in-process``: ``RMServiceReward(config)``, one function;
* ``in-process x3``: ``per_component()``, three functions gathered, one grading pass;
* ``remote``: ``RemoteReward(url)`` against ``rm-service serve`` (run as
  ``python -m rm_service.cli serve``) in its own process on 127.0.0.1, the real uvicorn server;
* ``remote x3``: per-component functions over the same service;
* ``verl remote``: the same batch as verl's reward loop scores it, one ``compute_score(...,
  url=...)`` per sample, all 64 gathered (the remote client coalesces them into shared requests).

The figure of merit is what ``remote`` adds over ``in-process`` per batch (target ≤ 10 ms):
JSON both ways, the HTTP round trip, the server's validation and response shaping. The records
are the 32 math samples of ``examples/math_sample.jsonl`` repeated, as TRL would send them
(``prompt``, ``completion`` text, plus the dataset's ``ground_truth`` column). Client and server
share the machine's cores. Traffic stays on 127.0.0.1; the server is killed in a ``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rm_service.integrations.trl import RemoteReward, RMServiceReward  # noqa: E402
from tests.app.uvicorn_server import free_port  # noqa: E402

CONFIG = ROOT / "examples" / "rules.yaml"
SAMPLE = ROOT / "examples" / "math_sample.jsonl"


def batch(n: int) -> dict[str, Any]:
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]
    rows = [rows[i % len(rows)] for i in range(n)]
    return {
        "prompts": [r["query"] for r in rows],
        "completions": [r["response"] for r in rows],
        "completion_ids": [list(r["response"].encode()) for r in rows],
        "ground_truth": [r["ground_truth"] for r in rows],
    }


class TrlLoop:
    """TRL's arrangement: a daemon thread running an event loop; the caller blocks on results."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def call(self, funcs: list[Callable[..., Any]], kwargs: dict[str, Any]) -> list[Any]:
        async def gather() -> list[Any]:
            return await asyncio.gather(*(f(**kwargs) for f in funcs))

        return asyncio.run_coroutine_threadsafe(gather(), self.loop).result()


outputs: list[list[Any]] = []


def measure(
    trl: TrlLoop, funcs: list[Callable[..., Any]], kwargs: dict[str, Any], n: int, warmup: int
) -> list[float]:
    for _ in range(warmup):
        out = trl.call(funcs, kwargs)
    assert all(len(o) == len(kwargs["prompts"]) for o in out)
    outputs.append(out)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        trl.call(funcs, kwargs)
        times.append(time.perf_counter() - t0)
    return times


def verl_wave(url: str, kwargs: dict[str, Any]) -> Callable[..., Any]:
    """The batch as verl's reward loop scores it: one ``compute_score`` per sample, gathered."""
    from rm_service.integrations.verl import compute_score

    async def wave(**_: Any) -> list[float]:
        outs = await asyncio.gather(
            *(
                compute_score("bench", c, g, {"question": p}, url=url)
                for p, c, g in zip(
                    kwargs["prompts"], kwargs["completions"], kwargs["ground_truth"], strict=True
                )
            )
        )
        return [o["score"] for o in outs]

    return wave


def start_service(port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "rm_service.cli", "serve", "--config", str(CONFIG)]
    cmd += ["--port", str(port)]
    cmd += ["--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"service exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("service did not start in 60 s")


def row(name: str, times: list[float]) -> tuple[str, float, float, float]:
    ms = sorted(t * 1000 for t in times)
    p50 = statistics.median(ms)
    p90 = ms[int(0.9 * (len(ms) - 1))]
    return name, p50, p90, statistics.fmean(ms)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    args = p.parse_args(argv)
    kwargs = batch(args.batch)
    trl = TrlLoop()
    rows = []
    local = RMServiceReward(str(CONFIG))
    rows.append(row("in-process", measure(trl, [local], kwargs, args.batches, args.warmup)))
    rows.append(
        row("in-process x3", measure(trl, local.per_component(), kwargs, args.batches, args.warmup))
    )
    port = free_port()
    proc = start_service(port)
    try:
        remote = RemoteReward(f"http://127.0.0.1:{port}")
        rows.append(row("remote", measure(trl, [remote], kwargs, args.batches, args.warmup)))
        rows.append(
            row(
                "remote x3", measure(trl, remote.per_component(), kwargs, args.batches, args.warmup)
            )
        )
        verl = verl_wave(f"http://127.0.0.1:{port}", kwargs)
        rows.append(row("verl remote", measure(trl, [verl], kwargs, args.batches, args.warmup)))
    finally:
        proc.kill()
        proc.wait()
    # The same rewards both ways (one sample has a non-numeric reference: None in every mode).
    assert outputs[0] == outputs[2] and outputs[1] == outputs[3], "remote differs from in-process"
    # verl cannot skip: its fallback 0.0 stands where the others say None.
    assert [[0.0 if v is None else v for v in outputs[0][0]]] == outputs[4], "verl differs"
    print(f"$ python bench/{Path(__file__).name} " + " ".join(argv or sys.argv[1:]))
    print(
        f"machine: {os.cpu_count()} cores ({platform.processor() or 'unknown'}), "
        f"Python {platform.python_version()}; batch={args.batch} completions, "
        f"{args.batches} batches per mode after {args.warmup} warm-up"
    )
    print(f"{'mode':<16}{'p50 ms':>9}{'p90 ms':>9}{'mean ms':>9}")
    for name, p50, p90, mean in rows:
        print(f"{name:<16}{p50:>9.2f}{p90:>9.2f}{mean:>9.2f}")
    added = rows[2][1] - rows[0][1]
    added3 = rows[3][1] - rows[1][1]
    print(f"remote adds {added:.2f} ms per batch at p50 ({added3:.2f} ms with 3 functions);")
    print(f"target <= 10 ms: {'met' if max(added, added3) <= 10 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
