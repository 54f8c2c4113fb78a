"""Run the real ``rm-service`` CLI in a subprocess, as a user would, for tests about exit codes
and what reaches stderr (one line, no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Rule graders only: no process pool, no model, microseconds per record.
RULES = """
graders:
  format: {type: format, mode: think_answer}
  length: {type: length_penalty, max_len: 400, buffer: 400}
aggregators:
  - type: weighted_sum
    name: reward
    weights: {format: 0.2, length: 0.1}
"""

# A slow grader (``RM_TEST_DELAY`` seconds a call), to keep a run going while another starts.
SLOW = """
graders:
  length: {type: "tests.support:slow_len", mapper: {response: response}}
aggregators:
  - type: min
    name: reward
max_concurrency: 8
"""


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RM_SERVICE_")}
    return {**base, "PYTHONPATH": str(ROOT), **extra}


def cli_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "rm_service.cli", *map(str, args)]


def cli(*args: str | Path, cwd: Path, timeout: float = 120, **extra: str) -> Any:
    """``rm-service ARGS`` in ``cwd``; returns the CompletedProcess (text stdout/stderr)."""
    return subprocess.run(
        cli_cmd(*args), cwd=cwd, env=env(**extra), capture_output=True, text=True, timeout=timeout
    )


def record(i: int, **over: Any) -> dict[str, Any]:
    rec = {"id": i, "query": "q", "response": f"<think>x</think><answer>{i}</answer>"}
    return {**rec, **over}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def one_error_line(stderr: str) -> str:
    """The stderr of a failed run: exactly one ``rm-service: error:`` line and no traceback."""
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert "Traceback" not in stderr, stderr
    errors = [x for x in lines if x.startswith("rm-service: error:")]
    assert len(errors) == 1, stderr
    return errors[0]
