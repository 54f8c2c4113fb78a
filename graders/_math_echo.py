"""An answer that is the question's own expression written back, not worked out.

Why: math-verify evaluates both sides, so ``\\boxed{17 \\times 23}`` for "What is 17 * 23?" is
equivalent to the gold ``391``, and so are ``\\frac{6}{8}`` for "Simplify 6/8" (gold
``\\frac{3}{4}``) and ``(x+1)^2`` for "Expand (x+1)^2". Each was paid in full, and a policy
learns that copying the question's expression back is as good as doing the work: the cheapest
reward hack there is on a math reward. :func:`echoed_expression` is the defence the math rules
share (``math``, and ``correctness`` where it decides by rule).

An answer counts as an echo when all of these hold, so an honest answer is not caught:

* it is an operation still to be done (``+ - * / ^ !``, a root, a function, a fraction not in
  lowest terms), not one number: ``391``, ``-5``, ``1/2`` and ``3 \\times 10^8`` are never an
  echo, even where the question holds them ("heads has probability 1/2; and tails?");
* the question holds the same expression, token for token once spacing and notation are set
  aside (``17 \\times 23``, ``17*23`` and ``$17 \\cdot 23$`` are one shape), and not as part of
  a longer number or name (``3/4`` is not in ``33/44``);
* the question puts it whole, not as a piece of a longer expression: ``x + 1`` is the honest
  quotient of "divide ``x^2 + 2x + 1`` by ``x + 1``" and of "simplify
  ``\\frac{(x+1)(x+2)}{x+2}``", where only the first is the expression put whole;
* no gold is written that way: when the gold itself is ``17 \\times 23`` (a question that asks
  for the product form), writing it is the answer. Nor is the gold in another order, grouping
  or spacing (``1 + x`` for ``x + 1``, ``\\sqrt{3}/2`` for ``\\frac{\\sqrt{3}}{2}``): its own
  terms rearranged are the gold's form, not work left undone.

Only the value after the answer's last ``=`` is read (``x = 17 \\times 23`` is the expression;
``17 \\times 23 = 391`` states the number).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from graders._prompt import _prompt_text

__all__ = ["echo_of_query", "echoed_expression", "query_text"]

_SPACING = re.compile(
    r"\$|\\[()\[\]]|\\left|\\right|\\[,!;: ]|\\quad|\\qquad|\\displaystyle"
    r"|\^\{?\\circ\}?|°|\\degree|~"  # degrees are a unit, not a power
)
_WRAPPER = re.compile(r"\\(?:text|textrm|textbf|mathrm|mathbf|mbox|operatorname)\{([^{}]*)\}")
_SAME = (
    (re.compile(r"\\[dtc]frac"), r"\\frac"),
    (re.compile(r"\\times|\\cdot|\\ast|[×·⋅∙∗✕]"), "*"),
    (re.compile(r"\\div|[÷∕⁄]"), "/"),
    (re.compile("[\u2212\u2013]"), "-"),  # the minus sign, an en dash
    (re.compile(r"√"), r"\\sqrt"),
)
_POWER = re.compile(r"\*\*")
_SUPERSCRIPT = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹]+")
_SUPERSCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
_MIXED = re.compile(r"(?<=\d)(?=\\frac)")
_FRAC = re.compile(r"\\frac\{([^{}]*)\}\{([^{}]*)\}")
_SQRT = re.compile(r"\\sqrt\s*\{([^{}]*)\}|\\sqrt\s*(\d+|[a-zA-Z])")
_POWER_BRACE = re.compile(r"\^\{([^{}]*)\}")
_TOKEN_BRACE = re.compile(r"(?<!\\)\{([\w.]+)\}")
"""A brace around one token is no grouping: ``{17}\\times{23}`` is ``17*23``."""
_AROUND = re.compile(r" ?([-+*/^=!),\[\]{}<>]) ?|(\() ?")
"""One space either side of a mark, after runs of spacing are one space: with ``\\s*`` either
side, a run of spaces with no mark after it was rescanned from each of its spaces (a 50,000-space
query took 16 s on the event loop). The space before ``(`` stays: ``Expand (x+1)^2`` puts
``(x+1)^2`` whole, ``f(x+1)`` does not."""
_IMPLICIT = re.compile(r"(?<=[\d)]) ?(?=\()|(?<=\))(?=[\w\\])")
"""A product written without its sign: ``2(3+4)`` is ``2*(3+4)``, ``(x+1)(x+2)`` is
``(x+1)*(x+2)``. Not between a number and a name: ``2\\pi`` stays one number."""
_TERM = re.compile(r"\d+(?:\.\d+)?|[a-zA-Z]+|[^\s()*\\\w]")
"""The terms of a shaped expression, for :func:`_terms` (grouping, ``*`` and ``\\`` aside)."""
_ENCLOSED_LEFT = set("+-*/^)")
_FUNCTIONS = frozenset(
    [
        "sqrt",
        "sin",
        "cos",
        "tan",
        "sec",
        "csc",
        "cot",
        "sinh",
        "cosh",
        "tanh",
        "arcsin",
        "arccos",
        "arctan",
        "log",
        "ln",
        "lg",
        "exp",
        "gcd",
        "lcm",
        "max",
        "min",
        "abs",
        "det",
    ]
)
"""Names that before ``(`` apply a function to the group, as a one-letter name (``f(x+1)``) or a
command (``\\log(x+1)``) does; a prose word (``Expand(x+1)^2``) does not."""
_ENCLOSED_RIGHT = set("+-*/^!(")
_WHITESPACE = re.compile(r"\s+")
_RELATION = re.compile(r"=|\\approx|≈")
_OPERATION = re.compile(r"[-+*/^!]|sqrt\(|\\(?!(?:pi|infty|circ|degree|%)(?![a-zA-Z]))[a-zA-Z]+")
"""What makes an answer work still to be done. Constants (``\\pi``) and marks (``\\%``) do not."""
_TRAILING = ".,;:"
_DECIMAL = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_SCIENTIFIC = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)\*10\^\(?[-+]?\d+\)?")
_FRACTION = re.compile(r"(?:(\d+) )?\(?([-+]?\d+)\)?/\(?([-+]?\d+)\)?")


def _one_number(value: str) -> bool:
    """Whether a shaped, unsigned answer is one number: an integer, a decimal, scientific
    notation, a fraction in lowest terms (``6/8`` is a fraction still to be simplified), or a
    mixed number (``1 1/2``)."""
    if _DECIMAL.fullmatch(value) or _SCIENTIFIC.fullmatch(value):
        return True
    fraction = _FRACTION.fullmatch(value)
    if fraction is None:
        return False
    numerator, denominator = abs(int(fraction[2])), abs(int(fraction[3]))
    if fraction[1] is not None and numerator >= denominator:
        return False  # a mixed number's fraction is proper: 1 4/2 is a sum
    return denominator > 1 and math.gcd(numerator, denominator) == 1


def _grouped(inner: str) -> str:
    """``inner`` as one operand: bare when it is one token, else in parentheses."""
    return inner if re.fullmatch(r"[\w.]+", inner) else f"({inner})"


def _shape(text: str) -> str:
    """``text`` with spacing and notation set aside, so two writings of one expression are
    one string: ``$17 \\times 23$`` and ``17*23`` give ``17*23``, ``\\frac{6}{8}`` and
    ``6/8`` give ``6/8``, ``2^{10}`` and ``2**10`` give ``2^10``."""
    text = _WRAPPER.sub(r" \1 ", _SPACING.sub(" ", text))
    text = _POWER.sub("^", text)
    text = _SUPERSCRIPT.sub(lambda m: "^" + _grouped(m[0].translate(_SUPERSCRIPT_DIGITS)), text)
    for pattern, same in _SAME:
        text = pattern.sub(same, text)
    text = _MIXED.sub(" ", text)  # 1\\frac{1}{2} is "1 1/2", not 11/2
    for _ in range(8):  # innermost first; nesting deeper than this stays as written
        before = text
        text = _FRAC.sub(lambda m: f"{_grouped(m[1].strip())}/{_grouped(m[2].strip())}", text)
        text = _SQRT.sub(lambda m: f"sqrt({(m[1] if m[1] is not None else m[2]).strip()})", text)
        text = _POWER_BRACE.sub(lambda m: f"^{_grouped(m[1].strip())}", text)
        if text == before:
            break
    text = _TOKEN_BRACE.sub(r"\1", text)  # after: a fraction's {2} is no stray brace
    text = _AROUND.sub(lambda m: m[1] or m[2], _WHITESPACE.sub(" ", text))
    return _IMPLICIT.sub("*", text).strip()


def _terms(shaped: str) -> list[str]:
    """The terms of a shaped expression in order of their text: two writings with equal terms
    are one expression in another order, grouping or spacing (``1+x`` and ``x + 1``), which
    math-verify found equal, so neither is work left undone on the other."""
    return sorted(_TERM.findall(shaped))


def _put_whole(query: str, start: int, end: int) -> bool:
    """Whether ``query[start:end]`` stands whole in the shaped question, not as a piece of a
    longer expression: parentheses around it are its own, and no operation or product joins it
    to what is beside them (the ``x+1`` in ``(x^2+2x+1)/(x+1)`` is a divisor)."""
    while start > 0 and end < len(query) and query[start - 1] == "(" and query[end] == ")":
        start, end = start - 1, end + 1
    left = query[start - 1] if start > 0 else " "
    right = query[end] if end < len(query) else " "
    if left in _ENCLOSED_LEFT or left.isdigit() or right in _ENCLOSED_RIGHT or right.isalnum():
        return False
    if not left.isalpha():
        return True
    word = start
    while word > 0 and query[word - 1].isalpha():
        word -= 1
    name = query[word:start]
    command = word > 0 and query[word - 1] == "\\"
    return not (command or len(name) == 1 or name.lower() in _FUNCTIONS)


def echoed_expression(answer: str, query: str, golds: Iterable[str]) -> str | None:
    """The expression ``answer`` copies from ``query``, or ``None`` when it is no echo (see the
    module docstring for the three conditions)."""
    stated = _RELATION.split(answer)[-1]
    if _DECIMAL.fullmatch(stated.strip().lstrip("+-")):
        return None  # the common case, a number: no shaping needed
    value = _shape(stated).rstrip(_TRAILING).strip()
    unsigned = value.lstrip("+-")
    if not unsigned or _one_number(unsigned) or _OPERATION.search(unsigned) is None:
        return None
    terms = _terms(value)
    for gold in golds:
        written = _shape(_RELATION.split(gold)[-1]).rstrip(_TRAILING).strip()
        if written == value or _terms(written) == terms:
            return None
    # not inside a longer number or name: 3/4 is not in 33/44 nor in 3/4.5
    before = r"(?<!\w)(?<!\d\.)" if value[0].isalnum() else ""
    after = r"(?!\w|\.\d)" if value[-1].isalnum() else ""
    shaped = _shape(query)
    for found in re.finditer(before + re.escape(value) + after, shaped):
        if _put_whole(shaped, found.start(), found.end()):
            return value
    return None


def query_text(value: Any) -> str | None:
    """The question as text for :func:`echoed_expression` (text, or chat messages as TRL's
    conversational prompts are), ``None`` when the record has none.

    Raises:
        Unscored: the query is neither (``invalid_input`` naming the field), as for every
            grader's text fields: a check that cannot read its input says so.
    """
    return None if value is None else _prompt_text(value, "query")


def echo_of_query(answer: str, query: str | None, golds: Iterable[str]) -> str | None:
    """The reason an equivalent ``answer`` scores 0.0 as the question (read by
    :func:`query_text`) written back, or ``None``."""
    copied = None if query is None else echoed_expression(answer, query, golds)
    if copied is None:
        return None
    return (
        f"the answer {answer!r} is the question's own expression ({copied}) written back: it "
        "equals the gold only once worked out, and the work is what is graded"
    )
