"""First-record latency: how long until a fresh process grades its first record, and what that
first record costs, on the embedded default reward (math in a worker pool + format + length).

    python bench/first_record.py

* **Service:** ``rm-service serve`` started fresh; seconds until ``/readyz`` says ready (the
  warm-up: math workers started), then the first ``POST /grade`` of one record after that, and
  the median of the next 20.
* **Offline:** ``rm-service grade`` of a one-record file, wall time of the whole command
  (interpreter start, imports, config, warm-up, grading, summary).

Figures go in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app.uvicorn_server import free_port  # noqa: E402

RECORD = {
    "id": "a",
    "query": "What is 7*8?",
    "response": "<think>7*8=56</think>\n<answer>56</answer>",
    "ground_truth": "56",
}


def service() -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "rm_service.cli", "serve", "--port", str(port)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as c:
            listening = ready = None
            while ready is None:
                try:
                    r = c.get("/readyz")
                except httpx.TransportError:
                    time.sleep(0.02)
                    continue
                listening = listening or time.perf_counter() - start
                if r.status_code == 200:
                    ready = time.perf_counter() - start
                else:
                    time.sleep(0.02)
            body = {"records": [RECORD]}
            t = time.perf_counter()
            first = c.post("/grade", json=body)
            first_s = time.perf_counter() - t
            assert first.status_code == 200 and first.json()["results"][0]["reward"] == 1.0
            later = []
            for _ in range(20):
                t = time.perf_counter()
                c.post("/grade", json=body)
                later.append(time.perf_counter() - t)
        print(
            f"service: listening after {listening:.2f} s, ready (warm-up done) after "
            f"{ready:.2f} s; first /grade {first_s * 1e3:.1f} ms, "
            f"then median {statistics.median(later) * 1e3:.1f} ms"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def offline() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "one.jsonl"
        src.write_text(json.dumps(RECORD) + "\n")
        cmd = [sys.executable, "-m", "rm_service.cli", "grade", str(src), "-o",
               str(Path(tmp) / "out.jsonl"), "--overwrite", "--no-progress"]  # fmt: skip
        took = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
            took.append(time.perf_counter() - t)
        print(f"offline: one record, whole command {min(took):.2f} s (best of 3)")


def main() -> None:
    print("command: python bench/first_record.py")
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, "
        f"{len(os.sched_getaffinity(0))} cores"
    )
    service()
    offline()


if __name__ == "__main__":
    main()
