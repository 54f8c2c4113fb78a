"""How an answer's number is read: the number rule's view of a response or a reference.

One idea: which number *is* the answer, and when the answer is more than a number. A LaTeX
answer dresses its number in units, degrees, spacing and thousands separators, which are read
through; an expression (``\\sqrt{16}``, ``2^{4}``, ``4x^2``) is not a number at all, and the number
inside it is not its value, so :class:`~graders._number.NumberGrader` leaves it unscored rather
than compare that number. The text helpers this builds on are in :mod:`graders._text`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from graders._answer_list import listed_items
from graders._text import (
    _NUMBER_RE,
    AnswerSource,
    Number,
    answer_regions,
    delimited_math,
    find_numbers,
    numeric_text,
    parse_number,
)

__all__ = [
    "LATEX_THOUSANDS",
    "MATH_SPAN",
    "NumberAnswer",
    "answer_expression",
    "joined_to_variable",
    "listed_answers",
    "read_number_answer",
    "select_answer_number",
    "variable_term",
]


LATEX_THOUSANDS = re.compile(r"(\d)(?:\{,\}|\\,|\\!|\\ |~)(?=\d{3}(?!\d))")
"""A LaTeX thousands separator (``1{,}000``, ``1\\,000``), to be read as a plain comma."""


def _answer_text(text: str) -> str:
    """The text a number is read from: full-width forms and invisible characters as
    :func:`numeric_text` reads them, LaTeX thousands separators as commas, a degree sign for
    ``^\\circ``, and a unit in ``\\text{}`` (with its power: ``\\text{ m}^2``) dropped, while a
    number in one (``\\textbf{4}``) stays."""
    text = LATEX_THOUSANDS.sub(r"\1,", numeric_text(text))
    if "\\" in text:
        text = _DEGREE_RE.sub("°", text)
        text = _UNIT_BLOCK_RE.sub(_unit_or_number, text)
    if "^" in text:  # "4 m^2": a unit's power, written as the sign it stands for
        text = _UNIT_POWER_RE.sub(
            lambda m: m.group(0).partition("^")[0] + "²³"[int(m.group(1)) - 2], text
        )
    return text


_UNIT_POWER_RE = re.compile(
    r"(?:(?<=\d)\s?(?:mm|cm|dm|km|nm|μm|m|ft|in|yd|mi)|(?<=[a-z])/s)\^\{?([23])\}?(?![\w^])"
)
_OPERATOR_CHARS = "-+*/×÷·"
_OPERATORS = frozenset(_OPERATOR_CHARS)
_PROSE_VARIABLE_BEFORE = re.compile(rf"(?<![A-Za-z])[xyzn][ \t]*[{_OPERATOR_CHARS}][ \t]*$")
_PROSE_VARIABLE_AFTER = re.compile(
    rf"[ \t]*[{_OPERATOR_CHARS}][ \t]*[xyzn](?![A-Za-z])(?![ \t]*\d)"
)
"""Outside math spans, a number joined to a variable by an operator on its line (``the answer
is x + 4``; a bullet on the next line is no operator); only the usual variable letters, since
prose has "a" and "I". Prose's ``4x`` is "four times" and ``12 x 3`` a times sign."""


def joined_to_variable(text: str, start: int, end: int) -> bool:
    """Whether the number at ``text[start:end]`` is joined to a variable by an operator
    (``x + 4``, ``4 - n``): then it is a term, not the answer (:data:`_PROSE_VARIABLE_AFTER`)."""
    before = text[:start].rstrip()
    # A match before ends at the operator, the last character once the blanks are stripped
    # (``$`` cannot sit before a final newline there): any other last character needs no search.
    if before[-1:] in _OPERATORS and _PROSE_VARIABLE_BEFORE.search(before):
        return True
    return _PROSE_VARIABLE_AFTER.match(text, end) is not None


_VARIABLE_POWER_RE = re.compile(r"[A-Za-z]\s*\^")
"""A letter raised to a power right after the number: ``4x^2`` is not the number 4."""
"""A length unit's square or cube after a number (``4 m^2``, ``3 ft^3``), or per second squared
(``m/s^2``); a letter that may be a variable (``4x^2``) is not one."""


_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?")
_UNIT_BLOCK_RE = re.compile(
    r"\\(text|textbf|textit|textrm|mathrm|mathbf|mbox|operatorname)\s*"
    r"\{((?:[^{}]|\{[^{}]*\})*)\}(\s*\^\s*(?:\{[^{}]*\}|\d))?"
)
_UNIT_WORD = r"(?!(?:ln|log|sin|cos|tan|exp|lcm|gcd|max|min|mod|det|or|and|of)\b)"
_UNIT_RE = re.compile(
    rf"[\s~]*(?:{_UNIT_WORD}(?:[A-Za-zμΩ°]{{2,}}|[mgsLlhKNJWVACTF])(?:\^\{{?-?\d\}}?)?[\s~]*){{1,3}}"
    r"(?:/\s*[A-Za-z]+(?:\^\{?-?\d\}?)?)?[\s~]*"
)
"""A unit as a ``\\text{}`` block writes it: ``cm``, ``m/s^2``, ``kg``; a single letter only where
it is a unit's symbol (``m``, ``g``, ``s``...), never ``e``, ``i``, ``x``, or a vector."""


def _unit_or_number(m: re.Match[str]) -> str:
    """A ``\\text{}``-like block: its number when it holds one, nothing when it is a unit (with
    its power), and as it was otherwise (``\\mathbf{v}^2``, ``\\mathrm{e}^{3}``: not a unit)."""
    body = m.group(2)
    if not re.search(r"[^\W\d_]", body):
        return m.group(0) if m.group(3) else body  # \textbf{4}^2 is a power, not a 4
    if m.group(1) not in ("textbf", "mathbf") and _UNIT_RE.fullmatch(body):
        return " "
    return m.group(0)


@dataclass(frozen=True)
class NumberAnswer:
    """How the number rule reads one text, read once: where its answer is, and what it holds.

    Why one reading: the rule asks three things of each side (is the answer an expression, which
    number is it, is it a list of candidates), and each had read the text through
    :func:`_answer_text` and :func:`~graders._text.answer_regions` again.

    Each answer is worked out when first asked for, then kept: the rule stops at the first one
    that decides (a hedge is not read for an expression, an expression not for its numbers), so
    a text pays only for the questions its verdict needed.

    Attributes:
        text: the text as numbers are read from it (:func:`_answer_text`).
        regions: :func:`~graders._text.answer_regions`' regions of ``text``.
        source: the rule that found the answer (:func:`~graders._text.answer_regions`').
        answer: :func:`select_answer_number`'s number, or ``None``.
        numbers: every number in the text, in order.
        expression: :func:`answer_expression`'s math, or ``None``.
        listed: :func:`listed_answers`' numbers (empty when the answer is not a list).
    """

    text: str
    regions: tuple[str, ...]
    source: AnswerSource

    @cached_property
    def numbers(self) -> tuple[Number, ...]:
        return tuple(find_numbers(self.text))

    @cached_property
    def answer(self) -> Number | None:
        if self.source == "last_number":
            return self.numbers[-1] if self.numbers else None
        if self.source == "answer_phrase":
            m = _NUMBER_RE.search(self.regions[-1])
            return parse_number(m.group(0)) if m else None
        nums = find_numbers(self.regions[-1])
        return nums[-1] if nums else None

    @cached_property
    def expression(self) -> str | None:
        return _expression(self.regions, self.source)

    @cached_property
    def listed(self) -> tuple[Number, ...]:
        return tuple(_listed(self.text, self.regions, self.source))


def read_number_answer(text: str) -> NumberAnswer:
    """Read ``text`` for the number rule once (see :class:`NumberAnswer`)."""
    text = _answer_text(text)
    regions, source = answer_regions(text)
    return NumberAnswer(text=text, regions=tuple(regions), source=source)


def select_answer_number(text: str) -> tuple[Number | None, AnswerSource, list[Number]]:
    """Pick the number that is *the answer* of ``text``; the first rule that applies wins.

    1. ``boxed``: the last ``\\boxed{…}`` (or ``\\fbox{…}``); its *last* number (``x = 5`` → 5).
    2. ``answer_tag``: the last ``<answer>…</answer>`` block; its *last* number.
    3. ``answer_phrase``: the *first* number after the last "answer is" / "answer:" /
       "answer =" / ``####``, so commentary after the stated answer does not override it.
    4. ``last_number``: the last number anywhere.

    Why strict: once the text marks its answer (rules 1–3), that region alone is used, and a
    marked answer with no number in it gives ``None`` instead of falling back to a number from the
    reasoning. Otherwise "\\boxed{x}" after a stray "42" in the working would score as 42.
    The regions are :func:`answer_regions`'.

    The text is read through :func:`numeric_text` (full-width forms, invisible characters), and
    a LaTeX thousands separator as a comma (``\\boxed{1{,}000}`` is 1000, not 000).

    Returns:
        ``(answer or None, the rule used, every number in text)``.
    """
    reading = read_number_answer(text)
    return reading.answer, reading.source, list(reading.numbers)


_LATEX_WORDS = re.compile(
    r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|operatorname)\s*\{[^{}\d]*\}"
    r"|\\(?:circ|degree|left|right|displaystyle|quad|qquad"
    r"|approx|simeq|[,;:! %$])"
)
"""LaTeX that dresses a number without changing it: units in text, degrees, spacing, ``\\%``."""
_VARIABLE_TERM = (
    r"(?<![A-Za-z\\])[A-Za-z]\s*[-+*/×÷·]\s*#|#\s*[-+*/×÷·]\s*[A-Za-z](?![A-Za-z])"
    r"|#[xyzn](?![A-Za-z])"
)
_VARIABLE_TERM_RE = re.compile(_VARIABLE_TERM)
_MORE_THAN_A_NUMBER = re.compile(
    r"\\[A-Za-z]+|[{}^√π_]|(?<=#)\s*!(?!=)|#\s*(?:[-+*×÷·]\s*)?#|" + _VARIABLE_TERM
)
"""Once the numbers are ``#`` and the dressing gone: a command (``\\sqrt``, ``\\frac`` around
a letter), a brace, a power, a factorial, arithmetic between numbers, or a number joined to a
variable (``x+4``, ``2x+4``, ``4x``): such an answer's number is not its value, and read as one
``\\boxed{x+4}`` scored 1.0 against a gold of 4. A unit after a number (``4 m``, ``4 apples``)
joins it with no operator, so it stays a number."""
MATH_SPAN = re.compile(
    r"\$\$.+?\$\$|(?<!\\)\$[^$]+(?<!\\)\$|"
    + delimited_math("\\(", "\\)")
    + "|"
    + delimited_math("\\[", "\\]"),
    re.DOTALL,
)
"""A ``$…$``, ``$$…$$``, ``\\(…\\)`` or ``\\[…\\]`` span."""


def _more_than_a_number(math: str) -> bool:
    """Whether ``math`` (a box's content, a ``$…$`` span) is more than a number in its LaTeX
    dressing: see :data:`_MORE_THAN_A_NUMBER`."""
    rest = _NUMBER_RE.sub("#", _LATEX_WORDS.sub(" ", math))
    while (bare := _BRACED_NUMBER_RE.sub("#", rest)) != rest:  # {4}, {{4}}: braces only
        rest = bare
    return bool(_MORE_THAN_A_NUMBER.search(rest))


def variable_term(math: str) -> bool:
    """Whether ``math`` joins a number to a variable (``x+4``, ``2x+4``, ``4x``): a term, not a
    number (see :data:`_MORE_THAN_A_NUMBER`)."""
    return bool(_VARIABLE_TERM_RE.search(_NUMBER_RE.sub("#", _LATEX_WORDS.sub(" ", math))))


_BRACED_NUMBER_RE = re.compile(r"(?<![_^}])\{\s*#\s*\}")


def answer_expression(text: str) -> str | None:
    """The math around :func:`select_answer_number`'s answer when it is more than a number
    (``\\boxed{\\sqrt{16}}``, ``\\boxed{2^{4}}``, ``$\\frac{x}{4}$``, ``\\boxed{4!}``), else
    ``None``.

    Why: read alone, the number in such an answer is not its value (``\\sqrt{16}`` is 4, not
    16), so a rule that compares numbers cannot grade it either way. A boxed answer is read
    whole; elsewhere, the ``$…$`` span the answer number sits in, or a power around it.
    """
    return read_number_answer(text).expression


def _expression(regions: Sequence[str], source: AnswerSource) -> str | None:
    region = regions[-1]
    if source == "boxed":  # read whole; after an "=" its right side (\\boxed{3^2 = 9})
        return region.strip() if _more_than_a_number(region.rsplit("=", 1)[-1]) else None
    found = list(_NUMBER_RE.finditer(region))
    if not found:
        return None
    chosen = found[0] if source == "answer_phrase" else found[-1]
    for m in MATH_SPAN.finditer(region):
        if m.start() <= chosen.start() < m.end():
            return m.group(0) if _more_than_a_number(m.group(0)) else None
    before, after = region[: chosen.start()].rstrip(), region[chosen.end() :].lstrip()
    if (
        after.startswith("^")
        or _VARIABLE_POWER_RE.match(after)
        or before.endswith(("^", "^{", "\\sqrt{", "\\sqrt"))
        or joined_to_variable(region, chosen.start(), chosen.end())
    ):
        return region[max(0, chosen.start() - 8) : chosen.end() + 8].strip()
    return None


_SENTENCE_END = re.compile(r"(?<=[.!?])\s|\n")


def listed_answers(text: str) -> list[Number]:
    """The numbers of an answer that is a bare list of values (``\\boxed{1, 2, 3, 4}``,
    ``<answer>5 or 6</answer>``, "the answer is 5 or 6", a last line "-2, 2"), else ``[]``;
    whether they differ is the caller's to say (``3/4 (75%)`` lists one value twice).

    Why: the number rule reads one number (a box's last, the first after "answer is"), so a list
    of candidates scored 1.0 against whichever of them it read, and a gold of two roots was
    graded as its last one. Read where :func:`select_answer_number` reads: the marked answer
    (after a phrase, to its sentence's end), else the whole text or its last line."""
    return list(read_number_answer(text).listed)


def _listed(text: str, regions: Sequence[str], source: AnswerSource) -> list[Number]:
    if source == "last_number":
        lines = [line for line in text.splitlines() if line.strip()]
        return _listed_in(text) or (_listed_in(lines[-1]) if lines else [])
    if source == "answer_phrase":
        region = _SENTENCE_END.split(regions[-1].strip(), maxsplit=1)[0]
    else:
        region = regions[-1]
    return _listed_in(region)


def _listed_in(region: str) -> list[Number]:
    found = list(_NUMBER_RE.finditer(region))
    items = listed_items(region, [m.span() for m in found], numbers=True)
    numbers = [parse_number(found[i].group(0)) for i in items]
    return [n for n in numbers if n is not None] if None not in numbers else []
