"""Review 13: a custom CallObserver's inline calls (7f2c6c6, ``inline_durations``).

Before 7f2c6c6 the runner reported every inline grader call through ``observer.finished``;
now it looks for an attribute named ``durations`` on the observer and, when there is one,
calls it as ``durations(grader)`` and appends to what it returns instead of ``finished``.
"""

from __future__ import annotations

import asyncio

from rm_service import GradingRunner
from rm_service._metrics import GraderTimer, ServiceMetrics


def exact(response: str, reference_response: str) -> float:
    return float(response == reference_response)


_RECORDS = [
    {"response": "a", "reference_response": "a"},
    {"response": "b", "reference_response": "a"},
]


class RecordingObserver:
    """A user's observer that keeps what it was told in an attribute called ``durations``:
    the CallObserver protocol has only ``started``/``finished``."""

    def __init__(self) -> None:
        self.durations: dict[str, list[float]] = {}

    def started(self, grader: str) -> None:
        pass

    def finished(self, grader: str, seconds: float, awaited: bool) -> None:
        self.durations.setdefault(grader, []).append(seconds)


def test_observer_with_a_durations_attribute_still_gets_finished_calls() -> None:
    obs = RecordingObserver()
    results = asyncio.run(GradingRunner({"exact": exact}).agrade(_RECORDS, observer=obs))
    assert [r.reward for r in results] == [1.0, 0.0]
    assert len(obs.durations["exact"]) == 2


class CountingTimer(GraderTimer):
    """The service's timer, extended by overriding ``finished`` (e.g. to log slow calls)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        super().__init__(metrics)
        self.calls: list[str] = []

    def finished(self, grader: str, seconds: float, awaited: bool) -> None:
        self.calls.append(grader)
        super().finished(grader, seconds, awaited)


def test_grader_timer_subclass_overriding_finished_is_told_of_inline_calls() -> None:
    timer = CountingTimer(ServiceMetrics())
    asyncio.run(GradingRunner({"exact": exact}).agrade(_RECORDS, observer=timer))
    assert timer.calls == ["exact", "exact"]


def test_a_mock_observer_sees_each_inline_call_as_finished() -> None:
    """A ``unittest.mock.Mock`` observer (the usual way to assert on a protocol) answers any
    attribute, ``durations`` included: its ``finished`` is then never called."""
    from unittest import mock

    obs = mock.Mock()
    asyncio.run(GradingRunner({"exact": exact}).agrade(_RECORDS, observer=obs))
    assert obs.finished.call_count == 2
    assert [c.args[0] for c in obs.finished.call_args_list] == ["exact", "exact"]
