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

import re

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
    r"\d[ \t]*+(?:\\[,;:! ]|~)?[ \t]*+"
    r"(?:\\(?:text|mathrm|mbox|textrm|operatorname)[ \t]*+\{[ \t]*+~?[ \t]*+"
    r"(?P<tex>[A-Za-z]+)[ \t]*+\}"
    r"|(?P<plain>[A-Za-z]+)\b)"
    r"(?P<power>[ \t]*+(?:\^[ \t]*+\{?[ \t]*+\d[ \t]*+\}?|[²³]))?"
)
_SAME_AS = {"cm^3": "ml", "dm^3": "l"}
"""Units that are one unit under two names (a cubic centimetre is a millilitre)."""


def unit_of(answer: str) -> str | None:
    """The canonical unit written after the numbers of ``answer`` (its last box, else all of
    it), with its power (``cm^2``): ``None`` when it writes none this table knows, or more than
    one ("6 days (144 hours)" names its answer twice; which is meant is not for a rule)."""
    boxes = boxed_contents(answer)
    region = boxes[-1] if boxes else answer
    found = set()
    for m in _UNIT_AFTER.finditer(region):
        word = m.group("tex") or m.group("plain")
        unit = UNITS.get(word) or UNITS.get(word.lower())
        if unit is None:
            continue
        power = re.sub(r"\D", "", (m.group("power") or "").replace("²", "2").replace("³", "3"))
        named = unit + (f"^{power}" if power and power != "1" else "")
        found.add(_SAME_AS.get(named, named))
    return found.pop() if len(found) == 1 else None
