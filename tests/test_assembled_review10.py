"""Regression (6c87b23): ``RecordResult`` is built with ``assembled`` (no validation), so the
``index`` is no longer coerced to ``int``.

``GradingRunner.astream(records, start=...)`` numbers records from ``start``. Before, pydantic
validated ``RecordResult.index: int`` and a numpy integer (an offset read from a pandas frame)
or a bool came out as a plain ``int``. At ac357d3 the value was kept as given: ``index`` was
``np.int64(5)`` (``json.dumps(record_json(rec))`` raised ``TypeError``) or ``True``. Now
``start`` is read as an int once (``operator.index``), and anything else is refused by name.
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


def _runner(awaited: bool) -> GradingRunner:
    cfgs: dict[str, Any] = {"g": graders.FunctionGrader(lambda response: 0.5, name="g")}
    if awaited:
        cfgs["h"] = graders.FunctionGrader(_aw, name="h")
    return GradingRunner(cfgs)


@pytest.mark.parametrize("awaited", [False, True], ids=["inline", "awaited"])
@pytest.mark.parametrize("start", [np.int64(5), True], ids=["np.int64", "bool"])
def test_index_is_an_int_whatever_int_start_was(start: Any, awaited: bool) -> None:
    runner = _runner(awaited)

    async def stream() -> list[Any]:
        return [r async for r in runner.astream([{"response": "a"}], start=start)]

    (rec,) = asyncio.run(stream())
    assert type(rec.index) is int and rec.index == int(start)  # 774cb71: int; ac357d3: as given
    json.dumps(record_json(rec))  # ac357d3: TypeError for np.int64


@pytest.mark.parametrize("start", [5.5, "5", float("nan"), None], ids=repr)
def test_a_start_that_is_no_int_is_refused_by_name(start: Any) -> None:
    async def stream() -> list[Any]:
        return [r async for r in _runner(True).astream([{"response": "a"}], start=start)]

    with pytest.raises(TypeError, match="start must be an int"):
        asyncio.run(stream())
