"""A bare list of answers: numbers or letters with nothing but separators between them.

One idea, shared by the correctness rule and :class:`~graders._number.NumberGrader`: where a
reply is only a list (``56\\n\\n54``, ``A, B, C, D``, ``\\boxed{1, 2, 3, 4}``, ``x = 3 \\text{ or }
x = 4``, a numbered list), which of its numbers or letters are the listed answers. Whether they
differ (``3/4 (75%)`` is one answer written twice) is the caller's to say, by its own
comparison.

The gap pattern is possessive: each stretch between two items is read once, left to right, so
no text makes it backtrack (an earlier, overlapping version took seconds on 94 characters of
``"\\n* "`` lines).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["listed_items"]

_GAP = re.compile(
    r"(?:(?<![^\n])[ \t]*+(?:[-+*•·]|\d{1,2}[.)])[ \t]"  # a bullet or "1." opening a line
    r"|(?<![A-Za-z\\])[A-Za-z][ \t]*+="  # a variable's "x ="
    r"|\b(?:or|and|und|et|y|и)\b"
    r"|\\text[ \t]*+\{[ \t]*+(?:or|and)[ \t]*+\}|\\(?:quad|qquad|lor|vee)(?![A-Za-z])"
    r"|\\[{}(),;! ]|[\s,;|/&.()\[\]$*•·])*+",  # not a bare brace: {2}{3} is TeX, no list
    re.IGNORECASE,
)
"""What may stand around and between listed answers: separators, brackets, set braces, "or"
and "and", a variable and its "=", a bullet or a number with a dot opening a line."""
_VARIABLE = re.compile(r"(?<![A-Za-z\\])([A-Za-z])[ \t]*=")
_ENUMERATOR = re.compile(r"[ \t]*\d{1,2}[.)][ \t]")


def listed_items(
    text: str, spans: Sequence[tuple[int, int]], *, numbers: bool = False
) -> list[int]:
    """The indices of ``spans`` (each a ``(start, end)`` of a number or letter in ``text``, in
    order) that are a bare list's items: two or more, with only :data:`_GAP` text around and
    between them. A number that opens a line as ``1.`` or ``2)`` numbers an item and is none.
    Empty when ``text`` is anything else: prose, arithmetic (``2 + 2 = 4``), values of two
    variables (``x = 3, y = 4`` answers both), and, for ``numbers``, two numbers apart by
    spaces alone (``4 1/2`` is one mixed number)."""
    items = [i for i, (a, b) in enumerate(spans) if not _numbers_a_line(text, a, b)]
    if len(items) < 2:
        return []
    bounds = [0, *(x for i in items for x in spans[i]), len(text)]
    gaps = [(bounds[k], bounds[k + 1]) for k in range(0, len(bounds), 2)]
    if any(_GAP.fullmatch(text, a, b) is None for a, b in gaps):
        return []
    if len({v.casefold() for a, b in gaps for v in _VARIABLE.findall(text, a, b)}) > 1:
        return []
    if numbers and any(not text[a:b].strip(" \t") for a, b in gaps[1:-1]):
        return []
    return items


def _numbers_a_line(text: str, start: int, end: int) -> bool:
    """The span at ``start:end`` is a list's ``1.`` or ``2)``, opening its line."""
    line = text.rfind("\n", 0, start) + 1
    m = _ENUMERATOR.match(text, line)
    return m is not None and start < m.end() and end <= m.end()
