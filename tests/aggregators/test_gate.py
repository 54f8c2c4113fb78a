"""GateAggregator: pass, fail, the threshold boundary, unscored gate and inner, chaining."""

from __future__ import annotations

from typing import Any

import pytest

from aggregators._gate import GateAggregator
from aggregators._weighted import WeightedSumAggregator
from rm_service import ConfigError, GraderError, GraderScore
from tests.support import results


def gate(**kw: Any) -> GateAggregator:
    params: dict[str, Any] = {"gate": "fmt", "threshold": 1.0, "inner": "judge"}
    return GateAggregator("reward", **{**params, **kw})


@pytest.mark.parametrize(
    ("kw", "scores", "expected", "gated"),
    [
        ({}, {"fmt": 1.0, "judge": 0.7}, 0.7, False),  # passes: inner's value
        ({}, {"fmt": 0.0, "judge": 0.7}, 0.0, True),  # fails: default penalty 0
        ({"penalty": 0.1}, {"fmt": 0.0, "judge": 0.7}, 0.1, True),  # fails: custom penalty
        ({"threshold": 0.5}, {"fmt": 0.5, "judge": 0.7}, 0.7, False),  # boundary: >= passes
        ({"threshold": 0.5}, {"fmt": 0.4999, "judge": 0.7}, 0.0, True),  # just below fails
        ({"threshold": 0.0}, {"fmt": 0.0, "judge": 0.3}, 0.3, False),  # threshold 0: always open
        ({}, {"fmt": 1.0, "judge": 0.0}, 0.0, False),  # a real 0 from inner is not "gated"
        ({"penalty": 0.2}, {"fmt": 1.0, "judge": 0.0}, 0.0, False),  # ... nor the penalty
    ],
)
def test_gate_values(
    kw: dict[str, Any], scores: dict[str, float], expected: float, gated: bool
) -> None:
    out = gate(**kw)(results(**scores))
    assert isinstance(out, GraderScore)
    assert out.name == "reward"
    assert out.score == expected
    assert out.metadata["gated"] is gated


def test_gate_reasons() -> None:
    agg = gate(threshold=0.5)
    passed = agg(results(fmt=1.0, judge=0.7))
    failed = agg(results(fmt=0.2, judge=0.7))
    assert isinstance(passed, GraderScore) and isinstance(failed, GraderScore)
    assert passed.reason == "gate fmt=1 >= 0.5; judge=0.7"
    assert failed.reason == "gate fmt=0.2 < 0.5: penalty"


# --- unscored gate or inner ---------------------------------------------------------------------


def test_unscored_gate_stays_unscored_by_default() -> None:
    # A judge timeout on the gate is not a format failure: no penalty, no number.
    out = gate(penalty=0.0)(results(fmt="timeout", judge=0.9))
    assert isinstance(out, GraderError)
    assert out.kind == "timeout"
    assert out.metadata["unscored_components"] == {"fmt": "timeout"}
    assert "fmt" in out.error


def test_unscored_gate_missing_from_results_stays_unscored() -> None:
    out = gate()(results(judge=0.9))
    assert isinstance(out, GraderError)
    assert out.metadata["unscored_components"] == {"fmt": "internal"}
    assert "component missing" in out.error


@pytest.mark.parametrize(
    ("on_error", "expected", "gated"),
    [
        (0.0, 0.25, True),  # substitute 0 < threshold: the gate counts as failed -> penalty
        (1.0, 0.9, False),  # substitute 1 >= threshold: the gate counts as passed -> inner
    ],
)
def test_unscored_gate_with_float_policy(on_error: float, expected: float, gated: bool) -> None:
    out = gate(penalty=0.25, on_error=on_error)(results(fmt="judge_error", judge=0.9))
    assert isinstance(out, GraderScore)
    assert out.score == expected
    assert out.metadata["gated"] is gated
    assert out.metadata["substituted"] == ["fmt"]


def test_unscored_inner_behind_an_open_gate_stays_unscored() -> None:
    out = gate()(results(fmt=1.0, judge="unparseable"))
    assert isinstance(out, GraderError)
    assert out.kind == "unparseable"
    assert out.metadata["unscored_components"] == {"judge": "unparseable"}


def test_unscored_inner_behind_a_closed_gate_gets_the_penalty() -> None:
    # The gate failed, so inner's value could not change the outcome: the penalty is the true
    # reward. The ignored failure is named, and stays visible as its own component.
    out = gate(penalty=0.05)(results(fmt=0.0, judge="timeout"))
    assert isinstance(out, GraderScore)
    assert out.score == 0.05
    assert out.metadata == {"gated": True, "unscored_ignored": {"judge": "timeout"}}


def test_unscored_inner_with_float_policy_is_substituted() -> None:
    out = gate(on_error=0.0)(results(fmt=1.0, judge="timeout"))
    assert isinstance(out, GraderScore)
    assert out.score == 0.0
    assert out.metadata == {"substituted": ["judge"], "gated": False}


# --- shapes -------------------------------------------------------------------------------------


def test_gate_on_itself() -> None:
    # "correct must reach 0.5, else 0": gate and inner are the same component
    agg = gate(gate="c", inner="c", threshold=0.5)
    assert agg.components == ("c",)
    low, high = agg(results(c=0.4)), agg(results(c=0.6))
    assert isinstance(low, GraderScore) and isinstance(high, GraderScore)
    assert (low.score, high.score) == (0.0, 0.6)


def test_gate_wraps_an_earlier_aggregator() -> None:
    # aggregators run in order and see earlier results: a gate around a weighted sum
    ws = WeightedSumAggregator("quality", {"judge": 1, "length": 1})
    g = GateAggregator("reward", gate="fmt", threshold=1.0, inner="quality")
    g.bind(["fmt", "judge", "length", "quality"])
    res = results(fmt=1.0, judge=0.8, length=0.4)
    res["quality"] = ws(res)
    out = g(res)
    assert isinstance(out, GraderScore)
    assert out.score == pytest.approx(0.6)
    # ... and an unscored weighted sum stays unscored through the open gate
    res = results(fmt=1.0, judge="timeout", length=0.4)
    res["quality"] = ws(res)
    out = g(res)
    assert isinstance(out, GraderError)
    assert out.metadata["unscored_components"] == {"quality": "timeout"}


def test_gate_bind_checks_names() -> None:
    with pytest.raises(ConfigError, match=r"\['judge'\]; available: \['fmt'\]"):
        gate().bind(["fmt"])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"on_error": "skip"}, "cannot apply to a gate"),  # nothing left to decide
        ({"on_error": "drop"}, "on_error must be"),
        ({"threshold": 1.5}, "threshold must be a number in"),
        ({"threshold": -0.1}, "threshold must be a number in"),
        ({"threshold": "0.5"}, "threshold must be a number in"),
        ({"penalty": -1.0}, "penalty must be a number in"),  # penalty is a reward, in [0, 1]
        ({"penalty": float("nan")}, "penalty must be a number in"),
        ({"gate": ""}, "gate must be a component name"),
        ({"inner": None}, "inner must be a component name"),
    ],
)
def test_gate_config_errors(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        gate(**kw)
