"""Verifiable first, the numbers of an answer: candidate spans, and reading numbers as them.

One idea: where the candidate answers of a text are and what each means. A :class:`_Span` is
one candidate (a number, or a choice letter) with a key that equal answers share (``4`` and
``4.0``); :func:`_number_spans` reads a text's numbers as spans, and :func:`_needs_math` and
:func:`_math_span_at` tell a plain number from math that math-verify reads instead. Split out of
:mod:`graders._verify_answer`, whose number, choice and hedging rules use these, so that each
module stays small.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from graders._answer_number import MATH_SPAN, variable_term
from graders._text import Number, parse_number
from graders._verify_reference import _FRACTION_WORD, _NUMBER_RE, _clean, _word_numbers


@dataclass(frozen=True, slots=True)
class _Span:
    """A candidate answer in a text: where, as written, and what it means (equal keys, same
    answer: ``4`` and ``4.0``)."""

    start: int
    end: int
    text: str
    key: object
    number: Number | None = None


def _number_spans(text: str) -> list[_Span]:
    """Numbers in ``text``; number words only when it has no digits (``"eight legs"``).

    Each match is parsed as it stands (read alone, a match of the number pattern is that one
    number again, so it is not searched a second time)."""
    found = [
        (m.start(), m.end(), n)
        for m in _NUMBER_RE.finditer(text)
        if (n := parse_number(m.group(0))) is not None
    ]
    if not found and not _FRACTION_WORD.search(text):  # "one half" is not 1
        found = _word_numbers(text)
    return [_Span(a, b, n.text, _value_key(n), n) for a, b, n in found]


def _value_key(n: Number) -> tuple[float, ...]:
    return tuple(map(_rounded, n.candidates()))


def _rounded(value: float) -> float:
    """``round(value, 9)``, which a whole number already is: ``round`` with digits goes through
    decimal text and back, and a whole number (most answers) needs none of it."""
    return value if type(value) is float and value.is_integer() else round(value, 9)


def _needs_math(region: str) -> bool:
    """Math beyond a plain number (``\\sqrt{16}``, ``2^2``, ``\\frac{-1}{2}``): what is left
    once the numbers are taken out still has a command, a brace or a power."""
    rest = _NUMBER_RE.sub(" ", _clean(region))
    if re.search(r"\\(?![%$])[A-Za-z]*|[{}^√π]", rest):
        return True
    # A number joined to a variable (x + 4, 2x + 4, 4x): its number is a term, not the answer
    # (\boxed{x+4} scored 1.0 against a gold of 4).
    return variable_term(region.rsplit("=", 1)[-1])


def _math_span_at(text: str, at: int) -> re.Match[str] | None:
    """The math span (:data:`~graders._answer_number.MATH_SPAN`) that holds position ``at``, if
    any. Each span opens with a dollar sign or a backslash: text with neither is not scanned."""
    if "$" not in text and "\\" not in text:
        return None
    return next((m for m in MATH_SPAN.finditer(text) if m.start() <= at < m.end()), None)
