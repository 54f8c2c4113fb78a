"""Aggregators, defects found by an adversarial review: an async aggregator that passed ``check``
and left every reward unscored, a subclass's ``combine`` returning a bool, a numpy value or a
string, and a formula naming a component such as ``format-check`` without backticks."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from aggregators import BaseAggregator, FormulaAggregator, FunctionAggregator, aggregator
from aggregators import _registry as agg_registry
from rm_service import ConfigError, GraderError, GraderResult, GraderScore, GradingRunner
from rm_service._config import load_runner
from tests.support import has_digit, results


async def _async_mean(res: Mapping[str, GraderResult]) -> float:
    return 0.5


class _AsyncCall:
    async def __call__(self, res: Mapping[str, GraderResult]) -> float:
        return 0.5


@pytest.mark.parametrize("func", [_async_mean, _AsyncCall()], ids=["function", "__call__"])
def test_an_async_aggregator_is_refused_when_built(func: Any) -> None:
    """It was wrapped as is: each record's aggregate was a coroutine, never awaited, reported
    as "not a number", so every reward was unscored after a clean ``check``."""
    with pytest.raises(ConfigError, match="is async; an aggregator combines finished results"):
        FunctionAggregator(func)
    with pytest.raises(ConfigError, match="is async"):
        GradingRunner({"a": has_digit, "b": has_digit}, aggregators=func)


@pytest.fixture
def async_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = "review_async_aggs"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            async def mean(results, floor=0.0):
                return 0.5
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    yield name
    sys.modules.pop(name, None)


def test_an_async_aggregator_in_a_config_is_refused_at_load(async_module: str) -> None:
    graders = {"a": {"type": "tests.support:has_digit"}}
    for params in ({}, {"floor": 0.1}):  # bare, and bound to its params by a partial
        config = {
            "graders": graders,
            "aggregators": [{"type": f"{async_module}:mean", "name": "reward", **params}],
        }
        with pytest.raises(ConfigError, match=r"aggregators\[0\] \(reward\): .*'mean' is async"):
            load_runner(config)


def test_an_async_function_under_the_decorator_is_refused() -> None:
    try:
        with pytest.raises(ConfigError, match="is async"):
            aggregator(name="review_async_for_test")(_async_mean)
    finally:
        agg_registry._REGISTRY.pop("review_async_for_test", None)


class _Returns(BaseAggregator):
    def __init__(self, value: Any) -> None:
        super().__init__("reward", components=["a"])
        self.value = value

    def combine(self, values: Mapping[str, float]) -> Any:
        return self.value


@pytest.mark.parametrize(
    ("value", "score"),
    [
        (True, 1.0),  # raised pydantic's strict-float ValidationError out of __call__
        ((False, "no"), 0.0),
        ("0.5", None),  # raised TypeError out of __call__
        (None, None),  # raised TypeError out of __call__
        (float("nan"), None),  # these three were right already
        (1.5, None),
        (1, 1.0),
    ],
)
def test_a_subclass_combine_is_read_as_a_function_aggregators_return(
    value: Any, score: float | None
) -> None:
    """A subclass's ``combine`` result escaped ``BaseAggregator.__call__`` as an exception for
    a bool or a string, where a function aggregator's same return is read by ``plain_reward``."""
    out = _Returns(value)(results(a=0.5))
    if score is None:
        assert isinstance(out, GraderError) and out.kind == "internal"
        why = "not in [0, 1]" if isinstance(value, float | int) else "not a number"
        assert out.error == f"aggregate {value!r} is {why}"
    else:
        assert isinstance(out, GraderScore) and out.score == score
        assert type(out.score) is float


def test_a_subclass_combine_returning_numpy_is_its_value() -> None:
    np = pytest.importorskip("numpy")
    out = _Returns(np.float32(0.25))(results(a=0.5))
    assert isinstance(out, GraderScore) and out.score == 0.25 and type(out.score) is float
    out = _Returns((np.bool_(True), "ok"))(results(a=0.5))
    assert isinstance(out, GraderScore) and (out.score, out.reason) == (1.0, "ok")
    out = _Returns(np.array([0.5]))(results(a=0.5))
    assert isinstance(out, GraderError) and "not a number" in out.error


def test_a_bare_name_that_is_no_identifier_gets_the_backticks_hint() -> None:
    """``format-check`` written bare reads as ``format - check``: the error listed two unknown
    components and the real name as available, without saying how to write it."""
    agg = FormulaAggregator("reward", "0.5 * format-check + 0.5 * `b.c`")
    with pytest.raises(ConfigError, match=r"\['format', 'check'\].*; write `format-check` in "):
        agg.bind(["format-check", "b.c"])
    with pytest.raises(ConfigError, match=r"\['x'\]; available: \['format-check', 'b.c'\]$"):
        FormulaAggregator("reward", "`format-check` * x").bind(["format-check", "b.c"])
    FormulaAggregator("reward", "`format-check` * `b.c`").bind(["format-check", "b.c"])
