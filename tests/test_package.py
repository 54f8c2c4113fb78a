"""Package contracts: the public surface is declared, torch stays out, the code is lint-clean."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package", ["rm_service", "rm_service.models", "graders", "aggregators"])
def test_all_matches_public_names(package: str) -> None:
    mod = importlib.import_module(package)
    # dir(), not vars(): a lazy package lists the names its __getattr__ will load
    public = {n for n in dir(mod) if not n.startswith("_") and n not in {"annotations"}}
    submodules = {n for n in public if type(getattr(mod, n)).__name__ == "module"}
    assert set(mod.__all__) == public - submodules
    assert mod.__all__ == sorted(mod.__all__, key=lambda n: (not n.isupper(), n))


def test_import_does_not_pull_torch() -> None:
    code = "import rm_service, graders, aggregators, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    result = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
