"""Review 13: the batch deadline of inline graders under a patched loop clock (7f2c6c6,
``loop_clock``).

``deadline_at`` is set from ``loop.time()``; the inline graders used to check it against the
same ``loop.time``. ``loop_clock()`` now hands back ``time.monotonic`` whenever the loop's
``time`` is ``asyncio.BaseEventLoop.time`` by identity, which is also true when that class
attribute itself was patched (a fake/offset clock installed on the class), so the deadline is
compared against another clock than the one it was set on.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from rm_service import GradingRunner


def exact(response: str, reference_response: str) -> float:
    return float(response == reference_response)


def test_inline_deadline_reads_the_same_clock_it_was_set_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A loop clock that runs at the real rate but from another origin (as a fake clock does).
    def offset_time(self: asyncio.BaseEventLoop) -> float:
        return time.monotonic() - 1_000_000.0

    monkeypatch.setattr(asyncio.BaseEventLoop, "time", offset_time)
    records = [{"response": "a", "reference_response": "a"}] * 3
    results = asyncio.run(GradingRunner({"exact": exact}).agrade(records, deadline=60.0))
    errors = [r.components["exact"] for r in results if r.reward is None]
    assert errors == []
    assert [r.reward for r in results] == [1.0, 1.0, 1.0]
