"""A proof that two parsed answers differ, found by evaluating them, before math-verify's slow path.

For a wrong answer math-verify ends in ``simplify(gold - pred)``, which is where a GRPO batch's
time goes (a wrong ``0`` against ``12\\sqrt{7}`` or a polynomial costs a thousand times a string
compare). When both answers are plain expressions and their values at one point differ clearly,
every step of math-verify's comparison is bound to say "not equal", so it can be skipped:

* each pair of strings differs (math-verify compares the two extracted strings as well);
* ``gold == pred`` (its "string" comparison is sympy's structural equality) is false, since
  structurally equal expressions have equal values;
* the numeric comparison (values rounded to 6 decimals, or to the 4-5 decimals a prediction was
  written in, or ``(gold - pred).evalf() == 0``) is false, since the values differ by more than
  1e-3 and by more than one part in a million (well above a 15-digit float's resolution);
* ``simplify(gold - pred).is_zero`` is not true: simplification keeps the value, which is not 0.

Only expressions built from numbers, ``pi``, ``E``, symbols, sums, products and powers qualify: no
percent (math-verify compares ``9%`` with ``9`` as integers), no relations, sets, tuples,
matrices or functions, and no lone symbol (math-verify compares those by name). Symbols are given
one fixed value each: values that differ there prove that the expressions differ as functions.
Anything outside this, or a value that is not a finite real number, gives ``False`` ("not
proved"), and math-verify decides as before.

The other way round, :func:`rounded_together` takes back an "equal" that only math-verify's
rounding made: it compares a decimal with the gold after rounding both to 6 decimal places (and
this grader retries at the 4-5 a prediction was written in), an absolute tolerance, so every
small gold equalled every small answer: ``0.0`` scored 1.0 against ``10^{-8}``, ``0.0000001``
against ``0.0000002`` and ``0.0001`` against ``0.00012``. A policy that learns to answer
``0.0`` for any small quantity (a probability, a physical constant) farms those.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

__all__ = ["proved_unequal", "rounded_together"]

_PRECISION = 30
_ABSOLUTE = 1e-3
_RELATIVE = 1e-6
_CLOSE = 1e-3
"""How far (relative) a number math-verify equated with the gold may be from it: agreement to
about three significant figures, what the rounding retry asks of an answer near 1 (``0.3333``
for 1/3, ``0.1429`` for 1/7), asked of small answers too."""
_SIGNIFICANT = 2
"""Significant digits an answer shows before rounding to its own last digit is honest
(:func:`_half_unit`)."""


def _plain(expr: Any) -> bool:
    """Built only from finite numbers, ``pi``, ``E``, symbols, sums, products and powers, with
    no float inside a compound expression.

    Why no float there: math-verify compares numbers after ``doit()``, which evaluates float
    arithmetic at the floats' own precision (15 digits), so ``1.0 \times 10^{20} + 1 - 1.0
    \times 10^{20}`` is 0 to it; evaluated here at :data:`_PRECISION` digits it is 1, and a
    "proof" would contradict the verdict it stands for. A lone float is compared as it is.
    """
    from sympy import Add, E, Expr, Float, Mul, Number, Pow, Symbol, pi, preorder_traversal  # type: ignore[import-untyped]
    from sympy.matrices.expressions import MatrixExpr  # type: ignore[import-untyped]

    if not isinstance(expr, Expr) or isinstance(expr, (Symbol, MatrixExpr)):
        return False
    compound = not isinstance(expr, Number)
    for node in preorder_traversal(expr):
        if isinstance(node, (Add, Mul, Pow, Symbol)) or node in (pi, E):
            continue
        if isinstance(node, Number) and node.is_finite:
            if compound and isinstance(node, Float):
                return False
            continue
        return False  # a function, a percent's wrapper, infinity, nan
    return True


def _value(expr: Any, point: dict[Any, Any]) -> float | None:
    """The expression's value at ``point`` as a float, when it is a finite real number."""
    try:
        value = expr.subs(point).evalf(_PRECISION)
    except Exception:
        return None
    if not value.is_Number or not value.is_finite or not value.is_real:
        return None
    return float(value)


def _differ(gold: Any, pred: Any) -> bool:
    from sympy import Rational

    if not (_plain(gold) and _plain(pred)):
        return False
    symbols = sorted(gold.free_symbols | pred.free_symbols, key=str)
    # Positive, not integers, none equal: a point where few expressions are undefined.
    point = {s: Rational(1234, 1000) + Rational(431, 1000) * i for i, s in enumerate(symbols)}
    g, p = _value(gold, point), _value(pred, point)
    if g is None or p is None:
        return False
    return abs(g - p) > max(_ABSOLUTE, _RELATIVE * max(abs(g), abs(p)))


def proved_unequal(gold: Sequence[Any], pred: Sequence[Any]) -> bool:
    """True only when math-verify would find no pair of ``gold`` and ``pred`` equivalent (and
    the rounding retry would not either), shown by the values; ``False`` means "not proved"."""
    if not gold or not pred:
        return False
    for g in gold:
        for p in pred:
            if isinstance(g, str) and isinstance(p, str):
                if g.strip() and g.strip() == p.strip():
                    return False
            elif isinstance(g, str) or isinstance(p, str):
                continue  # math-verify never equates a string with an expression
            elif not _differ(g, p):
                return False
    return True


def _readings(expr: Any) -> list[tuple[float, float]] | None:
    """The values math-verify may read for one parsed answer, each with half a unit in the last
    place it was written to (:func:`_half_unit`): the right side of ``x = 5``; for a percent
    ``X%`` both ``X`` and ``X/100``, as it equates ``9%`` with 9 and ``50%`` with 1/2. ``None``
    when it is not a finite real number."""
    from sympy import Mul, Rational, Symbol, UnevaluatedExpr

    if getattr(expr, "is_Relational", False) and isinstance(expr.lhs, Symbol):
        expr = expr.rhs
    percent = UnevaluatedExpr(Rational(1, 100))
    if isinstance(expr, Mul) and len(expr.args) == 2 and expr.args[1] == percent:
        value = _value(expr.args[0], {})
        if value is None:
            return None
        half = _half_unit(value)
        return [(value, half), (value / 100, half / 100)]
    if not getattr(expr, "is_number", False):
        return None
    value = _value(expr, {})
    return None if value is None else [(value, _half_unit(value))]


def _half_unit(value: float) -> float:
    """Half a unit in the last significant place of ``value`` as written (``0.0046``: 0.00005),
    or 0 when it shows fewer than :data:`_SIGNIFICANT` significant digits (``0.0001``, ``0.0``).

    Why: an answer rounded as the question asks ("to four decimal places": ``0.0046`` for
    0.004567, ``0.0123`` for 1/81) is as far from the gold as its last digit allows, which for a
    small number is more than :data:`_CLOSE` of it; a single digit is no such rounding but the
    ``0.0001``-for-anything-small farm. The shortest repr of a float read from a decimal is the
    decimal written (less trailing zeros)."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    digits = Decimal(repr(value)).normalize().as_tuple()
    if len(digits.digits) < _SIGNIFICANT or not isinstance(digits.exponent, int):
        return 0.0
    return 0.5 * 10.0**digits.exponent


def _close(gold: float, pred: tuple[float, float]) -> bool:
    value, half = pred
    if gold == value or abs(gold - value) <= _CLOSE * max(abs(gold), abs(value)):
        return True
    return abs(gold - value) <= half * (1 + 1e-9)


def rounded_together(gold: Sequence[Any], pred: Sequence[Any]) -> str | None:
    """Why an answer math-verify found equal to the gold is not, or ``None`` when it may be.

    Only for numbers on both sides (sets, tuples, functions and symbols keep math-verify's
    verdict): an equal verdict stands when some reading of the answer is within
    :data:`_CLOSE` of some reading of the gold, relative to the larger, or is the gold rounded
    to the answer's own last digit with at least :data:`_SIGNIFICANT` significant digits. An
    exact 0 is close only to 0, so ``0.0`` is never the answer to ``10^{-8}``.
    """
    golds = [_readings(g) for g in gold if not isinstance(g, str)]
    preds = [_readings(p) for p in pred if not isinstance(p, str)]
    if not golds or not preds or any(r is None for r in (*golds, *preds)):
        return None
    gold_values = [v for r in golds if r is not None for v, _ in r]
    pred_values = [v for r in preds if r is not None for v in r]
    if any(_close(g, p) for g in gold_values for p in pred_values):
        return None
    return (
        f"equal only once rounded: {pred_values[0][0]:.6g} differs from {gold_values[0]:.6g} by "
        f"more than {_CLOSE:.1%} of its size"
    )
