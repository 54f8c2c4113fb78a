"""Units on both sides of a math comparison: two known units that differ make two answers differ.

math-verify drops units before it compares (its ``units`` normalisation, which the math grader
keeps on so that ``5\\text{ cm}`` equals a gold of ``5``), so ``\\boxed{5\\text{ m}}`` equalled
a gold of ``5\\text{ cm}``, ``3\\text{ minutes}`` one of ``3\\text{ hours}``, and ``20\\text{
cm}^2`` one of ``20\\text{ cm}``. Here the unit written after each answer's numbers is read
and named canonically (``centimetres`` and ``cm`` are one unit); when both answers name one and
the two differ, they are not equal. A unit only one side writes, or one this table does not
know, changes nothing: math-verify decides as before.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from graders._text import boxed_contents

__all__ = ["UNITS", "unit_of"]


def _names(table: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for canonical, spellings in table.items():
        for s in (canonical, *spellings.split()):
            out[s] = canonical
    return out


UNITS: dict[str, str] = _names(
    {
        "mm": "millimeter millimeters millimetre millimetres",
        "cm": "centimeter centimeters centimetre centimetres",
        "m": "meter meters metre metres",
        "km": "kilometer kilometers kilometre kilometres",
        "in": "inch inches",
        "ft": "foot feet",
        "yd": "yard yards",
        "mi": "mile miles",
        "mg": "milligram milligrams",
        "g": "gram grams",
        "kg": "kilogram kilograms kgs",
        "lb": "lbs pound pounds",
        "ml": "milliliter milliliters millilitre millilitres mL",
        "l": "liter liters litre litres L",
        "s": "sec secs second seconds",
        "min": "mins minute minutes",
        "h": "hr hrs hour hours",
        "day": "days",
        "week": "weeks",
        "month": "months",
        "year": "years yr yrs",
        "cent": "cents",
        "dollar": "dollars",
    }
)
"""Spellings of common units, each to one canonical name (case-sensitive only for ``mL``/``L``)."""

_UNIT_AFTER = re.compile(
    r"(?<![\d.,])(?P<num>\d+(?:[.,]\d+)*)(?P<sep>(?:[ \t}$~(]|\\[,;:! )\]])*+)"
    r"(?:\\(?:text|mathrm|mbox|textrm|operatorname)[ \t]*+\{[ \t]*+~?[ \t]*+"
    r"(?P<tex>[A-Za-z]++)[^{}]*+\}"
    r"|(?P<plain>[A-Za-z]+)\b)"
    r"(?P<power>[ \t]*+(?:\^[ \t]*+\{?[ \t]*+\d[ \t]*+\}?|[²³]))?"
)
_AFTER_BOX = re.compile(
    r"\}(?:[ \t$~(]|\\[,;:! )\]])*+"
    r"(?:\\(?:text|mathrm|mbox|textrm|operatorname)[ \t]*+\{[^{}]*\}|[A-Za-z]+\b)"
    r"(?:[ \t]*+(?:\^[ \t]*+\{?[ \t]*+\d[ \t]*+\}?|[²³]))?"
)
"""The closing brace of a box and the one word or ``\\text{}`` unit straight after it: the
unit of ``\\boxed{5} cm``, never a word further on ("\\boxed{5} (that is 0.05 m)")."""
_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_MATH_BETWEEN = re.compile(r"[}$()\]]")
"""A math delimiter between a number and a word: the word follows the math, not the digit."""
_PREPOSITIONS = frozenset({"in"})
"""Unit spellings that are also words of the sentence around an answer ("\\boxed{12} in
total", "$12$ in centimetres"): read as units straight after a digit only (``12 in``)."""


def _unit_after_box(answer: str, content: str) -> str:
    """What follows the last box's closing brace up to its unit, when a unit comes straight
    after it; else ``""``. The last box is the last one opened (:func:`boxed_contents`)."""
    openers = list(_BOX_OPEN.finditer(answer))
    if not openers:
        return ""
    m = _AFTER_BOX.match(answer, openers[-1].end() + len(content))
    return m.group(0) if m else ""


_SAME_AS = {"cm^3": "ml", "dm^3": "l"}
"""Units that are one unit under two names (a cubic centimetre is a millilitre)."""


def unit_of(answer: str, read: Callable[[], float | None] | None = None) -> str | None:
    """The canonical unit written after the numbers of ``answer`` (its last box and a unit
    right after it, else all of it), with its power (``cm^2``); ``None`` when it writes none
    this table knows.

    A unit may follow the number's math: ``$5$ cm``, ``\\(5\\) cm``, ``\\boxed{5} cm``,
    ``\\frac{1}{2} m``. Read only straight after a digit, a unit there went unseen, and math-verify
    (which reads the math alone) scored ``<answer>$5$ cm</answer>`` 1.0 against a gold of ``5 m``.

    Several units: the unit of the number math-verify reads as the answer (``read``, asked for
    only then: the answer's value, or ``None``), where exactly one number of that value has a
    unit; else the first one is the answer's, and the rest restate it ("6 days (144
    hours)"). In prose math-verify reads the last number ("500 cm, i.e. 5 m", "2 kg = 2000
    g"): the first unit scored those 0 against a gold in the unit of what was read. Read as
    no unit at all, ``$5$ cm (0.05 m)`` matched a gold of ``5 m`` and one of
    ``5 cm``: math-verify reads the 5 and nothing said which unit was checked. One number given
    in two units ("$5$ cm or $5$ m") is a hedge on the unit: both joined by "or", a unit no
    gold names.
    """
    boxes = boxed_contents(answer)
    region = boxes[-1] + _unit_after_box(answer, boxes[-1]) if boxes else answer
    found: dict[float | str, list[str]] = {}  # the units written after each number, in order
    for m in _UNIT_AFTER.finditer(region):
        word = m.group("tex") or m.group("plain")
        unit = UNITS.get(word) or UNITS.get(word.lower())
        if unit is None or _word_after_math(m):
            continue
        power = re.sub(r"\D", "", (m.group("power") or "").replace("²", "2").replace("³", "3"))
        named = unit + (f"^{power}" if power and power != "1" else "")
        units = found.setdefault(_value(m.group("num")), [])
        if (canonical := _SAME_AS.get(named, named)) not in units:
            units.append(canonical)
    hedged = sorted({u for units in found.values() if len(units) > 1 for u in units})
    if hedged:
        return " or ".join(hedged)
    if not found:
        return None
    first = next(iter(found.values()))[0]
    if read is None or len({units[0] for units in found.values()}) == 1:
        return first
    value = read()
    if value is None:
        return first
    mine = {
        units[0]
        for number, units in found.items()
        if isinstance(number, float) and math.isclose(number, value, rel_tol=1e-9)
    }
    return mine.pop() if len(mine) == 1 else first


def _word_after_math(m: re.Match[str]) -> bool:
    """Whether ``m`` read a word of the sentence as a unit: a plain word that is also a
    preposition (``_PREPOSITIONS``), written after a math delimiter rather than a digit."""
    plain = m.group("plain")
    return (
        plain is not None
        and plain.lower() in _PREPOSITIONS
        and _MATH_BETWEEN.search(m.group("sep")) is not None
    )


def _value(number: str) -> float | str:
    """A number as written before a unit, as its value where it reads as one (``5`` and
    ``5.0`` are one number)."""
    try:
        return float(number.replace(",", ""))
    except ValueError:
        return number
