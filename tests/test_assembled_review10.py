"""Regression (6c87b23): ``RecordResult`` is built with ``assembled`` (no validation), so the
``index`` is no longer coerced to ``int``.

``GradingRunner.astream(records, start=...)`` numbers records from ``start``. Before, pydantic
validated ``RecordResult.index: int`` and a numpy integer (an offset read from a pandas frame),
a whole float or a bool came out as a plain ``int``. Now the value is kept as given: ``index`` is
``np.int64(5)`` (``json.dumps(record_json(rec))`` raises ``TypeError``), ``5.0`` or ``True``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

import graders
from rm_service import GradingRunner
from rm_service._wire import record_json


async def _aw(response: str) -> float:
    return 0.5


@pytest.mark.parametrize("awaited", [False, True], ids=["inline", "awaited"])
@pytest.mark.parametrize("start", [np.int64(5), 5.0, True], ids=["np.int64", "float", "bool"])
def test_index_is_an_int_whatever_start_was(start: Any, awaited: bool) -> None:
    cfgs: dict[str, Any] = {"g": graders.FunctionGrader(lambda response: 0.5, name="g")}
    if awaited:
        cfgs["h"] = graders.FunctionGrader(_aw, name="h")
    runner = GradingRunner(cfgs)

    async def stream() -> list[Any]:
        return [r async for r in runner.astream([{"response": "a"}], start=start)]

    (rec,) = asyncio.run(stream())
    assert type(rec.index) is int and rec.index == int(start)  # 774cb71: int; ac357d3: as given
    json.dumps(record_json(rec))  # ac357d3: TypeError for np.int64
