"""Verifiable first, part two: reading the final answer for numbers, letters and short strings.

One idea: answer extraction. The final part of a response (after ``</think>``), the
:class:`Decision` a rule reaches, hedging (several different final answers) and the deciders for
number, choice-letter and short exact-string (yes/no included) references. Math and the
dispatch are in :mod:`graders._verify`; the candidate spans and the reading of a text's numbers
as them, in :mod:`graders._verify_spans`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from graders._answer_list import listed_items
from graders._answer_number import joined_to_variable
from graders._number import compare_numbers, distinct_numbers
from graders._string import normalize_answer
from graders._text import NUMBER_CORE, answer_regions
from graders._verify_reference import (
    _ANSWER_PHRASE,
    _ARITH_TAIL,
    _CJK,
    _DISJ,
    _DISJ_AND,
    _DISJ_WORDS,
    _FRACTION_WORD,
    _GAP,
    _GAP_AND,
    _LIST_GAP,
    _MAX_GAP,
    _NEG_BEFORE,
    _NEGATION_CJK,
    _NEGATIONS,
    _THINK_END,
    _THINK_START,
    NEAR_REL_TOL,
    SHORT_RESPONSE_WORDS,
    Reference,
    _clean,
    _first_sentence,
    _strip_delimiters,
)
from graders._verify_spans import _math_span_at, _needs_math, _number_spans, _Span, _value_key

__all__ = ["Decision", "final_part"]


# --- the response --------------------------------------------------------------------------------


def final_part(response: str) -> str | None:
    """The text after the last ``</think>``; ``None`` when a ``<think>`` never ended."""
    if _THINK_END in response:
        return response.rsplit(_THINK_END, 1)[1]
    if _THINK_START in response:
        return None
    return response


@dataclass(frozen=True, slots=True)
class Decision:
    """What the rule made of one response.

    Attributes:
        score: 1.0 or 0.0; ``None`` when the rule cannot decide (the judge may).
        path: ``rule:number``, ``rule:choice``, ``rule:math``, ``rule:exact``, or ``judge`` for a
            reference the rule cannot read.
        reason: why, in words.
        answers: the final answer(s) read from the response (several when hedged).
        source: where it was read: ``boxed``, ``answer_tag``, ``answer_phrase``, ``text``.
    """

    score: float | None
    path: str
    reason: str
    answers: tuple[str, ...] = ()
    source: str = ""


def _link(gap: str, *, with_and: bool) -> str | None:
    """How two neighbouring candidates are joined: ``disj``, ``list`` (a comma), or not at all."""
    if len(gap) > _MAX_GAP or "\n\n" in gap:
        return None
    gap_re, disj_re = (_GAP_AND, _DISJ_AND) if with_and else (_GAP, _DISJ)
    if not gap_re.fullmatch(gap):
        return None
    if disj_re.search(gap):
        return "disj"
    return "list" if _LIST_GAP.fullmatch(gap) else None


def _hedged_with(
    text: str, spans: Sequence[_Span], chosen: int, *, marked: bool, with_and: bool = False
) -> list[str]:
    """The distinct candidates joined to ``spans[chosen]`` as alternatives (empty if none).

    A chain of neighbours linked by "or"-like words (or, in a marked answer, by commas too) is
    one hedged answer when it holds two different values.
    """
    lo = hi = chosen
    links: list[str] = []
    while hi + 1 < len(spans):
        link = _link(text[spans[hi].end : spans[hi + 1].start], with_and=with_and)
        if link is None:
            break
        links.append(link)
        hi += 1
    while lo > 0:
        link = _link(text[spans[lo - 1].end : spans[lo].start], with_and=with_and)
        if link is None:
            break
        links.append(link)
        lo -= 1
    if not ("disj" in links or (marked and links)):
        return []
    seen: dict[object, str] = {}
    for s in spans[lo : hi + 1]:
        seen.setdefault(s.key, s.text)
    return list(seen.values()) if len(seen) > 1 else []


def _hedge(path: str, answers: Sequence[str], source: str, what: str = "") -> Decision:
    shown = ", ".join(repr(a) for a in answers)
    return Decision(
        0.0,
        path,
        f"hedged: several different final answers{what} ({shown})",
        tuple(answers),
        source,
    )


def _no_answer(path: str, source: str, what: str) -> Decision:
    return Decision(0.0, path, f"no final answer: {what}", (), source)


def _source(source: str) -> str:
    return "text" if source == "last_number" else source


# --- bare lists ----------------------------------------------------------------------------------

_LIST_SEP = re.compile(r" ?[,;|、，] ?| [/&] | (?:and|und|et|y|и) ", re.IGNORECASE)
"""Between two items of a line whose whitespace runs are single spaces (so the split is linear:
a pattern of ``\\s*`` on both sides was quadratic in a run of spaces)."""
_LIST_BULLET = re.compile(r"^(?:[-*•·+]|\d{1,2}[.)]) ")
_LIST_LABEL = re.compile(r"^[^\W\d_][^\W\d_ ]*(?: [^\W\d_]+){0,2}\s*:\s*")
_LIST_NOTE = re.compile(r" ?\([^()]{0,24}\)")
_LIST_ITEM_WORDS = 4
_PROSE_OPENERS = frozenset(
    re.split(
        r"\s+",
        """the a an its it this that these those which who whose where when because since as so
        but or not of in on at by for from with to i we you he she they is are was were obviously
        clearly certainly definitely indeed probably course yes no also""",
    )
)
"""First words that make an item prose ("Paris, the capital of France", "Blue, obviously",
"Yes, Paris"), not a candidate answer: a reply with one is read as a sentence."""


def _listed(text: str) -> list[str]:
    """The items of a reply that is only a list of short candidates ("Paris, Lyon, Nice.",
    "Candidates: Jane Austen, George Eliot", "- Mercury\n- Venus", "Mercury (60%), Venus (30%)"),
    each as :func:`_fold` reads it; empty when the reply is prose, or lists fewer than two
    different items.

    Why: a short reply that states the reference verbatim was the reference, whatever else it
    listed, so a list of every plausible answer scored 1.0 by rule against each of them, even
    under an honest judge."""
    body = _LIST_LABEL.sub("", text.strip(), count=1)
    items = []
    for line in body.splitlines():
        line = _LIST_BULLET.sub("", " ".join(line.split()))
        for raw in _LIST_SEP.split(line):
            words = _LIST_NOTE.sub("", raw).split()
            if words and words[0].casefold().strip(".,!?") in _PROSE_OPENERS:
                return []
            item = _fold(" ".join(words))
            if not item:
                continue
            if len(item.split()) > _LIST_ITEM_WORDS:
                return []
            items.append(item)
    return items if len(set(items)) > 1 else []


def _listed_spans(text: str, spans: Sequence[_Span], numbers: bool = False) -> list[_Span]:
    """The spans (numbers or letters) that are a bare list's items, when ``text`` is one
    (:func:`~graders._answer_list.listed_items`): "56\n\n54", "56 and 54", "A, B, C, D",
    "(A)(B)(C)(D)"; else ``[]``."""
    if len(spans) < 2:  # a list has two items or more
        return []
    bounds = [(s.start, s.end) for s in spans]
    return [spans[i] for i in listed_items(text, bounds, numbers=numbers)]


def _listed_letters(text: str, spans: Sequence[_Span]) -> list[str]:
    """Two or more different option letters listed bare, none chosen ("A, B, C, D")."""
    letters = list(dict.fromkeys(s.text for s in _listed_spans(text, spans)))
    return letters if len(letters) > 1 else []


def _listed_numbers(text: str, spans: Sequence[_Span]) -> list[str]:
    """Two or more different values listed bare ("56\n\n54"); one value written two ways
    ("3/4 (75%)", "1/3 (0.333)") is one answer (:func:`~graders._number.distinct_numbers`)."""
    listed = [s.number for s in _listed_spans(text, spans, True) if s.number is not None]
    values = distinct_numbers(listed, rel_tol=NEAR_REL_TOL)
    return [n.text for n in values] if len(values) > 1 else []


# --- numbers -------------------------------------------------------------------------------------


def _phrase_choice(region: str, spans: list[_Span]) -> int | None:
    """The stated number after an answer phrase: the first one not negated ("not 5 but 4"),
    carried through an arithmetic chain to its result ("10 - 6 = 4")."""
    prev = 0
    for i, s in enumerate(spans):
        if _NEG_BEFORE.search(region[prev : s.start]):
            prev = s.end
            continue
        starts = {t.start: k for k, t in enumerate(spans)}
        while (m := _ARITH_TAIL.match(region, spans[i].end)) and starts.get(m.end(), -1) > i:
            i = starts[m.end()]
        return i
    return None


_INTEGER = re.compile(r"[-+\u2212]?\d{1,3}(?:,\d{3})*|[-+\u2212]?\d+|[^\W\d_]+(?:[-\s]+[^\W\d_]+)*")
"""An integer as written (a number word too): two different ones are never "close" (1944, 1945)."""


_POWER_EXPR = re.compile(
    rf"{NUMBER_CORE}(?:\s*(?:[-+*/×÷·^]|\*\*|\\times|\\cdot|\\div)\s*\{{?{NUMBER_CORE}\}}?)+"
)


def _decide_number(final: str, ref: Reference) -> Decision | list[str] | None:
    """The number rule. ``None`` hands over to the math rule (a math-shaped marked answer), and
    a list of expressions hands those to it ("3 × 10^8": a power around the final number)."""
    assert ref.number is not None
    path = "rule:number"
    regions, src = answer_regions(final, _ANSWER_PHRASE)
    source = _source(src)
    marked = src != "last_number"
    if src in ("boxed", "answer_tag"):
        if any(_needs_math(r) for r in regions):
            return None
        picked: list[tuple[str, _Span | None, list[_Span]]] = []
        for r in regions:
            text = _clean(r)
            spans = _number_spans(text)
            picked.append((text, spans[-1] if spans else None, spans))
        values = {s.key: s.text for _, s, _ in picked if s is not None}
        if len(values) > 1:
            return _hedge(
                path, list(values.values()), source, f" in {len(regions)} {source} blocks"
            )
        text, chosen, spans = picked[-1]
        idx = len(spans) - 1
    elif src == "answer_phrase":
        text = _clean(regions[-1])
        spans = _number_spans(text)
        found = _phrase_choice(text, spans)
        chosen, idx = (spans[found], found) if found is not None else (None, -1)
    else:
        text = _clean(final)
        spans = _number_spans(text)
        chosen, idx = (spans[-1], len(spans) - 1) if spans else (None, -1)
    if chosen is None:
        if _FRACTION_WORD.search(text):
            return Decision(None, path, "the answer is a fraction in words", (), source)
        where = "the response" if not marked else f"the response's {source} answer"
        return _no_answer(path, source, f"no number in {where}")
    assert chosen.number is not None
    span = _math_span_at(text, chosen.start)
    if span is not None and _needs_math(span.group(0)):
        return [span.group(0)]  # "$x = \frac{-1}{2}$": the span is math-verify's to read
    if span is None and joined_to_variable(text, chosen.start, chosen.end):
        # "so the count is x + 4": a term. Not math-verify's either: it reads the 4 out of
        # prose and called it equal. The judge reads the answer.
        return Decision(
            None, path, f"the final number is a term of an expression ({chosen.text} beside a "
            "variable): the judge reads the answer", (), source,
        )  # fmt: skip
    if text[chosen.end : chosen.end + 1] == "^" or text[: chosen.start].rstrip().endswith(
        ("^", "^{")
    ):
        # "3 × 10^8", "2^10": a power is math-verify's to read, as one expression
        expr = next(
            (m.group(0) for m in _POWER_EXPR.finditer(text) if m.start() <= chosen.start < m.end()),
            chosen.text,
        )
        return [f"${expr}$"]
    alternatives = _hedged_with(text, spans, idx, marked=marked)
    if not alternatives:
        alternatives = _listed_numbers(text, spans)
    if alternatives:
        return _hedge(path, alternatives, source)
    cmp = compare_numbers(chosen.number, ref.number, rel_tol=NEAR_REL_TOL)
    answers = (chosen.text,)
    if cmp.exact:
        return Decision(
            1.0, path, f"{chosen.text} equals the reference {ref.number.text}", answers, source
        )
    if cmp.within_tolerance and not (
        _INTEGER.fullmatch(chosen.text) and _INTEGER.fullmatch(ref.number.text)
    ):
        return Decision(
            None, path, f"{chosen.text} is close to the reference {ref.number.text}, not equal",
            answers, source,
        )  # fmt: skip
    gold_values = set(_value_key(ref.number))
    if not marked and any(
        s.number is not None
        and gold_values.intersection(_value_key(s.number))
        and compare_numbers(s.number, ref.number, rel_tol=0.0).exact
        and not _hedged_with(text, spans, k, marked=True)  # not one of a list of guesses
        for k, s in enumerate(spans)
    ):
        return Decision(
            None, path,
            f"the last number {chosen.text} is not the reference, but the reference's value is "
            "stated earlier in an unmarked answer", answers, source,
        )  # fmt: skip
    return Decision(
        0.0, path, f"{chosen.text} is not the reference {ref.number.text}", answers, source
    )


# --- choice letters ------------------------------------------------------------------------------

_LETTER_LOOSE = re.compile(r"(?<![A-Za-z0-9'’])\(?([A-E])\)?(?![A-Za-z0-9'’])")
_LETTER_STRONG = re.compile(
    r"\(([A-E])\)|\[([A-E])\]|(?<![A-Za-z0-9'’(])([A-E])\)|\*\*\(?([A-E])\)?[.):]?\*\*"
    r"|\b(?:option|choice|opci[oó]n|choix|Option|opzione|opção|вариант)\s+\(?([A-E])\b"
    r"|^[ \t>*-]*([A-E])[.):](?=\s|$)|(?<![A-Za-z0-9'’])([A-E])[.!)]*\s*$",
    re.MULTILINE | re.IGNORECASE,
)


_SHORT_CHOICE_WORDS = 12
_AFTER_LETTER = frozenset(
    {
        "because", "since", "as", "is", "was", "which", "for", "so", "and", "or", "but", "with",
        "here",
    }
)  # fmt: skip
"""Words that may follow a bare option letter "A" without making it the article."""


def _letters(text: str, regex: re.Pattern[str]) -> list[_Span]:
    """Choice letters ``regex`` finds in ``text``; each span is the letter itself."""
    out = []
    for m in regex.finditer(text):
        i = next(g for g in range(1, (m.lastindex or 1) + 1) if m.group(g))
        letter = m.group(i)
        if not letter.isupper():
            continue  # the IGNORECASE is for the keywords; letters are capitals
        article = re.match(r"\s+([a-z]+)", text[m.end(i) :])
        if letter == "A" and m.group(0) == "A" and article and article[1] not in _AFTER_LETTER:
            continue  # "A good answer is ...": the article, not option A
        out.append(_Span(m.start(i), m.end(i), letter, letter))
    return out


def _decide_choice(final: str, ref: Reference) -> Decision:
    path = "rule:choice"
    regions, src = answer_regions(final, _ANSWER_PHRASE)
    source = _source(src)
    if src in ("boxed", "answer_tag"):
        per = [(_clean(r), _letters(_clean(r), _LETTER_LOOSE)) for r in regions]
        firsts = {spans[0].key: spans[0].text for _, spans in per if spans}
        if len(firsts) > 1:
            return _hedge(
                path, list(firsts.values()), source, f" in {len(regions)} {source} blocks"
            )
        text, spans = per[-1]
        chosen = spans[0] if spans else None
    elif src == "answer_phrase":
        text = _clean(_first_sentence(regions[-1]))
        spans = _letters(text, _LETTER_LOOSE)
        chosen = spans[0] if spans else None
    else:
        text = _clean(final)
        spans = _letters(text, _LETTER_LOOSE)
        # A reply of a few words ("B", "B and C", "A good choice is B.") is all answer; in
        # longer text only a formatted letter ("(B)", "B)", "**B**", "option B") is a choice.
        picked = spans
        if letters := _listed_letters(text, spans):  # "A, B, C, D": every option, none chosen
            return _hedge(path, letters, source)
        if len(text.split()) > _SHORT_CHOICE_WORDS:
            strong = {s.start for s in _letters(text, _LETTER_STRONG)}
            picked = [s for s in spans if s.start in strong]
        if len({s.key for s in picked}) > 1 and not _hedged_with(
            text, spans, spans.index(picked[-1]), marked=False, with_and=True
        ):
            return Decision(
                None, path, "the response names several options without marking one",
                tuple(dict.fromkeys(s.text for s in picked)), source,
            )  # fmt: skip
        chosen = picked[-1] if picked else None
    if chosen is None:
        if ref.option:  # "The capital is Paris." for "B) Paris"
            by_text = _decide_exact(final, ref.option, path)
            if by_text.score is not None or "negates" in by_text.reason:
                return by_text
        return _no_answer(path, source, "no option letter in the response")
    alternatives = _hedged_with(
        text, spans, spans.index(chosen), marked=src != "last_number", with_and=True
    )
    if alternatives:
        return _hedge(path, alternatives, source)
    if chosen.key == ref.letter:
        return Decision(1.0, path, f"chose {chosen.text}, the reference", (chosen.text,), source)
    return Decision(
        0.0, path, f"chose {chosen.text}, the reference is {ref.letter}", (chosen.text,), source
    )


# --- short exact strings -------------------------------------------------------------------------

_YES = frozenset({"yes", "true", "oui", "ja", "да"})
_NO = frozenset({"no", "false", "non", "nein", "нет"})
"""Words that answer a yes/no question. Only unambiguous ones: Spanish "si" is also "if" (and
accents are folded away), Chinese 是 is also "is", "correct" also appears in "the correct answer
is no"; an answer written with those is left to the judge."""


def _fold(text: str) -> str:
    """:func:`normalize_answer`, accents removed too (``París`` reads ``paris``)."""
    decomposed = unicodedata.normalize("NFKD", normalize_answer(text))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _polarity(word: str) -> bool | None:
    return True if word in _YES else False if word in _NO else None


def _decide_exact(final: str, gold: str, path: str = "rule:exact") -> Decision:
    """Whether the normalised ``gold`` is the response's answer: 1.0, 0.0 (hedged) or undecided.

    Undecided (``score=None``) covers "not stated verbatim", "stated next to a negation" and "a
    long response with no marked answer": each may still be right in other words. A yes/no
    (true/false) reference is different: its two answers are exhaustive, so the first yes or no
    the answer gives decides, both ways.
    """
    target = _fold(_strip_delimiters(_clean(gold)))
    regions, src = answer_regions(final, _ANSWER_PHRASE)
    source = _source(src)
    if src == "answer_phrase":
        scopes = [_first_sentence(regions[-1])]
    elif src in ("boxed", "answer_tag"):
        scopes = regions
    elif len(normalize_answer(final).split()) <= SHORT_RESPONSE_WORDS:
        scopes = [final]
    else:
        return Decision(None, path, "a long response with no marked answer", (), source)
    shown = tuple(_strip_delimiters(_clean(s)).strip() for s in scopes)
    texts = [_fold(_clean(s)) for s in scopes]
    polarity = _polarity(target)
    if polarity is not None:
        lead_only = src == "last_number"
        return _decide_yes_no(scopes, polarity, path, shown, source, lead_only=lead_only)
    found = [_occurs(t, target) for t in texts]
    if any(found) and not all(found):
        return _hedge(path, shown, source, f" in {len(scopes)} {source} blocks")
    if not any(found):
        return Decision(None, path, f"the response does not state {gold!r} verbatim", shown, source)
    if "hedged" in found:
        return _hedge(path, shown, source, f" around {gold!r}")
    if "negated" in found:
        return Decision(
            None, path, f"the answer stating {gold!r} also negates something", shown, source
        )
    listed = next((items for s in scopes if target in (items := _listed(_clean(s)))), None)
    if listed is not None:
        return Decision(
            None, path, f"the answer lists {gold!r} among other candidates "
            f"({', '.join(repr(i) for i in dict.fromkeys(listed))}): the judge reads it",
            shown, source,
        )  # fmt: skip
    return Decision(1.0, path, f"the response's answer states {gold!r}", shown, source)


def _decide_yes_no(
    scopes: Sequence[str],
    polarity: bool,
    path: str,
    shown: tuple[str, ...],
    source: str,
    *,
    lead_only: bool,
) -> Decision:
    """The first yes or no of each marked answer or, unmarked, the first one that starts a line
    ("Yes, ..."): a yes or no inside a sentence is reasoning ("it has no divisors, so yes")."""
    said = []
    for scope in scopes:
        text = _fold(_clean(scope))
        words = text.split()
        if lead_only:
            scan = [w for line in scope.splitlines() for w in _fold(_clean(line)).split()[:1]]
        else:
            scan = words
        first = next((p for w in scan if (p := _polarity(w)) is not None), None)
        if first is not None:
            said.append(first)
            if _DISJ.search(text) and any(_polarity(w) is (not first) for w in words):
                return _hedge(path, shown, source, " (yes and no)")
    if not said:
        return Decision(None, path, "the response says neither yes nor no", shown, source)
    if len(set(said)) > 1:
        return _hedge(path, shown, source, " (yes and no)")
    word = "yes" if said[0] else "no"
    if said[0] is polarity:
        return Decision(1.0, path, f"the response answers {word}, as the reference", shown, source)
    return Decision(
        0.0, path, f"the response answers {word}, the reference does not", shown, source
    )


def _occurs(text: str, target: str) -> str:
    """``""`` (absent), ``"yes"``, ``"hedged"`` (joined to an alternative) or ``"negated"``."""
    if not target:
        return ""
    if _CJK.search(target):
        if target not in text:
            return ""
        if _DISJ.search(text):
            return "hedged"
        return "negated" if _NEGATION_CJK.search(text.replace(target, " ")) else "yes"
    words, gold = text.split(), target.split()
    n = len(gold)
    hits = [i for i in range(len(words) - n + 1) if words[i : i + n] == gold]
    if not hits:
        return ""
    for i in hits:
        before, after = " ".join(words[max(0, i - 3) : i]), " ".join(words[i + n : i + n + 3])
        if re.search(rf"(?:^|\s)(?:{_DISJ_WORDS})\s+\S", after) or re.search(
            rf"\S\s+(?:{_DISJ_WORDS})$|^(?:either|entweder|soit|o bien)$", before
        ):
            return "hedged"
    inside = {k for i in hits for k in range(i, i + n)}
    outside = [w for k, w in enumerate(words) if k not in inside]
    return "negated" if _NEGATIONS.intersection(outside) else "yes"
