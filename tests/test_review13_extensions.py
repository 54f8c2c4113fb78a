"""Review 13: user extensions of the aggregator and function-grader base classes (7f2c6c6).

* ``BaseAggregator.reads_only`` is worked out once, in ``__init_subclass__``, from whether the
  class's ``__call__``/``_with_policy`` are the base's. A ``__call__`` installed on the class
  afterwards (a class decorator, a patch) keeps ``reads_only = True``, and the runner then
  hands that aggregator the record's live results instead of the ``ReadOnly`` copy.
* ``FunctionGrader._select`` names ``BaseGrader._select`` instead of ``super()._select``, so a
  cooperative mixin between the two in the MRO is skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aggregators import WeightedSumAggregator
from graders import FunctionGrader
from graders._base import BaseGrader
from rm_service import GradingRunner
from rm_service._result import GraderError, GraderScore


def exact(response: str, reference_response: str) -> float:
    return float(response == reference_response)


def fill_errors(cls: type) -> type:
    """A class decorator a user might write: 'fill' failed components with 0 before combining."""
    combine_all = cls.__call__

    def __call__(self: Any, results: Mapping[str, Any]) -> Any:
        for name, r in list(results.items()):
            if isinstance(r, GraderError):
                results[name] = GraderScore(name=name, score=0.0)  # type: ignore[index]
        return combine_all(self, results)

    cls.__call__ = __call__
    return cls


@fill_errors
class FilledSum(WeightedSumAggregator):
    pass


def test_an_aggregator_whose_call_was_replaced_still_gets_read_only_results() -> None:
    def needs_b(response: str, b: str) -> float:
        return 1.0

    runner = GradingRunner(
        {"exact": exact, "needs_b": needs_b},
        aggregators=FilledSum("reward", {"exact": 0.5, "needs_b": 0.5}),
    )
    (rec,) = asyncio.run(runner.agrade([{"response": "a", "reference_response": "a"}]))
    # The runner's own guarantee: an aggregator cannot turn a failed component into a score.
    assert isinstance(rec.components["needs_b"], GraderError)
    assert rec.reward is None


class StripSelect(BaseGrader):
    """A cooperative mixin: strips whitespace from the selected fields."""

    def _select(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        kwargs = super()._select(fields)
        return {k: v.strip() if isinstance(v, str) else v for k, v in kwargs.items()}


class StrippedFunctionGrader(FunctionGrader, StripSelect):
    pass


def test_function_grader_select_is_cooperative() -> None:
    g = StrippedFunctionGrader(exact, name="exact")
    out = g.evaluate({"response": "  a\n", "reference_response": "a"})
    assert isinstance(out, GraderScore) and out.score == 1.0
