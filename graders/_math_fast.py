"""The exact-match fast path of the math check: text only, no sympy, and only ever "equal".

In a GRPO group most completions that are right write the gold exactly as it is
(``\\boxed{\\frac{3}{4}}`` for ``\\frac{3}{4}``), and parsing each one with math-verify costs far
more than comparing two strings. This module decides those cases from the text alone.

It is conservative by construction, because a wrong "equal" is a reward the policy can farm and a
wrong fast answer of any kind would make the grader disagree with itself:

* It only ever says "equal". Anything else (different text, an answer it cannot isolate, text it
  does not fully understand) returns ``None`` and the full math-verify check runs.
* Both sides must be in a small language whose reading by math-verify does not depend on where
  the text sits: integers and decimals, single-letter variables, ``+ - * / ^``, parentheses,
  ``\\frac``, ``\\sqrt`` and ``\\pi``. No commas (``1,000`` reads as a set in LaTeX and as a
  number in plain text), no units or words, no percent, no sets, intervals or relations, and no
  letter after a space at the end (math-verify drops it as a unit: ``1 - t`` reads as ``1 -``).
* The gold must be one the worker read that way too: a plain number read by the number parser,
  or bare math read as LaTeX once wrapped in ``$...$`` (see :func:`gold_key`), and the response's
  final part must hold exactly one answer (one ``\\boxed{}``, or with no box exactly one math
  span) and no other digit, dollar, brace, backslash, bracket or percent, so math-verify cannot
  pick another one or read this one differently.

Then gold and answer are the same string in the same LaTeX reading, so math-verify reads the same
expression twice, and an expression is equivalent to itself. ``tests/graders/test_math_batch.py``
checks on the labelled cases and on generated GRPO-style batches that no verdict changes.
"""

from __future__ import annotations

import re

__all__ = ["answer_key", "fast_answer", "fast_text", "gold_key"]

_MAX_LEN = 120
"""Longer answers go the full way: the fast path is for the common short ones."""

_ALLOWED = re.compile(r"[0-9A-Za-z+\-*/^(){}. \\]+")
_COMMAND = re.compile(r"\\([A-Za-z]+)")
_COMMANDS = frozenset({"frac", "dfrac", "tfrac", "sqrt", "pi"})
_WORDLIKE = re.compile(r"[A-Za-z]{2,}")
_SPACED_DIGITS = re.compile(r"\d\s+\d")  # "4 4/9" is a mixed number, "1 000" a separator
_STRAY_POINT = re.compile(r"(?<!\d)\.|\.(?!\d)")
_PLAIN_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?")
_SPACES = re.compile(r"\s+")
_OPERATOR_SPACE = re.compile(r"\s*([-+*/^(){}])\s*")
# Outside the answer the response may hold prose only: nothing math-verify could read instead,
# nor change its reading of the answer with: a percent sign or word after a span makes it a
# percentage, and a bracketed " [x] " is read as inline math (the rightmost answer wins).
_MATHLIKE = re.compile(r"[\d$\\{}%\[\]]|percent|pct", re.IGNORECASE)
# A letter after a space at the end of the answer is read as a unit and dropped ("1 - t" is read
# as "1 -", "\frac{1}{2} m" as one half), while "1-t" keeps it: spacing there decides the reading.
_SPACED_LAST_LETTER = re.compile(r"\s[A-Za-z]$")
_SPANS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))


def _normalise(text: str) -> str | None:
    """The answer in canonical spelling, or ``None`` when it is outside the safe language.

    The spelling is the text as written (``\\dfrac`` and ``\\tfrac`` read as ``\\frac``):
    spacing can change math-verify's reading (its number fallback reads a number after a space,
    latex2sympy's repairs of ``\\frac{x}2`` accept one space and not two), so two answers
    spaced differently are two answers here.
    """
    if len(text) > _MAX_LEN or not _ALLOWED.fullmatch(text):  # no newline: math-verify
        return None  # does not read inline math broken across lines
    if not text.strip():
        return None
    if _SPACED_DIGITS.search(text) or _STRAY_POINT.search(text) or _SPACED_LAST_LETTER.search(text):
        return None
    if any(name not in _COMMANDS for name in _COMMAND.findall(text)):
        return None
    if _WORDLIKE.search(_COMMAND.sub(" ", text)) or not _balanced(text):
        return None
    if _LOOSE.search(text) or not _braced_arguments(text):
        return None
    return text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")


_LOOSE = re.compile(r"\\(?![A-Za-z])|\^(?![{0-9A-Za-z])")
"""A backslash that starts no command, or a power whose exponent is not braced, a digit or a
letter (``x^-2``, ``2^(x+1)``): forms whose LaTeX reading can fail, and then math-verify falls
back to reading a plain number, which depends on the text around it."""
_ARGUMENTS = {"frac": 2, "dfrac": 2, "tfrac": 2, "sqrt": 1}


def _braced_arguments(text: str) -> bool:
    """Whether every ``\\frac`` and ``\\sqrt`` takes its arguments in braces, right after
    the command (``\\frac{1}{2}``, not ``\\frac12``, ``\\frac{x}2`` or ``\\sqrt(x)``)."""
    for m in _COMMAND.finditer(text):
        j = m.end()
        for _ in range(_ARGUMENTS.get(m.group(1), 0)):
            if j >= len(text) or text[j] != "{":
                return False
            depth = 0
            while j < len(text):
                depth += (text[j] == "{") - (text[j] == "}")
                j += 1
                if depth == 0:
                    break
    return True


def _balanced(text: str) -> bool:
    depth = 0
    for c in text:
        depth += (c == "{") - (c == "}")
        if depth < 0:
            return False
    return depth == 0


def gold_key(gold: str, how: str) -> str | None:
    """The gold's canonical text for the fast path, or ``None`` when it may not take it.

    ``how`` is how the worker parsed the gold: ``"number"`` (the plain-number parser) or
    ``"wrapped"`` (bare math wrapped in ``$...$`` and read as LaTeX); any other reading is out.
    """
    text = gold.strip()
    if how == "number":
        return text if _PLAIN_NUMBER.fullmatch(text) else None
    if how == "wrapped":
        return _normalise(text)
    return None


def _boxed(final: str) -> str | None:
    """The final part with its one ``\\boxed{...}`` (and ``$`` around it) cut out, as
    ``content`` and the rest; ``None`` unless there is exactly one well-formed box."""
    if final.count("\\boxed") != 1:
        return None
    start = final.find("\\boxed{")
    if start < 0:
        return None
    depth, j = 1, start + len("\\boxed{")
    while j < len(final) and depth:
        depth += (final[j] == "{") - (final[j] == "}")
        j += 1
    if depth:
        return None
    content = final[start + len("\\boxed{") : j - 1]
    before, after = final[:start], final[j:]
    if before.endswith("$") and after.startswith("$"):
        before, after = before[:-1], after[1:]
    return None if _MATHLIKE.search(before) or _MATHLIKE.search(after) else content


def _span_with_opener(final: str) -> tuple[str, str | None]:
    """The opener and content of the final part's only math span, when nothing else in it is
    math-like (the content is ``None`` otherwise). The opener is reported with what precedes
    it, start, space or ``=`` as one: math-verify's number fallback reads a number only there
    (``So it is $2^-x$`` holds a 2, ``So it is:$2^-x$`` none)."""
    for open_, close in _SPANS:
        i = final.find(open_)
        if i < 0:
            continue
        j = final.find(close, i + len(open_))
        if j < 0:
            return open_, None
        before, after = final[:i], final[j + len(close) :]
        if _MATHLIKE.search(before) or _MATHLIKE.search(after):
            return open_, None
        lead = before[-1:]
        where = open_ if not lead or lead.isspace() or lead == "=" else f"{lead}{open_}"
        return where, final[i + len(open_) : j]
    return "", None


def answer_key(final: str) -> tuple[str, str] | None:
    """How the final part writes its one answer and the answer in canonical spelling, as in
    :func:`fast_answer`, with where it was found (``"boxed"`` or the math span's opener).

    Two final parts with the same key hold the same expression, read the same way, and nothing
    else math-verify could read instead; checked against one gold they get the same verdict, so
    a grader may check the answer once for both (``tests/graders/test_math_batch.py`` checks
    this on the labelled cases and the generated GRPO batches).
    """
    if "\\boxed" in final:
        how, content = "boxed", _boxed(final)
    else:
        how, content = _span_with_opener(final)
    canonical = None if content is None else _normalise(content)
    return None if canonical is None else (how, canonical)


def fast_answer(final: str) -> str | None:
    """The response's final answer in canonical spelling when the fast path can read it.

    ``final`` is the part of the response that holds the answer (after ``</think>``, inside the
    last ``<answer>`` block). ``None`` means "read it the full way", never "no answer". A span
    after anything but a space, ``=`` or the start is read the full way too: the gold is read
    as a span at the start.
    """
    return fast_text(answer_key(final))


_FAST_HOWS = frozenset({"boxed", *(open_ for open_, _ in _SPANS)})


def fast_text(key: tuple[str, str] | None) -> str | None:
    """The canonical answer of an :func:`answer_key` when the fast path may compare it with the
    gold's: boxed, or a span at the start, after a space or after ``=``.

    Shared by the worker's fast path and the grader's own exact match, so that the two take
    exactly the same answers (a span after other text, ``So:$x^2$``, goes the full way).
    """
    if key is None or key[0] not in _FAST_HOWS:
        return None
    return key[1]
