"""``NumberGrader``: is the response's final number the reference's, exactly or nearly?

The rule-based accuracy reward of the GSM8K-style GRPO recipes (Unsloth's / the DeepSeek-R1
notebooks' ``check_numbers``), with the extraction written down instead of implied by a regex:
which numbers were found on each side, which one was taken as the answer and why, and which
response numbers equal the reference all go into ``metadata``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from graders._answer_number import read_number_answer
from graders._base import BaseGrader, Unscored, grader
from graders._pregate_text import per_text
from graders._text import (
    METADATA_LIST_LIMIT,
    Number,
    as_gold_list,
    as_text,
    grade_any_gold,
    jsonable_number,
    same_value,
)
from rm_service._exceptions import ConfigError
from rm_service._result import GraderScore

__all__ = ["NumberComparison", "NumberGrader", "compare_numbers"]

_FLOAT_CLOSE = 1e-9
"""Floats this close (relative) may be one number: :meth:`Number.exact` then decides."""


@dataclass(frozen=True, slots=True)
class NumberComparison:
    """How close a predicted number is to a gold one.

    Attributes:
        exact: the same value as written (``3/4`` and ``0.75``; not ``2147483648`` and
            ``2147483647``, which a float tolerance would call equal).
        within_tolerance: ``|pred − gold| ≤ max(rel_tol·|gold|, abs_tol)``.
        relative_error: ``|pred − gold| / |gold|`` (``inf`` when gold is 0 and pred is not).
    """

    exact: bool
    within_tolerance: bool
    relative_error: float


def compare_numbers(
    pred: Number, gold: Number, *, rel_tol: float, abs_tol: float = 0.0
) -> NumberComparison:
    """Compare two numbers, trying each reading of a percentage (see ``Number.candidates``).

    The tolerance is relative to the *gold* value, not symmetric like ``math.isclose``: "within
    10%" should mean 10% of the right answer, whatever the model said. The boundary is inclusive.
    Both sides written as percentages are compared as written (``25%`` is not ``2500%``); the
    two readings are for a percentage against a bare number. Equality is exact (see
    :meth:`Number.exact`), decided in floats unless they are too close to tell.
    """
    best_err = math.inf
    exact = within = False
    for p, p_div in _readings(pred, gold):
        for g, g_div in _readings(gold, pred):
            diff = abs(p - g)
            tol = max(rel_tol * abs(g), abs_tol)
            # The tiny slack keeps a response exactly on the boundary (1.1 vs 1.0 at 10%)
            # inside despite binary rounding of the bound itself.
            near = diff <= tol * (1 + 1e-9)
            if math.isclose(p, g, rel_tol=_FLOAT_CLOSE, abs_tol=0.0):  # too close for floats
                if _float_exact(pred) and _float_exact(gold):
                    same = p == g  # each float is its number exactly (as is each reading)
                else:
                    (pn, pd), (gn, gd) = pred.exact(), gold.exact()
                    same = same_value((pn, pd * p_div), (gn, gd * g_div))
                exact = exact or same
                near = same or (near and tol > 0)  # 1e-400 is not 0 at no tolerance
            within = within or near
            err = diff / abs(g) if g else (0.0 if diff == 0 else math.inf)
            best_err = min(best_err, err)
    return NumberComparison(exact=exact, within_tolerance=exact or within, relative_error=best_err)


_SMALL_INTEGER = re.compile(r"[-+]?[0-9]{1,15}")
"""An integer written plainly with at most 15 digits: below 2**53, so its float is exact."""


def _float_exact(n: Number) -> bool:
    """Whether ``n.value`` is the number as written, exactly, so equal floats are equal values
    and :meth:`Number.exact` (a :class:`~decimal.Decimal` parse per side) need not be asked.
    Why: an integer answer checked against an integer gold is the common case, and most
    answers equal their gold."""
    return (
        not n.percent
        and _SMALL_INTEGER.fullmatch(n.text) is not None
        and n.value == int(n.text)  # a value not read from its text is asked the long way
    )


_SAME = 0.01
"""Two values of one list within this relative distance are one answer written twice
("1/3 (0.333)"), not a hedge."""


def distinct_numbers(numbers: Sequence[Number], *, rel_tol: float) -> list[Number]:
    """``numbers`` with each value kept once, as written first: two numbers are one value when
    they compare exact (``3/4`` and ``75%``, ``25%`` and ``0.25``) or within ``rel_tol``
    (``1/3`` and ``0.333``). Why: a reply restating its answer in another form ("3/4 (75%)")
    lists one answer, not a hedge."""
    kept: list[Number] = []
    for n in numbers:
        if not any(compare_numbers(n, k, rel_tol=rel_tol).within_tolerance for k in kept):
            kept.append(n)
    return kept


def _readings(n: Number, other: Number) -> tuple[tuple[float, int], ...]:
    """``(value, divisor)`` for each value ``n`` may stand for against ``other``: a percentage
    against a bare number is also its hundredth (see ``Number.candidates``); against another
    percentage it is read as written."""
    if n.percent and not other.percent:
        return ((n.value, 1), (n.value / 100.0, 100))
    return ((n.value, 1),)


def _last_matches(numbers: Sequence[Number], gold: Number) -> list[Number]:
    """The last :data:`METADATA_LIST_LIMIT` of ``numbers`` that equal ``gold``, in order: the
    scan stops there, so a response of millions of numbers is not compared number by number."""
    found: list[Number] = []
    for n in reversed(numbers):
        if compare_numbers(n, gold, rel_tol=0.0).exact:
            found.append(n)
            if len(found) == METADATA_LIST_LIMIT:
                break
    return found[::-1]


def _texts(numbers: Sequence[Number]) -> list[str]:
    return [n.text for n in numbers[-METADATA_LIST_LIMIT:]]


_read_gold = per_text(read_number_answer)
"""A reference's reading, remembered per text: GRPO grades a group of completions against each
gold (a :class:`~graders._answer_number.NumberAnswer` is immutable)."""


def grade_number(
    response: str,
    reference: str,
    *,
    rel_tol: float,
    abs_tol: float,
    partial_credit: float,
) -> tuple[float, str, dict[str, Any]]:
    """The pure logic of :class:`NumberGrader`: ``(score, reason, metadata)``.

    Raises:
        Unscored: the reference has no number to compare against (``invalid_input``).
    """
    ref = _read_gold(reference)
    if ref.expression is not None:
        raise Unscored(
            f"the reference's answer is an expression, not a number: {_short(ref.expression)} "
            "(grade math answers with the math grader)",
            kind="invalid_input",
        )
    gold, gold_all = ref.answer, ref.numbers
    if len(several := distinct_numbers(ref.listed, rel_tol=_SAME)) > 1:
        raise Unscored(
            f"the reference holds several answers ({_listed(several)}); the number rule compares "
            "one (pass the acceptable answers as a list of golds, or grade with the math grader)",
            kind="invalid_input",
        )
    if gold is None:
        raise Unscored(
            f"no number in the reference (looked in: {ref.source})",
            kind="invalid_input",
            reference_numbers=_texts(gold_all),
        )
    res = read_number_answer(response)
    if len(several := distinct_numbers(res.listed, rel_tol=_SAME)) > 1:
        return (
            0.0,
            f"hedged: several different answers ({_listed(several)})",
            {"reference_answer": gold.text, "response_numbers": _texts(several)},
        )
    if res.expression is not None:
        # Its number alone is not its value (\sqrt{16} is 4): neither equal nor different by
        # this rule, so no score rather than a made-up one.
        raise Unscored(
            f"the response's answer is an expression, not a number: {_short(res.expression)}; "
            "the number rule cannot value it (grade math answers with the math grader)",
            kind="unparseable",
        )
    pred, pred_source, pred_all = res.answer, res.source, res.numbers
    metadata: dict[str, Any] = {
        "reference_answer": gold.text,
        "reference_value": jsonable_number(gold.value),
        "reference_source": ref.source,
        "reference_numbers": _texts(gold_all),
        "response_source": pred_source,
        "response_numbers": _texts(pred_all),
        "response_number_count": len(pred_all),
        "matched_numbers": _texts(_last_matches(pred_all, gold)),
    }
    if pred is None:
        where = "response" if pred_source == "last_number" else f"response's {pred_source} answer"
        return 0.0, f"no number in the {where}", metadata
    cmp = compare_numbers(pred, gold, rel_tol=rel_tol, abs_tol=abs_tol)
    metadata["response_answer"] = pred.text
    metadata["response_value"] = jsonable_number(pred.value)
    metadata["relative_error"] = cmp.relative_error if math.isfinite(cmp.relative_error) else None
    if cmp.exact:
        return 1.0, f"{pred.text} equals the reference {gold.text}", metadata
    if cmp.within_tolerance:
        return (
            partial_credit,
            f"{pred.text} is within tolerance of the reference {gold.text} "
            f"(relative error {cmp.relative_error:.3g})",
            metadata,
        )
    return 0.0, f"{pred.text} does not match the reference {gold.text}", metadata


def _listed(numbers: list[Number], limit: int = 10) -> str:
    shown = ", ".join(repr(n.text) for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _check_fraction(value: Any, what: str, *, upper: float | None = None) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (upper is not None and value > upper)
    ):
        bound = f"in [0, {upper:g}]" if upper is not None else "≥ 0"
        raise ConfigError(f"{what} must be a finite number {bound}, got {value!r}")
    return float(value)


@grader
class NumberGrader(BaseGrader):
    """1.0 if the response's answer number equals the reference's, partial credit if close, else 0.

    Which number is compared, on *both* sides (so a GSM8K reference ``"… #### 72"`` and a MATH
    reference ``"… \\boxed{72}"`` work as they are): the last ``\\boxed{}``'s last number, else the
    last ``<answer>`` block's last number, else the first number after the last "answer is" /
    "answer:" / ``####``, else the last number. A marked answer with no number in it is *no*
    number (see :func:`graders._answer_number.select_answer_number` for why and what counts as
    a number).

    Scoring:

    * 1.0: equal (up to float noise of 1e-9 relative; ``3/4`` = ``0.75`` = ``75%``),
    * ``partial_credit`` (0.5): ``|pred − gold| ≤ max(rel_tol·|gold|, abs_tol)``, inclusive,
    * 0.0: otherwise, or the response has no number (a wrong answer, not a failure).

    A percentage equals both its value and its value / 100 (``25%`` matches ``25`` and ``0.25``).
    A reference without a number cannot be graded and is unscored (``invalid_input``). A list of
    references (verl's ``ground_truth`` often is one) scores the best of them, passing over those
    without a number (see :func:`graders._text.grade_any_gold`).

    Metadata (``check_numbers``-style): ``response_numbers`` / ``reference_numbers`` (every number
    found, as written; the last 100), ``response_answer`` / ``reference_answer`` and their values,
    ``*_source`` (which rule picked them), ``matched_numbers`` (response numbers exactly equal to
    the reference answer: shows "right number, wrong place") and ``relative_error``.

    Args:
        rel_tol: relative tolerance for partial credit (0 turns partial credit off).
        abs_tol: absolute tolerance for partial credit; useful when the reference can be 0, where
            no relative tolerance ever applies.
        partial_credit: the score for a near miss, in [0, 1].
        name: the result name.
    """

    required_fields = ("response", "reference_response")
    default_name = "number"
    inline = True  # pure CPU, never awaits
    thread_safe = True  # a pure function of its input

    def __init__(
        self,
        *,
        rel_tol: float = 0.1,
        abs_tol: float = 0.0,
        partial_credit: float = 0.5,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.rel_tol = _check_fraction(rel_tol, "rel_tol")
        self.abs_tol = _check_fraction(abs_tol, "abs_tol")
        self.partial_credit = _check_fraction(partial_credit, "partial_credit", upper=1.0)

    def __repr__(self) -> str:
        return f"NumberGrader(name={self.name!r}, rel_tol={self.rel_tol:g})"

    async def _aevaluate(self, response: Any, reference_response: Any) -> GraderScore:
        grade = functools.partial(
            grade_number,
            as_text(response, "response"),
            rel_tol=self.rel_tol,
            abs_tol=self.abs_tol,
            partial_credit=self.partial_credit,
        )
        golds = as_gold_list(reference_response, "reference_response")
        if golds is None:
            score, reason, metadata = grade(as_text(reference_response, "reference_response"))
        else:  # several acceptable answers: the best of them
            score, reason, metadata = grade_any_gold(golds, "reference_response", grade)
        return GraderScore(name=self.name, score=score, reason=reason, metadata=metadata)
