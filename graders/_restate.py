"""The pre-gate for a response that merely restates the question.

One idea: :class:`RestateGate` scores low a response whose words are the query's (or
reference's) own, in order, with only framing and filler around them; judges often call such a
response "relevant". A query that asks to repeat or transform its text is exempt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from graders._anchor_screen import Alternatives
from graders._master_key import META_WORDS, STOP_WORDS, MasterKeyGate, _word_set
from graders._pregate_text import asked_verbatim, normalize_for_gate, per_text, tokens_for_gate

__all__ = ["RestateGate"]


_COPY_TASK_RE = Alternatives.of(
    re.compile(
        r"\b(?:repeat|copy|echo|verbatim|word for word|restate|rephrase|paraphrase|reword"
        r"|capitali[sz]e|uppercase|lowercase|upper case|lower case|title case|spell|proofread"
        r"|transliterate|reformat)\b"
        r"|\b(?:format|extract|fix|correct|normali[sz]e|quote|clean up|tidy up|edit)\s+(?:(?:this"
        r"|these|the following|it|them|that|each|all|my)\b|(?:the|any)\s+(?:text|sentences?"
        r"|paragraphs?|grammar|spelling|typos?|punctuation|capitali[sz]ation|casing|list|names?"
        r"|dates?|numbers?|emails?|words?|code|json|data|table|titles?|address(?:es)?"
        r"|phone numbers?|errors?|mistakes?|lines?|passage|quote|bugs?|issues?|indentation|syntax"
        r"|functions?|programs?|scripts?|loop|query|regex|typos?|class|method)\b)"
        # a query that opens with a transformation verb and gives the text after a colon ("Fix the
        # off-by-one error in:"); "Which of these is correct: ..." is a question, not a task
        r"|^\s*(?:please\s+)?(?:fix|format|extract|edit|clean up|tidy up|normali[sz]e|sort"
        r"|rewrite)\b[^:\n]{0,60}:"
        r"|^\s*(?:please\s+)?convert\b[^:\n]{0,30}\b(?:json|yaml|csv|xml|html|markdown|format|list"
        r"|table|uppercase|lowercase)\b[^:\n]{0,30}:"
        r"|重复|复述|改写|转述",
        re.IGNORECASE,
    )
)
"""Queries whose answer is legitimately (almost) a copy of their own text: the copying verbs
anywhere, and verbs with other senses ("fix the leak", "the format of an address") only with a
text as their object ("fix the grammar", "format these dates", "extract the names")."""


@per_text
def asks_for_copy(text: str) -> bool:
    """Whether ``text`` (a query) asks for (almost) a copy of itself (:data:`_COPY_TASK_RE`)."""
    return _COPY_TASK_RE.search(text) is not None


_RESTATE_FRAMING: tuple[str, ...] = (
    "question",
    "the question",
    "the question is",
    "your question",
    "your question is",
    "you asked",
    "you are asking",
    "you're asking",
    "the user asked",
    "the user asks",
    "to restate the question",
    "restating the question",
    "query",
    "problem",
    "the problem",
    "the problem is",
    "task",
    "问题",
    "题目",
)


_RESTATE_MAX_RATIO = 8
_RESTATE_MAX_EXTRA = 500
_FRAMING_WORDS = _word_set(
    """
    restating restate restated rephrasing rephrase asked asking ask asks question query problem
    user wants want know repeat repeating your you
    """
)


class RestateGate:
    """The response restates the query (or the instruction) instead of answering it.

    After dropping a leading "Question:" / "You asked:" framing, a response of at least
    ``min_tokens`` tokens is gated when, against one of the ``against`` fields, any of these holds:

    * its token set is nearly that field's (Jaccard >= ``threshold``) and in the field's order;
    * it is a contiguous copy of a large part of the field (at least ``min_coverage`` of the
      field's tokens);
    * it repeats the field in order (the shared words cover at least ``echo_coverage`` of the
      field, in its order) and everything it adds is framing, function or meta words ("So you
      want to know what the capital of France is. Let me think about this question.").

    Short answers quoted from the query ("Which is larger, 3 or 5?" → "5"; a multiple-choice
    option) are safe by the length conditions; a reordering (sorting words, "Is the sky blue?" →
    "The sky is blue.") or an added content word ("... It is Paris.") is not a restatement. A
    field that asks for a copy or a transformation of its own text (repeat, paraphrase, quote,
    capitalize, extract...), or quotes the response verbatim (``Say "I love Python"``), is
    skipped, since restating is then the task. A response more than 8 times (+ 500 characters)
    longer than the field is not checked at all, which bounds the work on long responses.

    Args:
        threshold: the Jaccard similarity at or above which the response is a restatement.
        min_coverage: the share of the field a contiguous copy must cover.
        echo_coverage: the share of the field an in-order echo with only filler added must cover.
        min_tokens: responses shorter than this are never gated here.
        against: the fields holding the question; absent ones are skipped.
        name: the gate name reported in metadata.
    """

    def __init__(
        self,
        *,
        threshold: float = 0.9,
        min_coverage: float = 0.6,
        echo_coverage: float = 0.8,
        min_tokens: int = 3,
        against: Sequence[str] = ("query", "instruction"),
        name: str = "restates_query",
    ) -> None:
        self.threshold = threshold
        self.min_coverage = min_coverage
        self.echo_coverage = echo_coverage
        self.min_tokens = min_tokens
        self.against = tuple(against)
        self.name = name
        self._framing = MasterKeyGate(
            phrases=_RESTATE_FRAMING, dangling_colon=False, vocabulary=False
        )

    def __repr__(self) -> str:
        return f"RestateGate(name={self.name!r}, threshold={self.threshold})"

    def check(self, response: str, fields: Mapping[str, str]) -> str | None:
        for field in self.against:
            text = fields.get(field)
            if not text or asks_for_copy(text):
                continue
            if len(response) > _RESTATE_MAX_RATIO * len(text) + _RESTATE_MAX_EXTRA:
                continue  # far longer than the question: not a restatement (and cheap to skip)
            reason = self._against(response, field, text)
            if reason is not None:
                return None if asked_verbatim(response, fields) else reason
        return None

    def _against(self, response: str, field: str, text: str) -> str | None:
        r = tokens_for_gate(self._framing._strip_openers(normalize_for_gate(response))[0])
        q = tokens_for_gate(text)
        if len(r) < self.min_tokens or not q:
            return None
        rs, qs = set(r), set(q)
        # Restating keeps the query's word order; an answer to a yes/no question often reuses its
        # words in a different order ("Is the sky blue?" → "The sky is blue."), so every rule
        # below wants the shared words in the query's order.
        in_order = _ordered_prefix(q, [t for t in r if t in qs]) >= self.echo_coverage * len(q)
        jaccard = len(rs & qs) / len(rs | qs)
        if jaccard >= self.threshold and in_order:
            return f"the response restates the {field} (token Jaccard {jaccard:.2f})"
        if len(r) >= self.min_coverage * len(q) and _contains(q, r):
            return f"the response is a copy of the {field}'s text"
        if in_order and all(_is_filler(t) for t in r if t not in qs):
            return f"the response repeats the {field} and adds nothing"
        return None


def _is_filler(token: str) -> bool:
    return token in _FRAMING_WORDS or token in META_WORDS or token in STOP_WORDS


def _ordered_prefix(haystack: Sequence[str], needle: Sequence[str]) -> int:
    """How many leading tokens of ``needle`` occur in ``haystack`` in the same order (greedy).

    Linear time, and it stops at the first token out of order, so a reordering scores low.
    """
    i = matched = 0
    for tok in needle:
        while i < len(haystack) and haystack[i] != tok:
            i += 1
        if i == len(haystack):
            break
        matched += 1
        i += 1
    return matched


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))
