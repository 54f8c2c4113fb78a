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
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from graders._base import Unscored
from graders._number import compare_numbers
from graders._string import normalize_answer
from graders._text import NUMBER_CORE, NUMBER_PATTERN, Number, answer_regions, find_numbers
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
    "final_part",
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

_ANSWER_PHRASE = re.compile(
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
"""Where a response states its answer: NumberGrader's English phrases, plus other languages."""

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
_LATEX_THOUSANDS = re.compile(r"(\d)(?:\{,\}|\\,|\\!|\\ )(?=\d{3}(?!\d))")
_MATH_SPAN = re.compile(r"\$\$.+?\$\$|(?<!\\)\$[^$]+(?<!\\)\$|\\\(.+?\\\)|\\\[.+?\\\]", re.DOTALL)
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
    LaTeX thousands separators (``1{,}000``, ``1\\,000``) to plain ones first."""
    text = _LATEX_THOUSANDS.sub(r"\1,", text)
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
    """Classify a reference answer (see the module docstring) and read its marked answer."""
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


@dataclass(frozen=True, slots=True)
class _Span:
    """A candidate answer in a text: where, as written, and what it means (equal keys, same
    answer: ``4`` and ``4.0``)."""

    start: int
    end: int
    text: str
    key: object
    number: Number | None = None


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


# --- numbers -------------------------------------------------------------------------------------


def _number_spans(text: str) -> list[_Span]:
    """Numbers in ``text``; number words only when it has no digits (``"eight legs"``)."""
    found = [
        (m.start(), m.end(), n)
        for m in _NUMBER_RE.finditer(text)
        if (n := _parse(m.group(0))) is not None
    ]
    if not found and not _FRACTION_WORD.search(text):  # "one half" is not 1
        found = _word_numbers(text)
    return [_Span(a, b, n.text, _value_key(n), n) for a, b, n in found]


def _parse(text: str) -> Number | None:
    nums = find_numbers(text)
    return nums[0] if len(nums) == 1 else None


def _value_key(n: Number) -> tuple[float, ...]:
    return tuple(round(v, 9) for v in n.candidates())


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


def _needs_math(region: str) -> bool:
    """Math beyond a plain number (``\\sqrt{16}``, ``2^2``, ``\\frac{-1}{2}``): what is left
    once the numbers are taken out still has a command, a brace or a power."""
    rest = _NUMBER_RE.sub(" ", _clean(region))
    return bool(re.search(r"\\(?![%$])[A-Za-z]*|[{}^√π]", rest))


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
    span = next((m for m in _MATH_SPAN.finditer(text) if m.start() <= chosen.start < m.end()), None)
    if span is not None and _needs_math(span.group(0)):
        return [span.group(0)]  # "$x = \frac{-1}{2}$": the span is math-verify's to read
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
        and gold_values.intersection(s.key)  # type: ignore[call-overload]
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


# --- math ----------------------------------------------------------------------------------------

_MATH_ALT = re.compile(
    r"(?<!\\)\$[^$]+(?<!\\)\$|\\\(.+?\\\)|(?:(?<![A-Za-z])[A-Za-z]\s*=\s*)?" + NUMBER_PATTERN
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
    ref = read_reference(reference)
    if ref.kind == "prose":
        return ref, Decision(None, "judge", "the reference is prose: only a judge can compare it")
    path = f"rule:{ref.kind}"
    final = final_part(response)
    if final is None:
        return ref, _no_answer(path, "text", "the reasoning never ended (<think> without </think>)")
    if len(final) > OFFLOAD_CHARS:  # keep the event loop free while a long text is read
        decision = await asyncio.to_thread(_decide_by_text, final, ref)
    else:
        decision = _decide_by_text(final, ref)
    if isinstance(decision, Decision):
        return ref, decision
    return ref, await _decide_math(final, ref, math, decision)


def _decide_by_text(final: str, ref: Reference) -> Decision | list[str] | None:
    """The synchronous rules; ``None`` or expressions to check hand over to math-verify."""
    if ref.kind == "number":
        return _decide_number(final, ref)
    if ref.kind == "choice":
        return _decide_choice(final, ref)
    if ref.kind == "exact":
        return _decide_exact(final, ref.answer)
    return None
