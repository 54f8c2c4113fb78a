"""The base's ``on_error`` policy, through every aggregator; FunctionAggregator; the registry.

The rule under test: a failure is never a plausible number. "unscored" carries the failed
components' kinds; "skip" combines the survivors and lists the skipped; a float substitutes and
lists the substituted; a record whose components all failed is unscored under "unscored" and
"skip", never 0.0.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from aggregators._base import BaseAggregator, FunctionAggregator
from aggregators._formula import FormulaAggregator
from aggregators._gate import GateAggregator
from aggregators._registry import get_aggregator, list_aggregators, register_aggregator
from aggregators._weighted import MaxAggregator, MinAggregator, WeightedSumAggregator
from rm_service import ConfigError, GraderError, GraderResult, GraderScore
from tests.support import results

# Each aggregator over components a (weight 3) and b (weight 1), with a=0.8 and b failing.
# The expected score under "skip" and under on_error=0.0, and where they differ, why.
MAKERS: dict[str, tuple[Callable[..., BaseAggregator], float | None, float]] = {
    # name: (factory(on_error), expected under skip (None = rejected), expected under 0.0)
    "weighted": (
        lambda on_error: WeightedSumAggregator("agg", {"a": 3, "b": 1}, on_error=on_error),
        0.8,  # renormalised over the survivor a alone, not 0.75 * 0.8
        0.6,  # 0.75 * 0.8 + 0.25 * 0.0
    ),
    "weighted_equal": (
        lambda on_error: WeightedSumAggregator("agg", on_error=on_error),
        0.8,
        0.4,
    ),
    "min": (lambda on_error: MinAggregator("agg", ["a", "b"], on_error=on_error), 0.8, 0.0),
    "max": (lambda on_error: MaxAggregator("agg", ["a", "b"], on_error=on_error), 0.8, 0.8),
    "formula": (
        lambda on_error: FormulaAggregator("agg", "0.75 * a + 0.25 * b", on_error=on_error),
        None,  # a formula cannot drop a term
        0.6,
    ),
    "gate": (
        lambda on_error: GateAggregator("agg", "a", 0.5, "b", on_error=on_error),
        None,  # a gate cannot drop its gate or inner
        0.0,  # gate a=0.8 passes; inner b substituted with 0
    ),
}
NAMES = sorted(MAKERS)


def make(kind: str, on_error: Any) -> BaseAggregator:
    agg = MAKERS[kind][0](on_error)
    agg.bind(["a", "b"])
    return agg


@pytest.mark.parametrize("kind", NAMES)
def test_unscored_policy_carries_component_kinds(kind: str) -> None:
    out = make(kind, "unscored")(results(a=0.8, b="timeout"))
    assert isinstance(out, GraderError)
    assert out.name == "agg"
    assert out.kind == "timeout"  # the component's kind, not a generic one
    assert out.metadata["unscored_components"] == {"b": "timeout"}
    assert "b: timeout: b broke" in out.error


@pytest.mark.parametrize("kind", NAMES)
def test_unscored_is_the_default(kind: str) -> None:
    default = {
        "weighted": WeightedSumAggregator("agg", {"a": 1}),
        "weighted_equal": WeightedSumAggregator("agg"),
        "min": MinAggregator("agg"),
        "max": MaxAggregator("agg"),
        "formula": FormulaAggregator("agg", "a"),
        "gate": GateAggregator("agg", "a", 0.5, "b"),
    }[kind]
    assert default.on_error == "unscored"


@pytest.mark.parametrize("kind", NAMES)
def test_skip_policy_combines_survivors_and_lists_skipped(kind: str) -> None:
    expected = MAKERS[kind][1]
    if expected is None:
        with pytest.raises(ConfigError, match="on_error='skip' cannot apply"):
            MAKERS[kind][0]("skip")
        return
    out = make(kind, "skip")(results(a=0.8, b="judge_error"))
    assert isinstance(out, GraderScore)
    assert out.score == pytest.approx(expected)
    assert out.metadata == {"skipped": ["b"]}


@pytest.mark.parametrize("kind", NAMES)
def test_float_policy_substitutes_and_lists_substituted(kind: str) -> None:
    out = make(kind, 0.0)(results(a=0.8, b="unparseable"))
    assert isinstance(out, GraderScore)
    assert out.score == pytest.approx(MAKERS[kind][2])
    assert out.metadata["substituted"] == ["b"]


@pytest.mark.parametrize(
    ("kind", "on_error"),
    [(k, "unscored") for k in NAMES] + [(k, "skip") for k in NAMES if MAKERS[k][1] is not None],
)
def test_all_failed_is_unscored_never_zero(kind: str, on_error: str) -> None:
    out = make(kind, on_error)(results(a="timeout", b="judge_error"))
    assert isinstance(out, GraderError)
    assert out.metadata["unscored_components"] == {"a": "timeout", "b": "judge_error"}


@pytest.mark.parametrize("kind", ["weighted", "min", "max", "formula"])
def test_all_failed_is_unscored_even_with_a_float_policy(kind: str) -> None:
    # A substitute stands in for *some* failed components; with none scored there is nothing
    # real left to reward, so the record is unscored rather than the made-up substitute.
    out = make(kind, 0.5)(results(a="timeout", b="timeout"))
    assert isinstance(out, GraderError)
    assert out.kind == "timeout"


def test_float_policy_substitutes_when_some_survive() -> None:
    out = make("weighted", 0.5)(results(a=1.0, b="timeout"))  # weights a:b = 3:1
    assert isinstance(out, GraderScore)
    assert out.score == pytest.approx(0.75 * 1.0 + 0.25 * 0.5)
    assert out.metadata == {"substituted": ["b"]}


@pytest.mark.parametrize("kind", NAMES)
def test_missing_component_counts_as_failed(kind: str) -> None:
    out = make(kind, "unscored")(results(a=0.8))
    assert isinstance(out, GraderError)
    assert out.metadata["unscored_components"] == {"b": "internal"}
    assert "component missing" in out.error


def test_skip_with_weights_renormalises_over_three() -> None:
    # 0.5 * a + 0.3 * b + 0.2 * c with b skipped: (0.5 * 1 + 0.2 * 0) / 0.7
    agg = WeightedSumAggregator("agg", {"a": 5, "b": 3, "c": 2}, on_error="skip")
    out = agg(results(a=1.0, b="timeout", c=0.0))
    assert isinstance(out, GraderScore)
    assert out.score == pytest.approx(0.5 / 0.7)
    assert out.reason == "0.714*a(1) + 0.286*c(0)"  # the renormalised weights, visibly


@pytest.mark.parametrize("on_error", ["drop", "zero", -0.1, 1.5, float("nan"), True, None])
def test_bad_on_error_is_a_config_error(on_error: Any) -> None:
    for kind in NAMES:
        with pytest.raises(ConfigError, match="on_error must be"):
            MAKERS[kind][0](on_error)


def test_results_of_every_policy_are_valid_scores() -> None:
    # a substitute of 1.0 with a weight sum that rounds above 1 still yields a valid score
    weights = {"a": 0.1, "b": 0.45, "c": 0.7, "d": 7, "e": 0.2}
    agg = WeightedSumAggregator("agg", weights, on_error=1.0)
    out = agg(results(a=1.0, b=1.0, c="timeout", d=1.0, e=1.0))
    assert isinstance(out, GraderScore)
    assert out.score == 1.0


# --- FunctionAggregator: the function owns its failure handling --------------------------------


def test_function_aggregator_sees_errors() -> None:
    seen: dict[str, Any] = {}

    def count_ok(res: Mapping[str, GraderResult]) -> float:
        seen.update(res)
        return sum(isinstance(r, GraderScore) for r in res.values()) / len(res)

    out = FunctionAggregator(count_ok)(results(a=0.2, b="timeout"))
    assert isinstance(out, GraderScore)
    assert (out.name, out.score) == ("count_ok", 0.5)
    assert isinstance(seen["b"], GraderError)


@pytest.mark.parametrize(
    ("returned", "match"),
    [
        (1.5, "not in \\[0, 1\\]"),  # out of range is not clipped
        (-0.1, "not in \\[0, 1\\]"),
        (float("nan"), "not in \\[0, 1\\]"),
        ("0.5", "not a number"),  # no string coercion
        (None, "not a number"),  # None is not a score
    ],
)
def test_function_aggregator_bad_returns_are_unscored(returned: Any, match: str) -> None:
    out = FunctionAggregator(lambda res: returned, name="f")(results(a=1.0))
    assert isinstance(out, GraderError)
    assert out.kind == "internal"
    assert re.search(match, out.error), out.error


@pytest.mark.parametrize(("returned", "score"), [("f32", 0.5), ("f64", 0.25), (True, 1.0)])
def test_function_aggregator_takes_numpy_scalars_and_bools_as_a_grader_does(
    returned: Any, score: float
) -> None:
    """Refused as "not in [0, 1]" (np.float32(0.5) is in it), while a grader returning the
    same value scored it."""
    np = pytest.importorskip("numpy")
    value = {"f32": np.float32(0.5), "f64": np.float64(0.25)}.get(returned, returned)
    out = FunctionAggregator(lambda res: value, name="f")(results(a=1.0))
    assert isinstance(out, GraderScore) and out.score == score and type(out.score) is float


def test_function_aggregator_exception_is_unscored() -> None:
    def boom(res: Mapping[str, GraderResult]) -> float:
        raise KeyError("b")

    out = FunctionAggregator(boom)(results(a=1.0))
    assert isinstance(out, GraderError)
    assert (out.name, out.kind) == ("boom", "internal")
    assert out.error.startswith("KeyError")


def test_function_aggregator_results_are_renamed() -> None:
    err = GraderError(name="inner", error="x", kind="timeout")
    out = FunctionAggregator(lambda res: err, name="reward")(results(a=1.0))
    assert isinstance(out, GraderError)
    assert (out.name, out.kind) == ("reward", "timeout")  # kind preserved through the rename


# --- registry: building by name -----------------------------------------------------------------


def test_builtins_are_registered() -> None:
    assert {"weighted_sum", "min", "max", "gate", "formula"} <= set(list_aggregators())
    assert list_aggregators() == sorted(list_aggregators())


@pytest.mark.parametrize(
    ("type_", "params", "cls"),
    [
        ("weighted_sum", {"weights": {"a": 1, "b": 3}}, WeightedSumAggregator),
        ("weighted_sum", {}, WeightedSumAggregator),
        ("min", {"components": ["a", "b"]}, MinAggregator),
        ("max", {"on_error": "skip"}, MaxAggregator),
        ("gate", {"gate": "a", "threshold": 1, "inner": "b"}, GateAggregator),
        ("formula", {"formula": "a * b", "on_error": 0.0}, FormulaAggregator),
        ("aggregators._weighted:MinAggregator", {}, MinAggregator),  # a class by import string
    ],
)
def test_get_aggregator_builds(type_: str, params: dict[str, Any], cls: type) -> None:
    agg = get_aggregator(type_, name="reward", **params)
    assert type(agg) is cls
    assert agg.name == "reward"


def test_get_aggregator_built_aggregator_works() -> None:
    agg = get_aggregator("weighted_sum", name="reward", weights={"a": 1, "b": 3}, on_error="skip")
    out = agg(results(a=1.0, b="timeout"))
    assert isinstance(out, GraderScore)
    assert (out.score, out.metadata) == (1.0, {"skipped": ["b"]})


@pytest.mark.parametrize(
    ("type_", "params", "match"),
    [
        ("wieghted_sum", {}, "unknown aggregator type 'wieghted_sum'; registered: .*formula"),
        ("", {}, "non-empty string"),
        ("weighted_sum", {"weight": {"a": 1}}, "'weighted_sum' does not take .*\\['weight'\\]"),
        ("gate", {"gate": "a", "inner": "b"}, "'gate' is missing .*\\['threshold'\\]"),
        ("formula", {}, "'formula' is missing .*\\['formula'\\]"),
        ("min", {"components": "ab"}, "'min': MinAggregator 'reward': components must be"),
        ("weighted_sum", {"weights": {"a": -1}}, "'weighted_sum': .* must be >= 0"),
        ("formula", {"formula": "a +"}, "'formula': .*syntax error at position 3"),
        ("formula", {"formula": "a", "on_error": "skip"}, "cannot apply to a formula"),
        ("no_such_module_xyz:f", {}, "cannot import aggregator 'no_such_module_xyz:f'"),
        ("aggregators._weighted:Nope", {}, "cannot import aggregator"),
        ("aggregators._weighted:", {}, "bad aggregator import string"),
        ("aggregators._weighted:__all__", {}, "neither an aggregator nor a factory"),
    ],
)
def test_get_aggregator_config_errors(type_: str, params: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        get_aggregator(type_, name="reward", **params)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A user's module on sys.path, with a function, a class and an instance."""
    name = "user_aggs_for_test_policy"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            from aggregators._weighted import MinAggregator
            from rm_service import GraderScore

            def at_least_one(results, threshold=0.5):
                ok = [r for r in results.values() if isinstance(r, GraderScore)]
                return float(any(r.score >= threshold for r in ok))

            class Product:
                def __init__(self, name, components):
                    self.name, self.components = name, components

                def __call__(self, results):
                    p = 1.0
                    for c in self.components:
                        p *= results[c].score
                    return p

            LOWEST = MinAggregator("lowest", ["a", "b"])
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    yield name
    sys.modules.pop(name, None)


def test_import_string_function_becomes_function_aggregator(user_module: str) -> None:
    agg = get_aggregator(f"{user_module}:at_least_one", name="any_ok", threshold=0.9)
    assert isinstance(agg, FunctionAggregator)
    assert agg.name == "any_ok"
    low, high = agg(results(a=0.8, b="timeout")), agg(results(a=0.95))
    assert isinstance(low, GraderScore) and isinstance(high, GraderScore)
    assert (low.score, high.score) == (0.0, 1.0)  # threshold=0.9 was bound
    default = get_aggregator(f"{user_module}:at_least_one")
    assert default.name == "at_least_one"


def test_import_string_function_bad_param(user_module: str) -> None:
    with pytest.raises(ConfigError, match=r"f\(results, \*\*params\).*\['thresh'\]"):
        get_aggregator(f"{user_module}:at_least_one", name="x", thresh=0.9)


def test_import_string_plain_class_is_wrapped(user_module: str) -> None:
    agg = get_aggregator(f"{user_module}:Product", name="prod", components=["a", "b"])
    assert isinstance(agg, FunctionAggregator)
    out = agg(results(a=0.5, b=0.5))
    assert isinstance(out, GraderScore)
    assert (out.name, out.score) == ("prod", 0.25)
    with pytest.raises(ConfigError, match=r"does not take .*\['weights'\]"):
        get_aggregator(f"{user_module}:Product", name="prod", components=["a"], weights={})


def test_import_string_instance(user_module: str) -> None:
    same = get_aggregator(f"{user_module}:LOWEST")
    renamed = get_aggregator(f"{user_module}:LOWEST", name="reward")
    assert same.name == "lowest"
    assert isinstance(renamed, MinAggregator)
    assert (renamed.name, renamed.components) == ("reward", ("a", "b"))
    assert same.name == "lowest"  # the shared instance is not renamed in place
    with pytest.raises(ConfigError, match="is an instance; it takes no params except name"):
        get_aggregator(f"{user_module}:LOWEST", components=["a"])


def test_register_aggregator() -> None:
    def half_min(*, name: str, components: list[str]) -> BaseAggregator:
        return FormulaAggregator(name, f"min({', '.join(components)}) / 2")

    register_aggregator("half_min_for_test", half_min)
    try:
        register_aggregator("half_min_for_test", half_min)  # the same factory again: a no-op
        assert "half_min_for_test" in list_aggregators()
        agg = get_aggregator("half_min_for_test", name="r", components=["a", "b"])
        out = agg(results(a=0.8, b=0.6))
        assert isinstance(out, GraderScore)
        assert out.score == pytest.approx(0.3)
        with pytest.raises(ConfigError, match="already registered"):
            register_aggregator("half_min_for_test", MinAggregator)
    finally:
        from aggregators import _registry

        _registry._REGISTRY.pop("half_min_for_test", None)


@pytest.mark.parametrize(
    ("name", "factory", "match"),
    [
        ("min", MaxAggregator, "already registered"),  # built-ins cannot be replaced
        ("a:b", MinAggregator, "without ':'"),  # reserved for import strings
        ("", MinAggregator, "non-empty"),
        ("x_for_test", 3, "not callable"),
    ],
)
def test_register_aggregator_errors(name: str, factory: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        register_aggregator(name, factory)


def test_registered_factory_returning_non_aggregator() -> None:
    register_aggregator("bad_for_test", lambda name: 42)
    try:
        with pytest.raises(ConfigError, match="built 42, not an aggregator"):
            get_aggregator("bad_for_test", name="r")
    finally:
        from aggregators import _registry

        _registry._REGISTRY.pop("bad_for_test", None)
