"""The ``near_copy`` gate: the query echoed back as the answer.

One idea: a response that repeats the query's content words and adds none of its own answers
nothing, however relevant it looks to an embedding or a judge. The family overview is in
:mod:`graders._degenerate`; the non-answer gate beside it is :mod:`graders._non_answer`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from graders._degenerate_words import _ASKING_FIELDS, _TRANSFORM_RE, _content_stems
from graders._pregate_text import asked_verbatim, per_text, tokens_for_gate
from graders._restate import asks_for_copy

__all__ = ["NearCopyGate"]


# --- near copies of the query --------------------------------------------------------------------

_YES_NO_RE = re.compile(
    r"(?:^|[.?!:;¿]\s*)(?:is|are|was|were|do|does|did|can|could|will|would|should|shall|has|have"
    r"|had|may|might|must|isn't|aren't|wasn't|don't|doesn't|didn't|can't|won't|wouldn't"
    r"|shouldn't|es|son|está|están|puede|hay|est-ce|ist|sind|kann|gibt es)\b(?!\s+you\b)",
    re.IGNORECASE,
)
"""A clause that opens like a yes/no question: its declarative restatement *is* the answer
("Is the sky blue?" → "The sky is blue."), so only a verbatim echo is gated for it (by
:class:`~graders._pregate.RestateGate`). "Can you explain...?" is a request, not a yes/no
question."""


@per_text
def _no_near_copy_check(text: str) -> bool:
    """A query whose near-copy is an answer: it asks for a copy or a transformation of its own
    text, or it is a yes/no question (see :class:`NearCopyGate`)."""
    return asks_for_copy(text) or bool(_TRANSFORM_RE.search(text) or _YES_NO_RE.search(text))


_NEAR_COPY_MAX_RATIO = 8
_NEAR_COPY_MAX_EXTRA = 500


_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
"""A content word that is a number (the gate's tokens have no signs or spaces)."""


class NearCopyGate:
    """The response is the query's words again, reworded or reordered, with nothing new.

    :class:`~graders._pregate.RestateGate` catches verbatim and in-order echoes; this catches the
    rest: a response whose *content* words (everything but function, filler and meta words such
    as "explain", "question", "briefly") cover at least ``min_coverage`` of the query's content
    words while adding at most ``max_new`` content words of its own. "Briefly, photosynthesis:
    explain." for "Explain photosynthesis briefly." is gated; "The capital of France is Paris."
    for "What is the capital of France?" passes (it adds "Paris"), and so does any answer that
    picks one option of a choice ("5" for "Which is larger, 3 or 5?": it covers a third).

    Not checked: yes/no questions (their declarative restatement is the answer: "Is 7 a prime
    number?" → "7 is a prime number."), queries that ask for a copy or a transformation of their
    own text (repeat, paraphrase, sort, reverse...), responses the query quotes verbatim,
    responses whose content words are all numbers (a numeric answer may repeat a number of its
    question: "It is 0." for "What is 0+0?"), and responses more than 8 times (+ 500
    characters) longer than the query.

    Args:
        min_coverage: share of the query's distinct content words the response must repeat.
        max_new: the most distinct new content words a near-copy may add.
        against: the fields holding the question; absent ones are skipped.
        name: the gate name reported in metadata.
    """

    def __init__(
        self,
        *,
        min_coverage: float = 0.8,
        max_new: int = 0,
        against: Sequence[str] = _ASKING_FIELDS,
        name: str = "near_copy",
    ) -> None:
        self.min_coverage = float(min_coverage)
        self.max_new = int(max_new)
        self.against = tuple(against)
        self.name = name

    def __repr__(self) -> str:
        return f"NearCopyGate(name={self.name!r}, min_coverage={self.min_coverage})"

    def check(self, response: str, fields: Mapping[str, str]) -> str | None:
        r: set[str] | None = None
        for field in self.against:
            text = fields.get(field)
            if not text or _no_near_copy_check(text):
                continue
            if len(response) > _NEAR_COPY_MAX_RATIO * len(text) + _NEAR_COPY_MAX_EXTRA:
                continue
            if r is None:
                r = _content_stems(tokens_for_gate(response))
            if not r:
                return None  # nothing but function words: the master-key gate's business
            if all(_NUMBER_RE.fullmatch(w) for w in r):
                return None  # a numeric answer may be a number of its question: "0" for "0+0?"
            q = _content_stems(tokens_for_gate(text))
            if not q:
                continue
            coverage = len(r & q) / len(q)
            new = r - q
            if coverage >= self.min_coverage and len(new) <= self.max_new:
                if asked_verbatim(response, fields):
                    return None
                return (
                    f"the response is a near-copy of the {field}: it repeats {coverage:.0%} of "
                    f"its content words and adds {len(new)} new"
                )
        return None
