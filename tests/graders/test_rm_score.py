"""The reward-model score maps: every output in [0, 1], bad input an error never a number, configs
checked with the place named, and fitted maps that do what their docstrings promise."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from graders._rm_score import ScoreMap, fit_score_map, score_map
from rm_service._exceptions import ConfigError


def test_the_default_is_the_bradley_terry_sigmoid() -> None:
    m = score_map(None, where="rm")
    assert m.describe() == {"map": "sigmoid", "temperature": 1.0, "offset": 0.0}
    assert m(0.0) == 0.5
    assert m(2.0) == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert score_map({}, where="rm") == m


def test_temperature_and_offset_shift_and_stretch() -> None:
    m = score_map({"map": "sigmoid", "temperature": 2.0, "offset": 1.0}, where="rm")
    assert m(1.0) == 0.5
    assert m(3.0) == pytest.approx(1 / (1 + math.exp(-1.0)))


@pytest.mark.parametrize(
    "spec",
    [
        None,
        {"map": "sigmoid", "temperature": 0.01, "offset": -3},
        {"map": "logistic", "a": 5.0, "b": -2.0},
        {"map": "quantile", "knots": [-1.0, 0.0, 0.0, 2.0]},
    ],
)
def test_every_map_stays_in_the_unit_interval_and_rejects_nan(spec: dict | None) -> None:
    m = score_map(spec, where="rm")
    for raw in (-1e308, -1e6, -3.0, -1.0, 0.0, 0.5, 1.0, 1e6, 1e308):
        s = m(raw)
        assert 0.0 <= s <= 1.0, (spec, raw, s)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="not a finite number"):
            m(bad)


def test_maps_are_monotone() -> None:
    for spec in ({"map": "logistic", "a": 0.3, "b": 1.0}, {"map": "quantile", "knots": [0, 1, 5]}):
        m = score_map(spec, where="rm")
        xs = [x / 10 for x in range(-100, 100)]
        ys = [m(x) for x in xs]
        assert ys == sorted(ys)


def test_a_raw_on_repeated_knots_takes_the_highest_level() -> None:
    m = score_map({"map": "quantile", "knots": [1.0, 1.0, 1.0, 3.0]}, where="rm")
    assert m(0.999) == 0.0
    assert m(1.0) == pytest.approx(2 / 3)  # two thirds of the reference is at or below 1.0
    assert m(2.0) == pytest.approx(5 / 6)


def test_identity_passes_probabilities_and_refuses_anything_else() -> None:
    m = score_map({"map": "identity"}, where="rm")
    assert m(0.25) == 0.25
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        m(1.5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"map": "softmax"}, r"cfg\.yaml: graders\.rm\.score_map\.map: 'softmax' is not one of"),
        ({"map": "sigmoid", "temperature": 0}, r"score_map\.temperature: must be > 0"),
        ({"map": "sigmoid", "temp": 2}, r"map sigmoid takes temperature, offset; unknown: temp"),
        ({"map": "sigmoid", "offset": "x"}, r"score_map\.offset: expected a number"),
        ({"map": "logistic", "a": 1}, r"needs both a and b"),
        ({"map": "logistic", "a": -1, "b": 0}, r"score_map\.a: must be > 0"),
        ({"map": "quantile"}, r"needs knots"),
        ({"map": "quantile", "knots": [2, 1]}, r"knots: must be non-decreasing"),
        ({"map": "quantile", "knots": [1, 1]}, r"all equal"),
        ({"map": "quantile", "knots": [0, 1], "levels": [0]}, r"1 levels for 2 knots"),
        ({"map": "identity", "temperature": 1}, r"map identity takes no parameters"),
        ("sigmoid", r"expected a mapping"),
    ],
)
def test_config_errors_name_the_place(spec: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        score_map(spec, where="cfg.yaml: graders.rm.score_map")  # type: ignore[arg-type]
    assert "cfg.yaml: graders.rm.score_map" in str(info.value)


@pytest.mark.parametrize(
    "spec",
    [
        {"map": "sigmoid", "temperature": 0.5, "offset": 1.5},
        {"map": "logistic", "a": 0.7, "b": -0.1},
        {"map": "quantile", "knots": [-1.0, 0.5, 3.0], "levels": [0.0, 0.2, 1.0]},
        {"map": "quantile", "knots": [-1.0, 0.5, 3.0]},  # evenly spaced levels left implicit
        {"map": "identity"},
    ],
)
def test_describe_round_trips_and_pickles(spec: dict) -> None:
    m = score_map(spec, where="rm")
    assert m.describe() == spec
    assert score_map(m.describe(), where="rm") == m
    assert pickle.loads(pickle.dumps(m)) == m


def test_fitted_sigmoid_puts_the_median_at_half_and_quartiles_at_quarters() -> None:
    rng = random.Random(0)
    raws = [rng.gauss(3.0, 2.0) for _ in range(2001)]
    m = fit_score_map(raws, kind="sigmoid")
    ordered = sorted(raws)
    assert m(ordered[1000]) == pytest.approx(0.5)
    # the interquartile range spans exactly half the score range; each quartile sits near its
    # quarter (not exactly: a sample's quartiles are not symmetric about its median)
    assert m(ordered[1500]) - m(ordered[500]) == pytest.approx(0.5, abs=1e-3)
    assert m(ordered[500]) == pytest.approx(0.25, abs=0.01)
    assert m(ordered[1500]) == pytest.approx(0.75, abs=0.01)


def test_fitted_quantile_map_is_the_share_of_the_reference_beaten() -> None:
    rng = random.Random(1)
    raws = [rng.gauss(0.0, 1.0) for _ in range(4000)]
    m = fit_score_map(raws, kind="quantile")
    assert len(m.knots) == 21
    for x in (-1.0, 0.0, 0.7):
        beaten = sum(r < x for r in raws) / len(raws)
        assert m(x) == pytest.approx(beaten, abs=0.02)
    assert m(min(raws) - 1) == 0.0 and m(max(raws) + 1) == 1.0


def test_fitted_logistic_recovers_a_known_calibration() -> None:
    rng = random.Random(2)
    true_a, true_b = 1.5, -0.75
    raws = [rng.uniform(-4, 4) for _ in range(4000)]
    labels = [float(rng.random() < 1 / (1 + math.exp(-(true_a * x + true_b)))) for x in raws]
    m = fit_score_map(raws, kind="logistic", labels=labels)
    assert m.kind == "logistic"
    assert m.a == pytest.approx(true_a, rel=0.15)
    assert m.b == pytest.approx(true_b, abs=0.15)


def test_a_perfectly_separated_reference_still_gives_a_finite_slope() -> None:
    m = fit_score_map([-2.0, -1.0, 1.0, 2.0], kind="logistic", labels=[0, 0, 1, 1])
    assert math.isfinite(m.a) and m.a > 0
    assert m(-2.0) < 0.5 < m(2.0)


@pytest.mark.parametrize(
    ("raws", "kwargs", "message"),
    [
        ([1.0], {"kind": "sigmoid"}, "at least 2"),
        ([1.0, float("nan")], {"kind": "sigmoid"}, "not finite"),
        ([1.0, 1.0, 1.0], {"kind": "sigmoid"}, "interquartile range is 0"),
        ([1.0, 2.0], {"kind": "identity"}, "cannot fit map 'identity'"),
        ([1.0, 2.0], {"kind": "quantile", "labels": [0, 1]}, "labels are for logistic"),
        ([1.0, 2.0], {"kind": "logistic"}, "none were given"),
        ([1.0, 2.0], {"kind": "logistic", "labels": [1, 1]}, "all one class"),
        ([1.0, 2.0], {"kind": "logistic", "labels": [0, 2]}, r"in \[0, 1\]"),
        ([1.0, 2.0, 3.0, 4.0], {"kind": "logistic", "labels": [1, 1, 0, 0]}, "backwards|slope"),
    ],
)
def test_fits_that_cannot_work_say_why(raws: list[float], kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_score_map(raws, **kwargs)


def test_the_constructor_default_is_the_config_default() -> None:
    assert ScoreMap() == score_map(None, where="rm")
