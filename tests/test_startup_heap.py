"""The console script's ``grade`` and ``serve`` freeze their start-up heap once loaded; a program
that calls ``main`` itself keeps its heap as it is.

``gc.get_freeze_count()`` says whether the heap was frozen; each test unfreezes it again, so the
test process's own collections are unchanged."""

from __future__ import annotations

import gc
import json
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rm_service.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def _serve_frozen(monkeypatch: pytest.MonkeyPatch, argv: list[str], **kw: Any) -> list[int]:
    """What ``gc.get_freeze_count()`` read when uvicorn would have started."""
    import uvicorn

    seen: list[int] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: seen.append(gc.get_freeze_count()))
    assert main(["serve", *argv], **kw) == 0
    return seen


def test_the_console_script_freezes_the_servers_heap_before_uvicorn_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (frozen,) = _serve_frozen(monkeypatch, [], freeze_heap=True)
    assert frozen > 0


def test_a_program_calling_main_keeps_its_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _serve_frozen(monkeypatch, []) == [0]


def test_each_worker_freezes_its_own_heap_when_the_script_started_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rm_service._serve import SPEC_ENV, app_from_env

    monkeypatch.setenv(SPEC_ENV, "{}")  # serve sets it; restored after the test
    monkeypatch.delenv("RM_SERVICE_API_KEY", raising=False)
    for freeze, expect_frozen in ((True, True), (False, False)):
        gc.unfreeze()
        assert _serve_frozen(monkeypatch, ["--workers", "2"], freeze_heap=freeze) == [0]
        spec = json.loads(os.environ[SPEC_ENV])
        assert spec["freeze_heap"] is freeze
        app_from_env()  # what each worker process runs
        assert (gc.get_freeze_count() > 0) is expect_frozen


@pytest.mark.parametrize("freeze", [True, False])
def test_grade_freezes_only_as_the_console_script(tmp_path: Path, freeze: bool) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"query": "2+2?", "response": "4", "ground_truth": "4"}) + "\n")
    config = tmp_path / "r.yaml"
    config.write_text(
        "graders:\n  number:\n    type: number\n    mapper: {reference_response: ground_truth}\n"
    )
    argv = ["grade", str(data), "--config", str(config), "--no-progress"]
    assert main(argv, freeze_heap=freeze) == 0
    assert (gc.get_freeze_count() > 0) is freeze
    assert (tmp_path / "in.graded.jsonl").read_text().count("\n") == 1


def test_the_installed_script_is_the_console_entry() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"rm-service": "rm_service.cli:console"}
