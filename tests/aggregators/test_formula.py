"""FormulaAggregator: the language, its errors (construction, bind, evaluation), and no eval."""

from __future__ import annotations

import builtins
import math
import re
from typing import Any

import pytest

from aggregators._formula import FORMULA_FUNCTIONS, FormulaAggregator
from rm_service import ConfigError, GraderError, GraderScore
from tests.support import results


def value(formula: str, **scores: float) -> float:
    out = FormulaAggregator("r", formula)(results(**scores))
    assert isinstance(out, GraderScore), out
    return out.score


# --- the language -------------------------------------------------------------------------------

ABC = {"a": 0.5, "b": 0.25, "c": 0.8}


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("a", 0.5),
        ("0.5 * a + 0.5 * b", 0.375),  # OpenAI's multi-grader example shape
        ("(a + b) / 2", 0.375),
        ("a + b * c", 0.5 + 0.25 * 0.8),  # * binds tighter than +
        ("(a + b) * c", 0.75 * 0.8),  # parentheses override
        ("a - b - b", 0.0),  # - is left-associative: (a - b) - b
        ("a / b / 8", 0.25),  # / is left-associative: (0.5 / 0.25) / 8
        ("a ^ 2", 0.25),
        ("a * 2 ^ 3 ^ 2 / 256", 1.0),  # ^ is right-associative: 2^(3^2) = 512, not (2^3)^2 = 64
        ("a ^ b ^ c", 0.5 ** (0.25**0.8)),
        ("b * 2 ^ 2", 1.0),  # ^ binds tighter than *
        ("-a ^ 2 + 1", 0.75),  # unary minus binds looser than ^: -(a^2)
        ("a * 2 ^ -1", 0.25),  # a unary minus in an exponent
        ("-a + 1", 0.5),
        ("a - -b", 0.75),  # double minus
        ("+a", 0.5),  # unary plus is accepted
        ("--a", 0.5),
        ("a * -b + 1", 0.875),
        ("min(a, b, c)", 0.25),
        ("max(a, b, c)", 0.8),
        ("min(a)", 0.5),  # min/max take one or more arguments
        ("abs(b - a)", 0.25),
        ("floor(a + c)", 1.0),
        ("ceil(b)", 1.0),
        ("sqrt(b)", 0.5),
        ("exp(a - a)", 1.0),
        ("log(1 + a) / log(2)", math.log(1.5) / math.log(2)),  # natural log
        ("min(1, max(0, 2 * a - c))", 0.2),  # hand-written clamp
        ("1e-1 * c + .5e0 * a", 0.33),  # number forms
        ("  0.3*a+0.7 *b\t", 0.325),  # whitespace is free
        ("min(a,b)^2", 0.0625),  # a call as a power base
    ],
)
def test_formula_values(formula: str, expected: float) -> None:
    assert value(formula, **ABC) == pytest.approx(expected)


def test_components_are_the_names_read_in_order() -> None:
    agg = FormulaAggregator("r", "0.5 * correct + 0.5 * min(fmt, correct) * `len-ok`")
    assert agg.components == ("correct", "fmt", "len-ok")


def test_quoted_names_and_function_named_components() -> None:
    # backticks for names that are not identifiers; a name not followed by "(" is a component
    # even when it spells a function
    assert value("`format-check` * log", **{"format-check": 0.5, "log": 0.5}) == 0.25
    assert value("min(min, max)", min=0.2, max=0.9) == 0.2


def test_reason_shows_formula_and_value() -> None:
    out = FormulaAggregator("r", "a * b")(results(a=0.5, b=0.5))
    assert isinstance(out, GraderScore)
    assert out.reason == "a * b = 0.25"


def test_formula_reading_no_component_is_rejected() -> None:
    with pytest.raises(ConfigError, match="reads no component"):
        FormulaAggregator("r", "2 ^ -1")


# --- syntax errors at construction, with position -----------------------------------------------


@pytest.mark.parametrize(
    ("formula", "position", "match"),
    [
        ("a +", 3, "expected a number, a name, a function or '\\(', got the end"),
        ("a b", 2, "expected an operator or the end, got name 'b'"),
        ("2a", 1, "got name 'a'"),  # no implicit multiplication
        ("(a + b", 6, "expected '\\)', got the end"),
        ("a + b)", 5, "got '\\)'"),
        ("a ** 2", 2, "use '\\^' for a power"),  # Python's power is not ours
        ("a % 2", 2, "unexpected character '%'"),
        ("a.b", 1, "unexpected character '.'"),  # no attribute access
        ("a, b", 1, "got ','"),
        ("min()", 4, "got '\\)'"),
        ("abs(a, b)", 0, "abs\\(\\) takes 1 argument"),
        ("pow(a, 2)", 0, "unknown function 'pow'; available: min, max"),
        ("`a", 0, "unterminated or empty"),
        ("``", 0, "unterminated or empty"),
        ("a +\n* b", 4, "got '\\*'"),  # a newline in a YAML block counts as one character
    ],
)
def test_syntax_errors_name_the_position(formula: str, position: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        FormulaAggregator("r", formula)
    msg = str(info.value)
    assert f"at position {position}:" in msg
    assert msg.startswith("FormulaAggregator 'r': formula syntax error")
    # the caret sits under the offending character
    shown, caret = msg.splitlines()[-2:]
    assert caret.index("^") - 2 == position
    assert len(shown) - 2 == len(formula)


@pytest.mark.parametrize(
    "formula",
    [
        "1 / 0 + a",  # constant sub-expressions are folded, so their errors come early
        "log(0) * a",
        "sqrt(-1) + a",
        "a + (-8) ^ 0.5",
        "a * 10 ^ 400",  # overflow
        "a + exp(1000)",
    ],
)
def test_constant_domain_errors_fail_at_construction(formula: str) -> None:
    with pytest.raises(ConfigError, match="formula error at position"):
        FormulaAggregator("r", formula)


@pytest.mark.parametrize("formula", ["", "   ", None, 3])
def test_formula_must_be_a_non_empty_string(formula: Any) -> None:
    with pytest.raises(ConfigError, match="non-empty string"):
        FormulaAggregator("r", formula)


# --- no Python evaluation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "formula",
    [
        "__import__('os')",  # strings are not tokens
        "__import__(os)",  # and __import__ is not a function of the language
        "exec(a)",
        "eval(a)",
        "a.__class__",
        "[a][0]",
        "a if b else c",
        "lambda: a",
        "a; b",
        "a == b",
    ],
)
def test_python_is_not_evaluated(formula: str) -> None:
    with pytest.raises(ConfigError, match="formula syntax error"):
        FormulaAggregator("r", formula)


def test_parse_and_evaluate_without_eval_exec_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the formula aggregator must not call eval/exec/compile")

    for fn in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, fn, forbidden)
    agg = FormulaAggregator("r", "min(1, a ^ 2 + sqrt(b) / 2 - log(1 + c) * 0)")
    out = agg(results(a=0.5, b=0.25, c=0.5))
    assert isinstance(out, GraderScore)
    assert out.score == pytest.approx(0.5)


# --- unknown names at bind ----------------------------------------------------------------------


def test_unknown_names_fail_at_bind_listing_available() -> None:
    agg = FormulaAggregator("r", "0.5 * correct + 0.5 * fromat")
    with pytest.raises(ConfigError) as info:
        agg.bind(["correct", "format"])
    msg = str(info.value)
    assert "['fromat']" in msg
    assert "available: ['correct', 'format']" in msg
    assert "0.5 * correct + 0.5 * fromat" in msg  # names the formula
    agg.bind(["correct", "fromat"])  # a matching set binds fine


# --- evaluation errors: unscored, never a number ------------------------------------------------


@pytest.mark.parametrize(
    ("formula", "scores", "match"),
    [
        ("a / b", {"a": 0.5, "b": 0.0}, "in `a / b`: division by zero"),
        ("a / (b - c)", {"a": 0.5, "b": 0.5, "c": 0.5}, "in `a / \\(b - c\\)`: division by zero"),
        ("log(a) + 1", {"a": 0.0}, "in `log\\(a\\)`: log of non-positive value 0"),
        ("sqrt(a - b)", {"a": 0.2, "b": 0.5}, "in `sqrt\\(a - b\\)`: sqrt of negative value -0.3"),
        ("a ^ (0 - b)", {"a": 0.0, "b": 0.5}, "zero to a negative power"),
        ("(a - b) ^ 0.5", {"a": 0.2, "b": 0.5}, "negative base -0.3 to a non-integer power"),
        ("(a ^ -b) ^ 2", {"a": 1e-300, "b": 1.0}, "overflows"),
        ("exp(1000 * a) * 0", {"a": 1.0}, "exp\\(1000\\) overflows"),
        ("a - b", {"a": 0.2, "b": 0.5}, "gave -0.3, outside \\[0, 1\\].*clamp=True"),
        ("a + b", {"a": 0.7, "b": 0.5}, "gave 1.2, outside \\[0, 1\\]"),
    ],
)
def test_evaluation_errors_are_unscored(formula: str, scores: dict[str, float], match: str) -> None:
    out = FormulaAggregator("r", formula)(results(**scores))
    assert isinstance(out, GraderError)
    assert out.kind == "internal"
    assert out.name == "r"
    assert re.search(match, out.error), out.error


def test_clamp_is_explicit_and_never_clamps_errors() -> None:
    agg = FormulaAggregator("r", "a - b", clamp=True)
    out = agg(results(a=0.2, b=0.5))
    assert isinstance(out, GraderScore)
    assert out.score == 0.0
    assert out.reason == "a - b = -0.3, clamped to 0"
    high = FormulaAggregator("r", "a + b", clamp=True)(results(a=0.7, b=0.5))
    assert isinstance(high, GraderScore) and high.score == 1.0
    # a domain error is still an error with clamp on
    err = FormulaAggregator("r", "a / b", clamp=True)(results(a=0.5, b=0.0))
    assert isinstance(err, GraderError)
    with pytest.raises(ConfigError, match="clamp must be"):
        FormulaAggregator("r", "a", clamp="yes")  # type: ignore[arg-type]


# --- on_error ------------------------------------------------------------------------------------


def test_skip_is_rejected_for_formulas() -> None:
    with pytest.raises(ConfigError, match="on_error='skip' cannot apply to a formula"):
        FormulaAggregator("r", "a + b", on_error="skip")


def test_failed_component_unscores_the_formula() -> None:
    out = FormulaAggregator("r", "0.5 * a + 0.5 * b")(results(a=1.0, b="judge_error"))
    assert isinstance(out, GraderError)
    assert out.kind == "judge_error"
    assert out.metadata["unscored_components"] == {"b": "judge_error"}


def test_float_substitute_feeds_the_formula() -> None:
    out = FormulaAggregator("r", "0.5 * a + 0.5 * b", on_error=0.2)(results(a=1.0, b="timeout"))
    assert isinstance(out, GraderScore)
    assert out.score == pytest.approx(0.6)
    assert out.metadata == {"substituted": ["b"]}


def test_functions_listed() -> None:
    assert set(FORMULA_FUNCTIONS) == {"min", "max", "abs", "floor", "ceil", "exp", "sqrt", "log"}


# --- size limits ----------------------------------------------------------------------------------


def test_long_flat_sum_is_fine() -> None:
    # a sum over many terms is one flat node, not a 500-deep closure chain
    formula = "(" + " + ".join(["a"] * 500) + ") / 500 - b + b"
    assert value(formula, a=0.5, b=0.25) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "formula",
    [
        "min(" * 150 + "a" + ")" * 150,  # deep nesting would recurse at every evaluation
        "(" * 5000 + "a" + ")" * 5000,  # would overflow the parser's stack
    ],
)
def test_deep_nesting_is_a_config_error(formula: str) -> None:
    with pytest.raises(ConfigError, match="nested"):
        FormulaAggregator("r", formula)


def test_an_overflow_is_unscored_never_a_plausible_score() -> None:
    """A literal like 1e400 is infinity, and infinity times 0 is NaN, which Python's min and
    max drop or keep by argument order: ``max(0, min(1, 1e400 * (a - 0.5)))`` gave 1.0 at
    a = 0.5. A non-finite literal is refused; a NaN reaching min or max is an error."""
    with pytest.raises(ConfigError, match="the number 1e400 is not finite"):
        FormulaAggregator("r", "max(0, min(1, 1e400 * (a - 0.5)))")
    agg = FormulaAggregator("r", "min(0.5, a * 1e300 * 1e10 - a * 1e300 * 1e10)")
    out = agg(results(a=0.5))
    assert isinstance(out, GraderError) and "NaN" in out.error
    finite = agg(results(a=0.0))
    assert isinstance(finite, GraderScore) and finite.score == 0.0
