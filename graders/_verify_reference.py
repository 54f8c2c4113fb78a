"""Verifiable first, part one: what kind of answer the reference holds, and the shared vocabulary.

One idea: classifying the reference (:func:`read_reference`): a choice letter, a number, a math
expression, a short exact string, or prose that only a judge can compare; with the settings and
the multilingual vocabulary (answer phrases, number words, disjunctions, negations) that the
answer readers in :mod:`graders._verify_answer` and :mod:`graders._verify` share. The rules are
described in :mod:`graders._verify`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from graders._anchor_screen import KeywordRegex
from graders._answer_number import LATEX_THOUSANDS
from graders._string import normalize_answer
from graders._text import (
    NUMBER_CORE,
    NUMBER_PATTERN,
    Number,
    answer_regions,
    find_numbers,
    parse_number,
)

__all__ = [
    "MAX_CANDIDATES",
    "NEAR_REL_TOL",
    "OFFLOAD_CHARS",
    "SHORT_RESPONSE_WORDS",
    "SHORT_WORDS",
    "RefKind",
    "Reference",
    "Verify",
    "read_reference",
]


Verify = Literal["auto", "never", "only"]
"""``auto``: rule where it can decide, judge otherwise; ``never``: judge always; ``only``: rule
only (unscored where it cannot decide)."""
RefKind = Literal["choice", "number", "math", "exact", "prose"]

SHORT_WORDS = 4
"""Most words in a reference read as a short exact string; longer ones are prose."""
SHORT_RESPONSE_WORDS = 30
"""Most words in an *unmarked* response that the exact-string rule reads whole; a longer one has
room to mention the reference without meaning it, so the judge decides."""
NEAR_REL_TOL = 0.01
"""A final number this close to the reference (relative), but not equal, goes to the judge."""
OFFLOAD_CHARS = 20_000
"""A final part longer than this is read in a worker thread (tens of milliseconds of regex work
on 100 kB), so the event loop keeps serving other records meanwhile."""
MAX_CANDIDATES = 8
"""Most distinct boxed / tagged answers checked one by one; more is hedging outright."""

# --- shared vocabulary ---------------------------------------------------------------------------

_ANSWER_PHRASE = KeywordRegex(
    re.compile(
        r"\banswers?\s*(?:is\b|are\b|:|=)|####"
        r"|\b(?:correct|right|final)\s+(?:option|choice)\s*(?:is\b|:)"
        r"|\brespuesta\s*(?:correcta\s+|final\s+)?(?:es\b|:|=)"
        r"|\bréponse\s*(?:correcte\s+|finale\s+)?(?:est\b|:|=)"
        r"|\bantwort\s*(?:ist\b|lautet\b|:|=)"
        r"|\brisposta\s*(?:corretta\s+|finale\s+)?(?:è|:|=)"
        r"|\bresposta\s*(?:correta\s+|final\s+)?(?:é|:|=)"
        r"|\bответ\s*(?:[:=—]|будет\b|равен\b)"
        r"|答案\s*(?:是|为|為|:|：|=)|答え\s*(?:は|:|：)|正解\s*(?:は|:|：)",
        re.IGNORECASE,
    )
)
"""Where a response states its answer: NumberGrader's English phrases, plus other languages;
with the ASCII words its matches open with (:class:`~graders._anchor_screen.KeywordRegex`)."""

_THINK_END = "</think>"
_THINK_START = "<think>"

_NUMBER_RE = re.compile(NUMBER_PATTERN)
_EN_UNITS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_EN_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_NUMBER_WORDS: dict[str, int] = {
    # English (and "one", which is also a pronoun; "a"/"an" never count).
    "zero": 0, "none": 0, **{w: i + 1 for i, w in enumerate(_EN_UNITS)}, "ten": 10, "eleven": 11,
    "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
    **{w: 20 + 10 * i for i, w in enumerate(_EN_TENS)}, "hundred": 100, "thousand": 1000,
    # Spanish, French, German, Italian, Portuguese, Russian, 0/2-12 and 20. Words that are also
    # common words elsewhere are left out: the articles un/una/une/ein/um/uma ("une réponse" is
    # no number), and once (es 11), null, elf (de 11), due (it 2), sei (it 6).
    "cero": 0, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7, "ocho": 8,
    "nueve": 9, "diez": 10, "doce": 12, "veinte": 20,
    "zéro": 0, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "sept": 7, "huit": 8, "neuf": 9,
    "dix": 10, "onze": 11, "douze": 12, "vingt": 20,
    "zwei": 2, "drei": 3, "vier": 4, "fünf": 5, "sechs": 6, "sieben": 7, "acht": 8,
    "neun": 9, "zehn": 10, "zwölf": 12, "zwanzig": 20,
    "tre": 3, "quattro": 4, "sette": 7, "otto": 8, "nove": 9,
    "dieci": 10, "undici": 11, "dodici": 12, "venti": 20,
    "dois": 2, "duas": 2, "três": 3, "quatro": 4, "oito": 8, "dez": 10,
    "ноль": 0, "один": 1, "два": 2, "три": 3, "четыре": 4, "пять": 5, "шесть": 6, "семь": 7,
    "восемь": 8, "девять": 9, "десять": 10,
}  # fmt: skip
_WORD_RE = re.compile(r"[^\W\d_]+")
"""A word; a number word is one whose casefold is in :data:`_NUMBER_WORDS` (a dict lookup is
far cheaper than a regex alternation of every number word over a long response)."""
_WORD_JOIN = re.compile(r"[\s-]+(?:and[\s-]+)?")
_FRACTION_WORD = re.compile(
    r"\b(?:half|halves|thirds?|quarters?|fourths?|fifths?|sixths?|sevenths?|eighths?|ninths?"
    r"|tenths?|hundredths?|thousandths?|demi|moitié|mitad|medio|halbe?|половин\w*|трет\w*)\b",
    re.IGNORECASE,
)

_DISJ_WORDS = (
    r"or|either|maybe|perhaps|possibly|probably|alternatively|otherwise|to|vs|versus"
    r"|o|u|ou|oder|bis|oppure|ovvero|forse|vielleicht|peut-être|quizás?|tal\s+vez|talvez"
    r"|или|либо|возможно|может\s+быть|до"
)
_DISJ_SYMBOLS = (
    r"或者|或是|或|还是|還是|也许|也許|可能|または|もしくは|あるいは|か|～|~|–|/|\\lor|\\vee|∨"
)
_AND_WORDS = r"and|&|und|y|e|et|и|和|及|と"
"""Joins that make several choice letters one hedged answer ("B and C"); not for numbers, where
"12 and 3 boxes remain" is ordinary prose."""
_FILLER = (
    r"it'?s|it|is|be|could|might|may|also|even|the|answer|option|choice|then|else|was|would"
    r"|will|i|think|guess|say|es|est|ist|sea|c'est|è|é|это|是"
)


def _gap_re(extra: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    disj = rf"\b(?:{_DISJ_WORDS}{extra})\b|{_DISJ_SYMBOLS}"
    gap = rf"(?:[\s,;:()\[\]*$?!.…'\"、，]|\b(?:{_FILLER})\b|{disj})*"
    return re.compile(gap, re.IGNORECASE), re.compile(disj, re.IGNORECASE)


_GAP, _DISJ = _gap_re("")
_GAP_AND, _DISJ_AND = _gap_re("|" + _AND_WORDS)
_LIST_GAP = re.compile(r"\s*[,;、，]\s*")
_MAX_GAP = 40

_LATEX_NOISE = re.compile(
    r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}"
    r"|\\(?:quad|qquad|[,;:! ])"
)
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+(?=\S)|\n")

_NEGATIONS = frozenset(
    {
        "not", "no", "never", "nor", "neither", "isnt", "arent", "wasnt", "werent", "dont",
        "doesnt", "didnt", "cannot", "cant", "wont", "wrong", "incorrect", "false", "unlike",
        "instead", "rather", "except", "but", "however", "although", "nicht", "kein", "keine",
        "nein", "falsch", "pas", "non", "jamais", "faux", "nunca", "tampoco", "falso", "не",
        "нет", "ни", "неверно",
    }
)  # fmt: skip
_NEGATION_CJK = re.compile(r"不|没|沒|非|错|錯|違|ない")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_NEG_BEFORE = re.compile(
    r"\b(?:not|n't|never|no|nicht|kein\w*|pas|не|ни)\W*$|不是\s*$", re.IGNORECASE
)
_ARITH_TAIL = re.compile(
    rf"(?:\s*(?:[-+*/×÷·^]|\*\*|\\times|\\cdot|\\div)\s*\{{?{NUMBER_CORE}\}}?)*"
    r"\s*(?:=|\\approx|≈)\s*"
)

# --- the reference -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference answer as the rule reads it.

    Attributes:
        kind: how it can be checked (see the module docstring).
        answer: the marked answer the rule compares against (as written).
        number: its value (``number`` kind).
        letter: its choice letter (``choice`` kind).
        option: the option text after the letter (``"Paris"`` in ``"B) Paris"``), if any.
        multi: the answer holds several values (``"2, 3"``, ``"x = 1 or x = 2"``), so several
            values in a response are no hedge.
    """

    kind: RefKind
    answer: str
    number: Number | None = None
    letter: str | None = None
    option: str | None = None
    multi: bool = False


_CHOICE_REF = re.compile(
    r"(?:(?:the\s+)?(?:answer|option|choice)\s*(?:is\s*)?[:：]?\s*)?"
    r"(?:\((?P<p>[A-E])\)|(?P<l>[A-E]))"
    r"(?:\s*[):\]]\s*(?P<o1>\S.*)|\.\s+(?P<o2>(?-i:[\dA-Z]).*)|\s*[.)\]])?",
    re.IGNORECASE | re.DOTALL,
)
_UNIT_REST = re.compile(r"[\s$€£¥%°℃.]*(?:[^\W\d_][^\W\d_/.²³]*(?:/[^\W\d_]+)?[²³]?\s*){0,2}\.?\s*")
_MATH_SIGNAL = re.compile(
    r"\\[A-Za-z]+|[=^_+*/<>≤≥≠√π∞{}\[\]|]|(?<=[\w)}\s])-|\d\s*,\s*\d|\(.*,|\d[a-z](?![a-z])"
)
_MATH_WORDS = frozenset(
    {
        "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh",
        "tanh", "log", "exp", "sqrt", "frac", "dfrac", "tfrac", "pmatrix", "bmatrix", "matrix",
        "begin", "end", "left", "right", "cdot", "times", "div", "infty", "inf", "and", "min",
        "max", "gcd", "lcm", "mod", "deg", "det", "cup", "cap", "emptyset", "circ", "pi", "theta",
        "alpha", "beta", "gamma",
    }
)  # fmt: skip
_WORDISH = re.compile(r"[^\W\d_]{3,}")
_MULTI = re.compile(r"\d\s*[,;]\s*[-+]?\d|\bor\b|\\lor|\\cup|∪|\\pm|±", re.IGNORECASE)


def _clean(text: str) -> str:
    """LaTeX text blocks to their words and spacing commands to spaces, for reading answers;
    LaTeX thousands separators (``1{,}000``, ``1\\,000``) to plain ones first. Text with none
    of the characters either needs (a backslash, a brace, a tilde) is returned as it is,
    without a scan by each regex."""
    if "\\" not in text and "{" not in text and "~" not in text:
        return text
    text = LATEX_THOUSANDS.sub(r"\1,", text)
    return _LATEX_NOISE.sub(lambda m: f" {m.group(1) or ''} ", text)


def _strip_delimiters(text: str) -> str:
    t = text.strip()
    for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if t.startswith(open_) and t.endswith(close) and len(t) > len(open_) + len(close):
            return t[len(open_) : -len(close)].strip()
    return t


def _first_sentence(text: str) -> str:
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0]


def _gold_text(reference: str) -> str:
    """The reference's marked answer: boxed, ``<answer>``, after ``####`` or a short "answer is"."""
    regions, source = answer_regions(reference, _ANSWER_PHRASE)
    if source in ("boxed", "answer_tag"):
        return regions[-1].strip()
    if source == "answer_phrase":
        stated = _first_sentence(regions[-1])
        if stated and len(stated.split()) <= SHORT_WORDS + 2:
            return stated
    return reference.strip()


def _word_number(text: str) -> Number | None:
    """The value of ``text`` if it is one number in words ("Seven", "twenty-one")."""
    t = text.strip().rstrip(".").strip()
    found = _word_numbers(t)
    return found[0][2] if len(found) == 1 and found[0][:2] == (0, len(t)) else None


def _word_numbers(text: str) -> list[tuple[int, int, Number]]:
    """Numbers written in words, as ``(start, end, number)``; adjacent words combine the English
    way ("one hundred and twenty" is 120, "twenty-one" 21), a list does not ("seven eight")."""
    out: list[tuple[int, int, Number]] = []
    start = end = total = current = 0
    active = False
    for m in _WORD_RE.finditer(text):
        v = _NUMBER_WORDS.get(m.group(0).casefold())
        if v is None:
            continue
        joined = active and _WORD_JOIN.fullmatch(text[end : m.start()]) is not None
        tens = current % 100 >= 20 and current % 10 == 0
        if not (joined and (v in (100, 1000) or current % 100 == 0 or (tens and v < 10))):
            if active:
                out.append((start, end, Number(text[start:end], float(total + current))))
            start, total, current, active = m.start(), 0, 0, True
        if v == 100:
            current = max(current, 1) * 100
        elif v == 1000:
            total, current = total + max(current, 1) * 1000, 0
        else:
            current += v
        end = m.end()
    if active:
        out.append((start, end, Number(text[start:end], float(total + current))))
    return out


def _is_math(text: str) -> bool:
    """A short expression with no prose words and at least one operator, bracket or command."""
    if len(text) > 160 or "\n" in text:
        return False
    words = _WORDISH.findall(_LATEX_NOISE.sub(" ", re.sub(r"\\[A-Za-z]+", " ", text)))
    if any(w.casefold() not in _MATH_WORDS for w in words):
        return False
    return bool(_MATH_SIGNAL.search(text))


def read_reference(reference: str) -> Reference:
    """Classify a reference answer (see the module docstring) and read its marked answer.

    References up to :data:`_KEPT_CHARS` are remembered (a bounded LRU; a ``Reference`` is
    immutable): GRPO grades a group of completions against each gold answer.
    """
    if len(reference) <= _KEPT_CHARS:
        return _read_kept(reference)
    return _read(reference)


_KEPT_CHARS = 4096


_PLAIN_NUMBER = re.compile(r"[-+]?[0-9]+(?:\.[0-9]+)?")
"""A reference that is only a number in digits (``42``, ``-3``, ``2.5``): GSM8K's golds."""


def _read(reference: str) -> Reference:
    plain = reference.strip()
    if _PLAIN_NUMBER.fullmatch(plain) and (number := parse_number(plain)) is not None:
        # What _classify gives such a text, without its answer-phrase, choice, unit and
        # word-number scans: a reference graded against a group of responses is read once
        # (read_reference's LRU), but a batch of distinct golds reads each.
        return Reference("number", plain, number=number)
    return _classify(reference)


def _classify(reference: str) -> Reference:
    """:func:`read_reference`'s reading of any text (see the module docstring)."""
    gold = _gold_text(reference)
    plain = _strip_delimiters(_clean(gold)).strip()
    plain = plain[:-1].rstrip() if plain.endswith(".") and not plain[-2:-1].isdigit() else plain
    if not plain:
        return Reference("prose", gold)
    m = _CHOICE_REF.fullmatch(plain)
    if m and (m.group("p") or m.group("l").isupper()):
        letter = (m.group("p") or m.group("l")).upper()
        option = (m.group("o1") or m.group("o2") or "").strip() or None
        return Reference("choice", gold, letter=letter, option=option)
    nums = find_numbers(plain)
    if len(nums) == 1:
        before, _, after = plain.partition(nums[0].text)
        if _UNIT_REST.fullmatch(before + " " + after) and not after[:1].isalpha():
            return Reference("number", gold, number=nums[0])  # "2x" is no number with a unit
    word = _word_number(plain)
    if word is not None:
        return Reference("number", gold, number=word)
    if _is_math(plain):
        return Reference("math", gold, multi=bool(_MULTI.search(plain)))
    if (
        len(plain) <= 60
        and (len(plain.split()) <= SHORT_WORDS if not _CJK.search(plain) else len(plain) <= 12)
        and normalize_answer(plain)
    ):
        return Reference("exact", gold)
    return Reference("prose", gold)


_read_kept = lru_cache(maxsize=4096)(_read)
