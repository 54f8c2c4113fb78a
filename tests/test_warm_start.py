"""Warm start: what a grader loads (a worker pool, a local model) is loaded before the first
record is graded and timed, on the offline face too, and a grader that cannot start is named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from graders import BaseGrader
from rm_service import GradingRunner, agrade_file


class Loads(BaseGrader):
    """Scores 1 when its ``aload`` ran before the call, 0 when the call had to wait for it."""

    def __init__(self, name: str, fail: bool = False) -> None:
        super().__init__(name=name)
        self.fail = fail
        self.loaded = False

    async def aload(self) -> None:
        if self.fail:
            raise OSError("no model directory at /nowhere")
        self.loaded = True

    async def _aevaluate(self, response: str) -> Any:
        return 1.0 if self.loaded else 0.0


async def test_offline_grading_loads_graders_before_the_first_record(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "response": "r"}) + "\n" for i in range(5)))
    out = tmp_path / "out.jsonl"
    runner = GradingRunner(
        {"warm": Loads("warm"), "broken": Loads("broken", fail=True)},
        aggregators=[],
        reward="warm",
    )
    result = await agrade_file(runner, src, out, progress=False)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["scores"]["warm"] for r in rows] == [1.0] * 5  # loaded before record 0
    assert any(
        "grader 'broken' could not start (OSError: no model directory at /nowhere)" in w
        for w in result.warnings
    )


async def test_runner_aload_names_what_failed_and_loads_each_grader_once() -> None:
    shared = Loads("a")
    calls = []
    original = shared.aload

    async def counted() -> None:
        calls.append(1)
        await original()

    shared.aload = counted  # type: ignore[method-assign]
    runner = GradingRunner({"a": shared, "b": Loads("b", fail=True)}, aggregators=[], reward="a")
    runner.grader_configs["a2"] = runner.grader_configs["a"]  # one grader under two names
    errors = await runner.aload()
    assert errors == {"b": "OSError: no model directory at /nowhere"}
    assert len(calls) == 1 and shared.loaded
