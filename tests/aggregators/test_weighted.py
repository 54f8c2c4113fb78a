"""WeightedSumAggregator, MinAggregator, MaxAggregator: values, weights, config errors.

The on_error policies are exercised across every aggregator in test_policy.py; this file pins the
arithmetic and the construction rules.
"""

from __future__ import annotations

import pytest

from aggregators._weighted import MaxAggregator, MinAggregator, WeightedSumAggregator
from rm_service import ConfigError, GraderScore
from tests.support import results

# --- weighted sum: arithmetic -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "scores", "expected"),
    [
        ({"a": 3, "b": 1}, {"a": 1.0, "b": 0.0}, 0.75),  # normalised: 3/4 and 1/4
        ({"a": 0.75, "b": 0.25}, {"a": 1.0, "b": 0.0}, 0.75),  # same weights, other scale
        ({"a": 2, "b": 2}, {"a": 1.0, "b": 1.0}, 1.0),  # sum of weights 4 still tops out at 1
        ({"a": 1}, {"a": 0.3}, 0.3),  # a single component passes through
        ({"a": 1, "b": 0}, {"a": 0.4, "b": 1.0}, 0.4),  # weight 0 contributes nothing
        ({"a": 1, "b": 1, "c": 2}, {"a": 0.0, "b": 1.0, "c": 0.5}, 0.5),  # (0 + 1 + 1) / 4
    ],
)
def test_weighted_sum_normalises_weights(
    weights: dict[str, float], scores: dict[str, float], expected: float
) -> None:
    out = WeightedSumAggregator("reward", weights)(results(**scores))
    assert isinstance(out, GraderScore)
    assert out.name == "reward"
    assert out.score == pytest.approx(expected)


def test_weighted_sum_exposes_normalised_weights() -> None:
    agg = WeightedSumAggregator("reward", {"a": 3, "b": 1})
    assert agg.weights == pytest.approx({"a": 0.75, "b": 0.25})
    assert agg.components == ("a", "b")


def test_weighted_sum_float_rounding_does_not_leave_unit_interval() -> None:
    # These normalised weights sum to 1.0000000000000002 in floats; all-1 scores must still give
    # a score of 1.0, not an "aggregate not in [0, 1]" error.
    weights = {"a": 0.1, "b": 0.45, "c": 0.7, "d": 7, "e": 0.2}
    out = WeightedSumAggregator("reward", weights)(results(**dict.fromkeys(weights, 1.0)))
    assert isinstance(out, GraderScore)
    assert out.score == 1.0


def test_weighted_sum_reads_as_users_expect() -> None:
    """0.2*1 + 0.1*1 is 0.30000000000000004 in floats; the reward written to files reads 0.3."""
    weights = {"correct": 0.7, "format": 0.2, "length": 0.1}
    out = WeightedSumAggregator("reward", weights)(results(correct=0.0, format=1.0, length=1.0))
    assert isinstance(out, GraderScore)
    assert repr(out.score) == "0.3"


def test_weighted_sum_reason_lists_contributions() -> None:
    out = WeightedSumAggregator("reward", {"correct": 3, "fmt": 1})(results(correct=1.0, fmt=0.5))
    assert isinstance(out, GraderScore)
    assert out.reason == "0.75*correct(1) + 0.25*fmt(0.5)"


# --- weighted sum: equal weights (weights=None) -------------------------------------------------


def test_equal_weights_resolved_at_bind() -> None:
    agg = WeightedSumAggregator("reward")
    agg.bind(["a", "b", "c", "d"])
    assert agg.components == ("a", "b", "c", "d")
    assert agg.weights == pytest.approx(dict.fromkeys("abcd", 0.25))
    out = agg(results(a=1.0, b=1.0, c=0.0, d=0.0, other=1.0))  # "other" is not a component
    assert isinstance(out, GraderScore)
    assert out.score == pytest.approx(0.5)


def test_equal_weights_unbound_take_the_mean_of_what_arrives() -> None:
    agg = WeightedSumAggregator("reward")
    assert agg.weights is None
    out = agg(results(a=1.0, b=0.0, c=0.5))
    assert isinstance(out, GraderScore)
    assert out.score == pytest.approx(0.5)


def test_equal_weights_with_nothing_to_bind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no components"):
        WeightedSumAggregator("reward").bind([])


# --- weighted sum: zero weights are not read ----------------------------------------------------


def test_zero_weight_component_failure_does_not_unscore() -> None:
    # weight 0 cannot move the reward, so its error cannot either (it is not a component)
    agg = WeightedSumAggregator("reward", {"a": 1, "logged": 0})
    assert agg.components == ("a",)
    out = agg(results(a=0.6, logged="timeout"))
    assert isinstance(out, GraderScore)
    assert out.score == pytest.approx(0.6)


def test_zero_weight_names_are_still_checked_at_bind() -> None:
    agg = WeightedSumAggregator("reward", {"a": 1, "typo": 0})
    with pytest.raises(ConfigError, match=r"unknown component\(s\) \['typo'\].*available"):
        agg.bind(["a", "b"])


def test_bind_rejects_unknown_weighted_name() -> None:
    agg = WeightedSumAggregator("reward", {"a": 1, "nope": 1})
    with pytest.raises(ConfigError, match=r"\['nope'\]; available: \['a', 'b'\]"):
        agg.bind(["a", "b"])


# --- weighted sum: config errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ({"a": 1, "b": -0.5}, "must be >= 0"),  # negative: result could leave [0, 1]
        ({"a": 0, "b": 0.0}, "all weights are zero"),  # nothing to normalise by
        ({}, "non-empty mapping"),  # empty: None is the way to say "equal weights"
        (["a", "b"], "non-empty mapping"),  # a list is not weights
        ({"a": "1"}, "finite number"),  # no string coercion
        ({"a": True}, "finite number"),  # bool is not a weight
        ({"a": float("nan")}, "finite number"),
        ({"a": float("inf")}, "finite number"),
        ({"a": 1e308, "b": 1e308}, "past the float range"),  # was a raw OverflowError
        ({"": 1}, "component names"),
    ],
)
def test_weighted_sum_bad_weights(weights: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        WeightedSumAggregator("reward", weights)  # type: ignore[arg-type]


def test_weighted_sum_needs_a_name() -> None:
    with pytest.raises(ConfigError, match="needs a name"):
        WeightedSumAggregator("", {"a": 1})


# --- min / max ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "scores", "expected", "reason"),
    [
        (MinAggregator, {"a": 0.9, "b": 0.2, "c": 0.5}, 0.2, "min is b (0.2) of 3"),
        (MaxAggregator, {"a": 0.9, "b": 0.2, "c": 0.5}, 0.9, "max is a (0.9) of 3"),
        (MinAggregator, {"a": 0.0, "b": 1.0}, 0.0, "min is a (0) of 2"),  # a real 0 is a score
        (MaxAggregator, {"a": 1.0}, 1.0, "max is a (1) of 1"),
    ],
)
def test_min_max_values(
    cls: type[MinAggregator], scores: dict[str, float], expected: float, reason: str
) -> None:
    out = cls("r", list(scores))(results(**scores))
    assert isinstance(out, GraderScore)
    assert out.score == expected
    assert out.reason == reason


def test_min_reads_only_its_components() -> None:
    out = MinAggregator("r", ["a", "b"])(results(a=0.7, b=0.8, c=0.0))  # c is not read
    assert isinstance(out, GraderScore)
    assert out.score == 0.7


def test_min_components_none_resolves_to_every_name_at_bind() -> None:
    agg = MinAggregator("r")
    agg.bind(["a", "b"])
    assert agg.components == ("a", "b")
    with pytest.raises(ConfigError, match="no components"):
        MaxAggregator("r").bind([])


@pytest.mark.parametrize(
    ("components", "match"),
    [
        ("ab", "list of non-empty names"),  # a bare string would read 'a' and 'b'
        (["a", ""], "list of non-empty names"),
        ([], "components is empty"),  # empty must not silently mean "every component"
    ],
)
def test_min_max_bad_components(components: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        MinAggregator("r", components)  # type: ignore[arg-type]


def test_min_bind_rejects_unknown_names() -> None:
    with pytest.raises(ConfigError, match=r"\['z'\]; available"):
        MinAggregator("r", ["a", "z"]).bind(["a", "b"])


def test_reprs_show_the_configuration() -> None:
    assert "weights={'a': 0.5, 'b': 0.5}" in repr(WeightedSumAggregator("r", {"a": 1, "b": 1}))
    assert repr(MinAggregator("r", ["a"], on_error=0.0)) == "MinAggregator(name='r', on_error=0.0)"
