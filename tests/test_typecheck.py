"""The type checker is part of the test suite, so the README's one test command runs it too.

mypy reads its settings (packages, per-module overrides, warn_unused_ignores) from pyproject.toml;
this test only runs it. A cold run also analyses the typed third-party packages our code imports
(torch, transformers, TRL), which is most of its time; mypy's incremental cache in .mypy_cache/
(git-ignored) lets later runs recheck only what changed, in CI as well as locally.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_clean() -> None:
    # One run over all four packages (not one per package): mypy checks them together anyway,
    # and a second run would only repeat the import graph.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(ROOT / ".mypy_cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
