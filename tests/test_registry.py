"""One registry for graders and aggregators: the same decorator, the same name-or-``module:attr``
resolution, the same parameter check and the same refusals."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from aggregators import FunctionAggregator, aggregator, get_aggregator, list_aggregators
from aggregators import _registry as agg_registry
from graders import _base as grader_base
from graders import get_grader, register_grader
from rm_service import ConfigError, GraderResult, GraderScore
from tests.support import results


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    """Names a test registers, unregistered afterwards from both registries."""
    names: list[str] = []
    yield names
    for name in names:
        agg_registry._REGISTRY.pop(name, None)
        grader_base._REGISTRY.pop(name, None)


def test_aggregator_decorator_on_a_function(cleanup: list[str]) -> None:
    cleanup.append("at_least_for_test")

    @aggregator(name="at_least_for_test")
    def at_least(results: Mapping[str, GraderResult], threshold: float = 0.5) -> float:
        ok = [r for r in results.values() if isinstance(r, GraderScore)]
        return float(all(r.score >= threshold for r in ok))

    assert isinstance(at_least, FunctionAggregator)  # usable directly, like a @grader function
    assert "at_least_for_test" in list_aggregators()
    built = get_aggregator("at_least_for_test", name="r", threshold=0.9)
    out = built(results(a=0.8))
    assert isinstance(out, GraderScore)
    assert (out.name, out.score) == ("r", 0.0)  # threshold=0.9 was bound
    assert get_aggregator("at_least_for_test").name == "at_least_for_test"
    with pytest.raises(ConfigError, match="thresh"):
        get_aggregator("at_least_for_test", thresh=0.9)


def test_aggregator_decorator_on_a_class(cleanup: list[str]) -> None:
    cleanup.append("lowest_for_test")

    @aggregator(name="lowest_for_test")
    class Lowest:
        def __init__(self, name: str, floor: float = 0.0) -> None:
            self.name, self.floor = name, floor

        def __call__(self, results: Mapping[str, GraderResult]) -> float:
            scores = [r.score for r in results.values() if isinstance(r, GraderScore)]
            return max(self.floor, min(scores))

    assert aggregator(name="lowest_for_test")(Lowest) is Lowest  # the same class again: no-op
    out = get_aggregator("lowest_for_test", name="low", floor=0.2)(results(a=0.1, b=0.7))
    assert isinstance(out, GraderScore)
    assert out.score == pytest.approx(0.2)


def test_built_in_aggregators_register_through_the_decorator() -> None:
    assert {"weighted_sum", "min", "max", "gate", "formula"} <= set(list_aggregators())
    assert isinstance(grader_base._REGISTRY, type(agg_registry._REGISTRY))


@pytest.mark.parametrize(
    ("register", "kind"),
    [(register_grader, "grader"), (agg_registry.register_aggregator, "aggregator")],
)
def test_both_registries_refuse_the_same_names(
    register: Callable[[str, Any], None], kind: str
) -> None:
    with pytest.raises(ConfigError, match=f"{kind} name must be .* without ':'"):
        register("pkg:thing", lambda **_: None)  # ':' is reserved for import strings
    with pytest.raises(ConfigError, match="is not callable"):
        register("not_callable_for_test", 3)


def test_both_resolve_unknown_names_the_same_way() -> None:
    with pytest.raises(ConfigError, match=r"unknown grader 'nope'.*'package\.module:attr'"):
        get_grader("nope")
    with pytest.raises(
        ConfigError, match=r"unknown aggregator type 'nope'.*'package\.module:attr'"
    ):
        get_aggregator("nope")


def test_grader_params_are_checked_by_name_before_the_call() -> None:
    # The aggregators' check, now the graders' too: the offending name, and what is accepted.
    with pytest.raises(ConfigError, match=r"'string_match' does not take .*\['bogus'\].*'mode'"):
        get_grader("string_match", bogus=1)
