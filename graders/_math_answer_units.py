"""The units of the two answers the math worker compares, each read as math-verify reads it.

math-verify drops units before it compares, so the check compares them itself first
(:mod:`graders._math_units` names them): the gold's is read once with the parsed gold, the
answer's only when the gold has one, and from a delimited final answer only. Where an answer
writes several units, the one that counts is that of the number math-verify reads
(:func:`_read_value`). Moved out of :mod:`graders._math_worker`, which calls these in the
worker processes; the service also calls :func:`answer_unit` in its own process. Light imports
only: no math-verify or sympy here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from graders._math_text import canonical_tags
from graders._math_text import final_part as _final_part
from graders._math_units import unit_of

__all__ = ["answer_unit"]


def answer_unit(response: str, read: Callable[[], float | None] | None = None) -> str | None:
    """The unit of the response's final answer where it is delimited (a box, an ``<answer>``
    block): in running prose a unit after a number may belong to a remark ("150 km, which it
    covers in 3 hours"). ``read``: the value math-verify reads, for an answer with several
    units (see :mod:`graders._math_units`)."""
    final = _final_part(response)
    if final is None or not ("\\boxed" in final or "<answer>" in canonical_tags(response)):
        return None
    return unit_of(final, read)


def _read_value(parsed: Sequence[Any] | None) -> float | None:
    """The number math-verify read as an answer (the right side of an equation it read: the
    side it compares), or ``None`` when it read no single number."""
    if not parsed:
        return None
    value = parsed[0]
    if getattr(value, "is_Relational", False):
        value = value.rhs
    if not getattr(value, "is_number", False):
        value = _number_before_letters(value)
        if value is None:
            return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _number_before_letters(value: Any) -> Any:
    """The number of a product of a number and letters (``2*l``, ``12*i*n``): math-verify keeps
    a unit it does not drop as letters ("2 L", "12 in"), and read as no number the answer's unit
    fell back to the first one written, so "2000 mL = 2 L" scored 0 against a gold of ``2 L``."""
    split = getattr(value, "as_coeff_Mul", None)
    if split is None:
        return None
    number, letters = split()
    if number == 1 or not getattr(number, "is_number", False):
        return None
    factors = letters.args if getattr(letters, "is_Mul", False) else (letters,)
    return number if all(getattr(f, "is_Symbol", False) for f in factors) else None


def _units_differ(mine: str | None, their_unit: Callable[[], str | None]) -> tuple[str, str] | None:
    """The gold's unit (``mine``, kept with the parsed gold) and the answer's (read only when the
    gold has one), when both are known and differ: math-verify drops units, so ``5 m`` equalled
    ``5 cm``."""
    if mine is None:
        return None
    theirs = their_unit()
    return (mine, theirs) if theirs is not None and theirs != mine else None
