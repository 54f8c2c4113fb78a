"""Regression (2507b21 + 6ea3cd8): records read ahead for a judge's ``prepare_ahead`` were
dropped when the input raised ``KeyboardInterrupt`` / ``SystemExit`` within the same 16-record
batch.

Before: the input was read one record at a time, so with ``max_concurrency=1`` every record the
input yielded before it raised was graded and yielded, then the interrupt was re-raised. After:
``JobSource._read`` pulls 16 records into a local list before handing any out; a
``BaseException`` from ``next()`` escapes ``_read`` and the records already pulled are never
graded nor yielded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from graders import RelevanceGrader
from rm_service import GradingRunner
from rm_service._result import GraderScore
from tests.support import FakeJudge, verdict


def _input(n: int, exc: BaseException) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"id": f"r{i}", "query": "What is the capital of France?", "response": "Paris."}
    raise exc


async def _stream(exc: BaseException) -> tuple[list[Any], BaseException | None]:
    runner = GradingRunner(
        {"rel": RelevanceGrader(model=FakeJudge(verdict(4)), cross_check="off")},
        max_concurrency=1,
    )
    got: list[Any] = []
    raised: BaseException | None = None
    try:
        async for rec in runner.astream(_input(3, exc)):
            got.append(rec.id)
    except BaseException as e:
        raised = e
    return got, raised


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3)], ids=["kbi", "sysexit"])
def test_records_before_an_input_interrupt_are_still_graded(exc: BaseException) -> None:
    got, raised = asyncio.run(_stream(exc))
    assert type(raised) is type(exc)
    # 774cb71: ['r0', 'r1', 'r2'] then the interrupt; ac357d3: [] then the interrupt.
    assert got == ["r0", "r1", "r2"]


async def test_a_grader_s_own_prepare_method_is_not_the_runner_s_hook() -> None:
    """Regression (2507b21, review): the hook was named ``prepare``, so a custom grader whose own
    ``prepare`` meant something else was called with batches of records. It is
    ``prepare_ahead`` now; a ``prepare`` of the grader's own is left alone."""
    called: list[Any] = []

    class Custom:
        name = "custom"

        def prepare(self, *args: Any) -> None:  # the user's own meaning
            called.append(args)

        async def aevaluate(self, **fields: Any) -> GraderScore:
            await asyncio.sleep(0)
            return GraderScore(name=self.name, score=1.0)

    records = [{"response": "x"} for _ in range(20)]
    results = await GradingRunner({"custom": Custom()}).agrade(records)
    assert [r.components["custom"].score for r in results] == [1.0] * 20
    assert called == []
