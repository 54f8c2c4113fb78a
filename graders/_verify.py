"""Verifiable first: decide a correctness grade by rule wherever the reference can be checked.

Why: an LLM judge can be talked into full marks (arXiv:2507.08794, 2403.17710), and a GRPO policy
optimised against one will find how. Where the reference answer is *checkable*, no judge needs
to be asked: the response's final answer is read by rule and compared. A verifiably wrong final
answer then scores 0 whatever a judge would have said, and a response that offers several
different final answers (hedging) scores 0 too, because it has not committed to one.

What is checkable (:func:`read_reference`, on the reference's marked answer: the last
``\\boxed{}``, the text after ``####`` or "answer is", an ``<answer>`` block, else the whole
reference):

* ``choice``: a choice letter A-E (``B``, ``(B)``, ``B) Paris``, ``Option C``).
* ``number``: one number, with at most two unit words or a currency sign (``72``, ``$5.40``,
  ``100 °C``, ``25%``), or a number in words (``Seven``).
* ``math``: a short expression with no prose (``\\frac{\\pi}{2}``, ``x = 3``, ``(1, 2]``,
  ``2x``), decided by math-verify through :class:`~graders._math.MathGrader`'s process pool
  (deadlines, hung workers killed), never in this process.
* ``exact``: a short string, at most :data:`SHORT_WORDS` words (``Paris``, ``Jane Austen``,
  ``Yes``).
* ``prose``: anything else; only a judge can compare it.

What the rule decides, given the response's final part (after ``</think>``; an unfinished
``<think>`` has no final answer):

* number, choice, math: the final answer is the last ``\\boxed{}``, else the last ``<answer>``
  block, else what follows the last answer phrase (in English, Spanish, French, German, Italian,
  Portuguese, Russian, Chinese, Japanese), else the last number / the letter the text picks / the
  last expression. Equal → 1.0; different → 0.0; none stated → 0.0 ("no final answer": a
  checkable question asked for one, and "the same as the reference" is none). Numbers in words
  count ("eight", "ocho", "one hundred and twenty"); a final number inside math that is more
  than a number (``\\frac{-1}{2}``, ``3 × 10^8``, ``\\sqrt{16}``) goes to math-verify whole.
  What goes to the judge: a number within :data:`NEAR_REL_TOL` of the reference but not equal
  (rounding is a judgement; two different integers are never close), an unmarked response whose
  last number is not the reference while the reference's value stands alone earlier (a trailing
  footnote: "100 °C at sea level (1 atm)"), an unmarked response naming several options, and an
  unmarked math response that states the reference on its own before another last expression.
* exact: only *correct* is decidable. The normalised reference (accents folded) occurs in a
  marked answer, or in a short response (at most :data:`SHORT_RESPONSE_WORDS` words) that
  negates nothing else → 1.0. Anything else may be a paraphrase, a synonym or a translation, so
  the judge decides. Yes/no (true/false) references are the exception: the two answers are
  exhaustive, so the answer's first yes or no (unmarked: at the start of a line) decides both
  ways.
* Hedging, for every kind: several ``\\boxed{}`` / ``<answer>`` blocks with different values, or
  the final answer joined to a different candidate by "or", "either", "maybe", "/", a range
  ("4 to 5") or their equivalents in the languages above ("4 or 5", "A, B or C", "4? maybe 5",
  "Paris or Lyon"), or, in a marked answer, a list ("the answer is 3, 4, 5") → 0.0.

Everything here but :func:`decide` is pure and synchronous; :func:`decide` reads a final part
longer than :data:`OFFLOAD_CHARS` in a worker thread.

This module holds the math rule and the decision; the reference's classification is in
:mod:`graders._verify_reference`, the answer readers for the other kinds in
:mod:`graders._verify_answer`.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from graders._base import Unscored
from graders._text import NUMBER_PATTERN, answer_regions, delimited_math, numeric_text
from graders._verify_answer import (
    Decision,
    _decide_choice,
    _decide_exact,
    _decide_number,
    _hedge,
    _hedged_with,
    _no_answer,
    _source,
    final_part,
)
from graders._verify_reference import (
    _ANSWER_PHRASE,
    _SENTENCE_END,
    MAX_CANDIDATES,
    NEAR_REL_TOL,
    OFFLOAD_CHARS,
    SHORT_RESPONSE_WORDS,
    SHORT_WORDS,
    Reference,
    RefKind,
    Verify,
    _clean,
    _first_sentence,
    _strip_delimiters,
    read_reference,
)
from graders._verify_spans import _Span
from rm_service._result import GraderScore

if TYPE_CHECKING:
    from graders._math import MathGrader

__all__ = [
    "MAX_CANDIDATES",
    "NEAR_REL_TOL",
    "OFFLOAD_CHARS",
    "SHORT_RESPONSE_WORDS",
    "SHORT_WORDS",
    "Decision",
    "RefKind",
    "Reference",
    "Verify",
    "decide",
    "decide_ahead",
    "final_part",
    "read_reference",
]

# --- math ----------------------------------------------------------------------------------------

_MATH_ALT = re.compile(
    r"(?<!\\)\$[^$]+(?<!\\)\$|"
    + delimited_math("\\(", "\\)")
    + r"|(?:(?<![A-Za-z])[A-Za-z]\s*=\s*)?"
    + NUMBER_PATTERN
)
"""A candidate answer in math text: a ``$...$`` / ``\\(...\\)`` span, ``x = 3``, or a number."""
_SQUASH = re.compile(r"[\s$]|\\[,;:! ]|\\[()]")


def _squash(text: str) -> str:
    return _SQUASH.sub("", text)


def _last_sentence(text: str) -> str:
    parts = [p for p in _SENTENCE_END.split(text.strip()) if p.strip()]
    return parts[-1] if parts else ""


def _math_spans(text: str) -> list[_Span]:
    return [
        _Span(m.start(), m.end(), m.group(0), _squash(m.group(0))) for m in _MATH_ALT.finditer(text)
    ]


def _stated_alone(text: str, gold: str) -> bool:
    """Whether ``gold`` is written in ``text`` on its own, not inside a list or a hedge, as a
    reasoning step before a different last expression would be ("x = 5, since 3·5 − 5 = 10")."""
    key = _squash(_strip_delimiters(gold))
    if not key:
        return False
    spans = _math_spans(text)
    at = [i for i, sp in enumerate(spans) if _squash(_strip_delimiters(sp.text)) == key]
    if at:
        return any(not _hedged_with(text, spans, i, marked=True) for i in at)
    return key in _squash(text)


_UNICODE_MATH = (
    (re.compile(r"√\s*\(([^()]*)\)"), r"\\sqrt{\1}"),
    (re.compile(r"√\s*([A-Za-z]+|\d+(?:\.\d+)?)"), r"\\sqrt{\1}"),
    (re.compile(r"∛\s*([A-Za-z]+|\d+(?:\.\d+)?)"), r"\\sqrt[3]{\1}"),
    (re.compile("²"), "^2"),
    (re.compile("³"), "^3"),
    (re.compile("π"), r"\\pi "),
    (re.compile("[×·]"), r"\\cdot "),
    (re.compile("−"), "-"),
)
"""Unicode math that models write and math-verify does not read (``√2`` was "not equal" to
``\\sqrt{2}``), spelled as LaTeX."""


def _latexify(text: str) -> str:
    for regex, repl in _UNICODE_MATH:
        text = regex.sub(repl, text)
    return text


async def _decide_math(
    final: str, ref: Reference, math: MathGrader, given: list[str] | None = None
) -> Decision:
    """math-verify on each stated final answer (or on the ``given`` expressions), through the
    math worker pool."""
    path = "rule:math"
    regions, src = answer_regions(final, _ANSWER_PHRASE)
    source = _source(src)
    if given:
        candidates = given
    elif src == "answer_phrase":
        candidates = [_first_sentence(regions[-1])]
    elif src == "last_number":
        candidates = [final]
    else:
        candidates = list(dict.fromkeys(r.strip() for r in regions if r.strip()))
    if len(candidates) > MAX_CANDIDATES:
        return _hedge(path, candidates[-MAX_CANDIDATES:], source, f" ({len(candidates)} of them)")
    if not candidates:
        return _no_answer(path, source, f"an empty {source} answer")
    if len(candidates) == 1 and not ref.multi:
        # "x = 3 or x = 5": each alternative is checked; a mixed outcome is a hedge.
        scope = _clean(candidates[0] if src != "last_number" else _last_sentence(final))
        spans = _math_spans(scope)
        for i in range(len(spans)):
            alternatives = _hedged_with(scope, spans, i, marked=False)
            if alternatives:
                candidates = alternatives
                break
    results = await asyncio.gather(
        *(math.aevaluate(response=_latexify(c), reference_response=ref.answer) for c in candidates)
    )
    for r in results:
        if not isinstance(r, GraderScore):
            if r.kind == "invalid_input":
                return Decision(None, path, f"math-verify cannot read the reference: {r.error}")
            raise Unscored(f"math check: {r.error}", kind=r.kind, decided_by=path)
    scores = [r.score for r in results if isinstance(r, GraderScore)]
    preds = tuple(
        str(r.metadata.get("pred") or c) for r, c in zip(results, candidates, strict=True)
    )
    if len(set(scores)) > 1:
        return _hedge(path, preds, source)
    if scores[0] == 1.0:
        return Decision(1.0, path, f"{preds[-1]!r} is equivalent to the reference", preds, source)
    if len(candidates) > 1 and src == "boxed":
        # Several boxes may together be one answer ("\boxed{2}, \boxed{3}" for "2, 3").
        joined = await math.aevaluate(response=", ".join(candidates), reference_response=ref.answer)
        if isinstance(joined, GraderScore) and joined.score == 1.0:
            return Decision(
                1.0, path, "the boxed answers together equal the reference", preds, source
            )
        return _hedge(path, preds, source, " none of which is the reference")
    if src == "last_number" and ref.multi:
        return Decision(
            None, path,
            "the reference holds several values and the response marks no answer: math-verify "
            "reads only its last expression", preds, source,
        )  # fmt: skip
    if src in ("answer_phrase", "last_number") and _stated_alone(_clean(final), ref.answer):
        return Decision(
            None, path,
            "math-verify read another expression as the final answer, but the response also "
            "states the reference on its own", preds, source,
        )  # fmt: skip
    if not any(r.metadata.get("pred") for r in results if isinstance(r, GraderScore)):
        return _no_answer(path, source, "math-verify found no answer in the response")
    return Decision(0.0, path, f"{preds[-1]!r} is not equivalent to the reference", preds, source)


# --- the decision --------------------------------------------------------------------------------


async def decide(response: str, reference: str, math: MathGrader) -> tuple[Reference, Decision]:
    """Read the reference and, where it is checkable, decide the response by rule.

    Raises:
        Unscored: a math check timed out or failed (``timeout`` / ``internal``): a failure is never
            turned into a judge call or a score.
    """
    ruled = _ruled.pop((response, reference), None)
    if ruled is not None:
        return ruled
    ref, final, decision = _read(response, reference)
    if final is not None and len(final) > OFFLOAD_CHARS:  # keep the event loop free while a
        decision = await asyncio.to_thread(_decide_by_text, final, ref)  # long text is read
    if isinstance(decision, Decision):
        return ref, decision
    assert final is not None  # only a final part read by text hands over to math-verify
    return ref, await _decide_math(final, ref, math, decision)


def decide_ahead(response: str, reference: str) -> None:
    """Decide by the synchronous rules now, for :func:`decide` to find later.

    Why: a correctness grader's rule runs between judge calls, on cold CPU caches; run over a few
    upcoming records in a row (the grader's ``prepare_ahead``), its code and patterns stay hot.
    Only a decision the text rules reach is kept, and only until its call takes it: math-verify's
    checks, long texts and a rule that raises are left for the call, which then does as without
    this."""
    key = (response, reference)
    if key in _ruled:
        return
    try:
        ref, _, decision = _read(response, reference)
    except Exception:  # the call runs it again, and reports it
        return
    if isinstance(decision, Decision):  # a long text's is undecided here (read off the loop)
        if len(_ruled) >= _RULED_KEPT:
            _ruled.clear()
        _ruled[key] = (ref, decision)


_ruled: dict[tuple[str, str], tuple[Reference, Decision]] = {}
_RULED_KEPT = 4096
"""Decisions made ahead and not yet taken (calls cancelled before they ran leave theirs): past
this many, all are dropped, and their calls decide again."""


def _read(
    response: str, reference: str
) -> tuple[Reference, str | None, Decision | list[str] | None]:
    """The reference, the response's final part (``None`` when none is read) and the text
    rules' decision (undecided for a final part over :data:`OFFLOAD_CHARS`: read off the loop)."""
    ref = read_reference(numeric_text(reference))
    if ref.kind == "prose":
        return (
            ref,
            None,
            Decision(None, "judge", "the reference is prose: only a judge can compare it"),
        )
    final = final_part(response)
    if final is None:
        path = f"rule:{ref.kind}"
        why = "the reasoning never ended (<think> without </think>)"
        return ref, None, _no_answer(path, "text", why)
    final = numeric_text(final)  # full-width signs and digits, invisible characters
    if len(final) > OFFLOAD_CHARS:
        return ref, final, None
    return ref, final, _decide_by_text(final, ref)


def _decide_by_text(final: str, ref: Reference) -> Decision | list[str] | None:
    """The synchronous rules; ``None`` or expressions to check hand over to math-verify."""
    if ref.kind == "number":
        return _decide_number(final, ref)
    if ref.kind == "choice":
        return _decide_choice(final, ref)
    if ref.kind == "exact":
        return _decide_exact(final, ref.answer)
    return None
