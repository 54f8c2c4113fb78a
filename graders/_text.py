"""Small pure text helpers shared by the rule-based graders.

Kept here, not in each grader, so that "what counts as a number" and "which number is the answer"
have exactly one definition: :class:`~graders._number.NumberGrader` and the ``[NUM]`` placeholder of
:class:`~graders._format.FormatGrader` must never disagree about whether ``1,234`` is one number.

Everything here is synchronous, allocation-light and regex-precompiled at import: graders call it
inline on the event loop.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from typing import Any, Literal

from graders._anchor_screen import KeywordRegex, _last_match
from graders._base import Unscored
from rm_service._result import plain_value

__all__ = [
    "ANSWER_FIELDS",
    "BLANK",
    "GOLD_LIST_GRADERS",
    "INVISIBLE",
    "METADATA_LIST_LIMIT",
    "METADATA_TEXT_LIMIT",
    "NUMBER_CORE",
    "NUMBER_PATTERN",
    "TEXT_PARTS",
    "AnswerSource",
    "Number",
    "answer_regions",
    "as_gold_list",
    "as_text",
    "boxed_contents",
    "clip",
    "delimited_math",
    "find_numbers",
    "gold_list_note",
    "grade_any_gold",
    "is_blank",
    "is_content_parts",
    "jsonable_number",
    "no_gradable_gold",
    "numeric_text",
    "parse_number",
    "plain_value",
    "same_value",
    "without_invisible",
]

METADATA_TEXT_LIMIT = 1000
"""Longest text (in characters) copied into result metadata; longer text is clipped with ``…``.

Metadata is written to every output line, and a copied 30k-character reasoning trace per record
would dwarf the scores it explains.
"""

METADATA_LIST_LIMIT = 100
"""Most list items copied into metadata; the *last* ones are kept, since answers sit at the end."""

# --- numbers -------------------------------------------------------------------------------------

INVISIBLE = "\u200b-\u200f\u2060-\u2064\ufeff\u00ad\u034f\u180e"
"""Characters that render as nothing (zero-width spaces and joiners, direction marks, the soft
hyphen), as the body of a regex character class: a reader sees the text without them."""
_INVISIBLE_RE = re.compile(f"[{INVISIBLE}]+")
BLANK = (
    INVISIBLE
    + "\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180d\u202a-\u202e\u2066-\u2069\u2800\u3164"
    + "\ufe00-\ufe0f\uffa0\U0001d173-\U0001d17a\U000e0000-\U000e007f\U000e0100-\U000e01ef"
)
""":data:`INVISIBLE` and the other characters that show nothing on their own: Hangul fillers,
the blank Braille cell, variation selectors, direction embeddings and isolates, tag characters,
musical formatting marks. Only for "is anything visible at all": they carry meaning next to
other characters (an emoji's variation selector, a Braille picture), so text is never edited
with them."""
_VISIBLE_RE = re.compile(f"[^\\s{BLANK}]")


def is_blank(text: str) -> bool:
    """Whether ``text`` shows nothing: only whitespace and :data:`BLANK` characters."""
    return _VISIBLE_RE.search(text) is None


_FULL_WIDTH = str.maketrans(
    {
        **{chr(0xFF10 + i): str(i) for i in range(10)},
        "\uff0d": "-", "\ufe63": "-", "\uff0b": "+", "\ufe62": "+", "\uff0e": ".",
        "\uff0c": ",", "\uff05": "%", "\ufe6a": "%",
    }
)  # fmt: skip


def without_invisible(text: str, sep: str = "") -> str:
    """``text`` with each run of :data:`INVISIBLE` characters replaced by ``sep``: what a reader
    sees (an answer of one zero-width space is empty; words joined by them are words)."""
    return text if text.isascii() else _INVISIBLE_RE.sub(sep, text)


def numeric_text(text: str) -> str:
    """``text`` as the number rules read it: invisible characters removed (``4\u200b2`` is the
    42 a reader sees) and full-width digits, signs, points, commas and percent signs as ASCII
    (``－５`` is -5, not 5). Nothing else changes: NFKC would also turn ``5²`` into ``52``."""
    if text.isascii():
        return text
    return _INVISIBLE_RE.sub("", text).translate(_FULL_WIDTH)


NUMBER_CORE = (
    r"[-+\u2212]?"  # optional sign; U+2212 is the typographic minus
    r"(?:"
    r"\\[dt]?frac"  # \frac{3}{4}, \dfrac, \tfrac, \frac{-3}{4}, \frac12 (TeX: one digit each)
    r"(?:\{\s*[-+\u2212]?\s*\d+\s*\}\{\s*[-+\u2212]?\s*\d+\s*\}|\s*\d\d(?!\d))"
    r"|\d+/\d+(?![\d/])"  # 3/4, but not a date such as 1/2/2024
    r"|(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"  # 1,234.5  12  1.5e-3
    r"|\.\d+(?:[eE][-+]?\d+)?"  # .5
    r")"
    r"(?:\s?\\?%)?"  # 25%  25 %  25\%
)
"""A number, as a regex with no capturing groups (so it can be embedded several times)."""

NUMBER_PATTERN = r"(?<![0-9A-Za-z_./])" + NUMBER_CORE
""":data:`NUMBER_CORE` not glued to a word or another number.

The look-behind keeps ``2`` out of ``x2``/``H2O``, the minor parts out of ``v1.2.3`` and ``1/2/3``,
and makes ``2-3`` read as ``2`` and ``3`` rather than ``2`` and ``-3``. It is ASCII-only on
purpose, so a number right after CJK text (``答案是42``) is still found.
"""

_NUMBER_RE = re.compile(NUMBER_PATTERN)


def delimited_math(opener: str, closer: str, group: str = "") -> str:
    """A regex for one ``\\(…\\)`` or ``\\[…\\]`` span, its content optionally a named group.

    The content holds no opener of its own kind (one escaped as ``\\\\[`` may stay: TeX's
    line break ``\\\\[2pt]``). Why: with a bare ``.+?``, each unclosed opener scanned to the
    end of the text, so a response of many ``\\(`` cost time quadratic in its length; now each
    stops at the next opener. Only nested openers of one kind, not valid math, read differently.

    An escaped opener (``\\\\(``, as in doubled-backslash text ``\\\\(x\\\\)``) still opens a
    span, but its content stops at an opener of either form: had it scanned past the escaped
    ones, each of many would have scanned to the end of the text again.
    """
    o, c = re.escape(opener), re.escape(closer)
    esc = f"esc{ord(opener[-1])}"  # set when the opener is escaped
    start = rf"(?:(?<=(?P<{esc}>\\))|(?<!\\)){o}"
    body = rf"(?:(?!(?({esc})|(?<!\\)){o}).)+?"
    return rf"{start}(?P<{group}>{body}){c}" if group else rf"{start}{body}{c}"


@dataclass(frozen=True, slots=True)
class Number:
    """A number found in text.

    Attributes:
        text: the text as written, e.g. ``"1,234"``, ``"3/4"``, ``"25%"``.
        value: its value, with a percentage *not* divided by 100 (``25%`` → 25.0).
        percent: whether it carried a ``%``; such a number equals both ``value`` and
            ``value / 100`` (see :meth:`candidates`).
    """

    text: str
    value: float
    percent: bool = False

    def candidates(self) -> tuple[float, ...]:
        """The values this number may stand for.

        ``25%`` is both 25 and 0.25, because references write it both ways: ``25`` for "what
        percent…", ``0.25`` for a proportion. A bare number stands only for itself.
        """
        return (self.value, self.value / 100.0) if self.percent else (self.value,)

    def exact(self) -> tuple[Decimal, int]:
        """The value as written, exactly: ``(numerator, denominator)`` with the denominator an
        integer > 0 (``value`` is a float: ``2147483647`` and ``2147483648`` are one float
        apart in relative terms, ``9007199254740993`` is no float at all, and ``1e-400`` is
        0.0). A percentage *not* divided by 100, as ``value``. A :class:`decimal.Decimal`
        numerator, never an ``int``: ``1e-9999999`` as an integer ratio took seconds, and a
        digit string past 4,300 digits is refused by ``int``. See :func:`same_value`."""
        s, sign, _ = _unsigned(self.text)
        try:
            if s.startswith("\\"):
                num, den = _frac_parts(s)
            elif "/" in s:
                top, _, bottom = s.partition("/")
                num, den = int(top), int(bottom)
            else:
                value = Decimal(s.replace(",", ""))  # exact: no context rounds it
                return (value.copy_negate() if sign < 0 else value), 1
        except (ValueError, ArithmeticError):  # not written as a number ("eight"): its value
            return Decimal(self.value), 1
        if den == 0:
            return Decimal(self.value), 1
        return (Decimal(-sign * num), -den) if den < 0 else (Decimal(sign * num), den)


def same_value(a: tuple[Decimal, int], b: tuple[Decimal, int]) -> bool:
    """Whether two :meth:`Number.exact` values are equal, exactly and at any exponent."""
    (an, ad), (bn, bd) = a, b
    if ad == bd:
        return an == bn
    digits = len(an.as_tuple().digits) + len(bn.as_tuple().digits) + len(str(ad * bd)) + 2
    exact = Context(prec=digits, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[])
    return exact.multiply(an, Decimal(bd)) == exact.multiply(bn, Decimal(ad))


_FRAC_PART_RE = re.compile(r"([-+\u2212]?)\s*(\d+)")


def _frac_parts(latex: str) -> tuple[int, int]:
    """Numerator and denominator of ``\\frac{a}{b}`` (signs inside the braces kept) or of the
    shorthand ``\\frac12``; ``ZeroDivisionError`` is the caller's to catch."""
    body = latex[latex.index("frac") + 4 :]
    if "{" not in body:  # \frac12: one digit each, as TeX reads it
        digits = body.strip()
        return int(digits[0]), int(digits[1])
    (s1, n1), (s2, n2) = _FRAC_PART_RE.findall(body)
    num = -int(n1) if s1 in ("-", "\u2212") else int(n1)
    den = -int(n2) if s2 in ("-", "\u2212") else int(n2)
    return num, den


def _unsigned(text: str) -> tuple[str, int, bool]:
    """A number span as ``(its magnitude's text, sign, whether a percentage)``: the one place
    that reads the sign and the ``%`` (or ``\\%``) off a span, for the float and the exact
    value alike."""
    s = text.strip()
    percent = s.endswith("%")
    if percent:
        s = s[:-1].rstrip().removesuffix("\\").rstrip()
    if s[:1] in ("-", "+", "\u2212"):
        return s[1:], -1 if s[0] != "+" else 1, percent
    return s, 1, percent


def parse_number(text: str) -> Number | None:
    """Parse one number span (as matched by :data:`NUMBER_CORE`) into a :class:`Number`.

    Returns ``None`` for a zero denominator or a value that overflows a float: neither is a number
    that can be compared, and a made-up value would be worse than none.
    """
    s, sign, percent = _unsigned(text)
    try:
        if s.startswith("\\"):
            top, bottom = _frac_parts(s)
            value = top / bottom
        elif "/" in s:
            num, _, den = s.partition("/")
            value = float(num) / float(den)
        else:
            value = float(s.replace(",", ""))
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    value *= sign
    if not math.isfinite(value):
        return None
    return Number(text=text, value=value, percent=percent)


def find_numbers(text: str) -> list[Number]:
    """Every number in ``text``, in order of appearance.

    Recognised: integers, decimals (``3.14``, ``.5``), signs (``-``, ``+``, ``−``), comma
    thousands separators in groups of exactly three (``1,234,567``; ``1,23`` is two numbers),
    scientific notation (``1.5e-3``), simple fractions (``3/4``, ``\\frac{3}{4}``) and percentages
    (``25%``). Not recognised: number words, space or dot thousands separators, decimal commas
    (``3,5`` is two numbers), ``× 10^n``.
    """
    out = []
    for m in _NUMBER_RE.finditer(text):
        n = parse_number(m.group(0))
        if n is not None:
            out.append(n)
    return out


AnswerSource = Literal["boxed", "answer_tag", "answer_phrase", "last_number"]

_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)
_ANSWER_PHRASE_RE = re.compile(
    r"\banswer\s*(?:is\b|:|=)|####",  # "the answer is", "Final answer:", GSM8K's "####"
    re.IGNORECASE,
)


_BRACE_RE = re.compile(r"\\(?:boxed|fbox)\s*\{|[{}]")


def boxed_contents(text: str) -> list[str]:
    """The content of every innermost ``\\boxed{…}`` / ``\\fbox{…}``, in order.

    Braces are balanced; an unclosed box runs to the end of the text. A box that holds another
    box is skipped for the one inside (``\\boxed{\\boxed{4}}`` gives ``["4"]``), so the last
    item is always the box opened last, and the items never overlap: one linear pass, and a
    response of nested or unclosed boxes cannot make the result quadratic in its length.
    """
    if "{" not in text:  # every box opens with one; a lone "}" closes nothing
        return []
    spans: list[tuple[int, int]] = []
    open_: list[list[int]] = []  # [content start, depth at the box's own brace, holds a box]
    depth = 0
    for m in _BRACE_RE.finditer(text):
        token = m.group(0)
        if token == "}":
            if open_ and open_[-1][1] == depth:
                start, _, parent = open_.pop()
                if not parent:
                    spans.append((start, m.start()))
            depth = max(0, depth - 1)
            continue
        depth += 1
        if token != "{":
            if open_:
                open_[-1][2] = 1
            open_.append([m.end(), depth, 0])
    spans.extend((start, len(text)) for start, _, parent in open_ if not parent)
    return [text[a:b] for a, b in sorted(spans)]


def answer_regions(
    text: str, phrase: re.Pattern[str] | KeywordRegex = _ANSWER_PHRASE_RE
) -> tuple[list[str], AnswerSource]:
    """Where ``text`` states its answer; the first rule that applies wins.

    1. ``boxed``: every innermost ``\\boxed{…}`` (or ``\\fbox{…}``) content.
    2. ``answer_tag``: every ``<answer>…</answer>`` block (an unclosed last one runs to the end).
    3. ``answer_phrase``: the text after the last ``phrase`` match ("answer is", "answer:",
       ``####``; a caller may pass a wider pattern, or a :class:`KeywordRegex` to find it
       faster).
    4. ``last_number``: the whole text (nothing marks an answer).

    The list is never empty; its last item is the one :func:`select_answer_number` reads. Several
    items (boxes, blocks) let a caller see a response that marks more than one answer.
    """
    boxes = boxed_contents(text)
    if boxes:
        return boxes, "boxed"
    tags = [m.group(1) for m in _ANSWER_TAG_RE.finditer(text)]
    if tags:
        return tags, "answer_tag"
    if isinstance(phrase, KeywordRegex):
        last = phrase.last_match(text)
    else:
        last = _last_match(phrase, text)
    if last is not None:
        return [text[last.end() :]], "answer_phrase"
    return [text], "last_number"


def jsonable_number(value: float) -> int | float:
    """``42.0`` → ``42`` for readable metadata; other values unchanged."""
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


# --- misc ----------------------------------------------------------------------------------------


ANSWER_FIELDS = frozenset({"reference_response"})
"""Fields that hold a gold *answer*, where a finite JSON number is an answer too (GSM8K golds are
integers). Every other text field (``response``, ``query``, ``context``, …) must be a string."""

GOLD_LIST_GRADERS = ("math", "number", "string_match")
"""The graders that read a list of acceptable answers in an answer field (see :func:`as_gold_list`).
The others use the reference as one text (an embedding, a judge's prompt) and refuse a list."""

_LIST_GRADERS = ", ".join(GOLD_LIST_GRADERS[:-1]) + " and " + GOLD_LIST_GRADERS[-1]


def as_text(value: Any, field: str) -> str:
    """``value`` as the text of ``field``, or ``Unscored(kind="invalid_input")`` naming the field.

    The one check every built-in grader runs on a field before reading it as text. A string
    passes, and so does OpenAI's content-parts form of one (:func:`is_content_parts`), read as
    its text parts joined. In an answer field (:data:`ANSWER_FIELDS`) a finite number passes
    as its decimal text (``1e-05`` → ``"0.00001"``, which every grader reads as a number).
    Anything else is the data's fault and must not be scored: ``NaN`` or ``1e999`` (JSON's
    infinity) read as ``"nan"``/``"inf"`` would earn a full length reward and a plausible 0
    elsewhere, and a bool, another list or an object is not text at all (nor is a content part
    that is not text: an image's text alone is not the input). (``None`` never gets here: a
    grader treats it as a missing field.) numpy scalars count as the Python values they hold
    (:func:`plain_value`).
    """
    return _as_text(value, f"field {field!r}", answer=field in ANSWER_FIELDS)


def _as_text(value: Any, what: str, *, answer: bool) -> str:
    value = plain_value(value)
    if isinstance(value, str):
        return value
    if is_content_parts(value):
        return _parts_text(value, what)
    if answer and isinstance(value, int | float) and not isinstance(value, bool):
        text = _number_text(value)
        if text is not None:
            return text
    got = type(value).__name__
    if isinstance(value, int | float):  # bools too: say which
        got += f" {value!r}" if not isinstance(value, int) or abs(value) < 10**20 else " (huge)"
    allowed = "a string or a finite number" if answer else "a string"
    if answer and isinstance(value, list | tuple):
        got += f" (a list of acceptable answers is read by the {_LIST_GRADERS} graders)"
    elif isinstance(value, list | tuple):
        allowed += " or a list of text content parts"
    raise Unscored(f"{what} must be {allowed}, got {got}", kind="invalid_input")


TEXT_PARTS = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}
"""The content-part types that hold text, and the key that holds it: Chat Completions' ``text``
and an assistant's ``refusal`` (what the model said, so it is graded like any answer), the
Responses API's ``input_text`` and ``output_text``."""


def is_content_parts(value: Any) -> bool:
    """``value`` is in OpenAI's content-parts form: a non-empty list of objects none of which
    has a ``role``, such as ``[{"type": "text", "text": "..."}]``, which OpenAI-format datasets
    and chat templates give for a message's ``content``. No field holds such a list as anything
    but text, so a reader that meets one reads it as parts (:func:`as_text`) and names what is
    wrong in it, rather than "not a string". Every chat message has a ``role``: a list of
    messages is a conversation, never parts, so a reader that takes either (a judge's prompt
    fields) asks this first."""
    value = plain_value(value)
    if not isinstance(value, list | tuple) or not value:
        return False
    items = [plain_value(part) for part in value]
    return all(isinstance(part, Mapping) and "role" not in part for part in items)


def _parts_text(parts: Sequence[Any], what: str) -> str:
    """The text of content parts: the text parts joined with nothing between them, as chat
    templates render them (a response split into ``<think>…</think>`` and ``<answer>…</answer>``
    parts reads as one). A part that is not text (an image, audio, a file) is the record's
    fault, ``invalid_input`` naming the field and the part: its text alone is not the input,
    and grading what is left would score an answer the model did not give."""
    texts: list[str] = []
    for i, part in enumerate(parts):
        part = plain_value(part)
        kind = plain_value(part.get("type"))
        if not isinstance(kind, str):
            raise Unscored(
                f"{what} must be a string or a list of content parts such as "
                f'[{{"type": "text", "text": "..."}}], got a list whose item {i} has no "type"',
                kind="invalid_input",
            )
        key = TEXT_PARTS.get(kind)
        if key is None:
            raise Unscored(
                f"{what} must hold text only, got a part of type {kind!r} (item {i}): only "
                f"{', '.join(repr(k) for k in TEXT_PARTS)} parts can be graded",
                kind="invalid_input",
            )
        text = plain_value(part.get(key))
        if not isinstance(text, str):
            raise Unscored(
                f"{what} must hold a string {key!r} in its {kind!r} part (item {i}), got "
                f"{type(text).__name__}",
                kind="invalid_input",
            )
        texts.append(text)
    return "".join(texts)


def as_gold_list(value: Any, field: str) -> list[str] | None:
    """The golds of an answer field that holds several acceptable answers; ``None`` for one.

    A list, a tuple or a 1-D numpy array of golds (verl's ``ground_truth`` often is one) means
    "any of these is right" (a list of objects is one gold in content parts,
    :func:`is_content_parts`, read by :func:`as_text`): each item must be what :func:`as_text`
    accepts in an answer field (a string or a finite number, numpy's too) and comes back as its
    text. ``None`` when
    ``value`` is a single gold: the caller then reads it with :func:`as_text` as before.

    Raises:
        Unscored: ``invalid_input`` naming the field for an empty list (nothing to compare with),
            a nested list (``[["1", "2"]]`` or a 2-D array: a list of answers or an answer that
            is a pair? Flattening would guess), or an item that is not an answer, named by its
            index (``reference_response[2]``).
    """
    value = plain_value(value)
    if not isinstance(value, list | tuple) or is_content_parts(value):
        return None  # content parts are one gold, read by as_text
    if not value:
        raise Unscored(f"field {field!r} must hold at least one gold answer, got an empty list")
    golds = []
    for i, item in enumerate(value):
        item = plain_value(item)  # an object array's items stay numpy scalars
        if isinstance(item, list | tuple):
            raise Unscored(
                f"field {field!r} must be a flat list of acceptable answers, got a nested list "
                f"({field}[{i}] is a {type(item).__name__})"
            )
        golds.append(_as_text(item, f"field {field!r}: {field}[{i}]", answer=True))
    return golds


Graded = tuple[float, str, dict[str, Any]]
"""A sync grader's verdict on one gold: ``(score, reason, metadata)``."""


def grade_any_gold(golds: Sequence[str], field: str, grade: Callable[[str], Graded]) -> Graded:
    """The best of ``grade(gold)`` over the golds of a list (:func:`as_gold_list`), in order.

    The first full match (1.0) ends the search; otherwise the highest score wins, the earlier
    gold on a tie. A gold that cannot be graded (``grade`` raises ``invalid_input``: no number,
    empty, a bad regex) is passed over and listed, unless no gold can be graded, which is
    ``invalid_input`` naming the field. The metadata is the winning gold's, plus ``gold_index``
    (the gold that gave a score above 0, else ``None``) and ``golds_skipped`` (indices passed
    over); the reason names the gold, e.g. ``reference_response[1]``.
    """
    best: tuple[float, int, str, dict[str, Any]] | None = None
    skipped: list[int] = []
    first_skip = ""
    for i, gold in enumerate(golds):
        try:
            score, reason, metadata = grade(gold)
        except Unscored as exc:
            if exc.kind != "invalid_input":
                raise
            skipped.append(i)
            first_skip = first_skip or f"{field}[{i}]: {exc.reason}"
            continue
        if best is None or score > best[0]:
            best = (score, i, reason, metadata)
        if score >= 1.0:
            break
    if best is None:
        raise Unscored(no_gradable_gold(field, len(golds), first_skip), kind="invalid_input")
    score, i, reason, metadata = best
    index = i if score > 0 else None
    return (
        score,
        f"{reason} {gold_list_note(field, index, len(golds))}",
        {**metadata, "gold_index": index, "golds_skipped": skipped},
    )


def gold_list_note(field: str, index: int | None, count: int) -> str:
    """The reason's note on which gold of a list decided the score."""
    if index is None:
        return f"(no gold of the {count} in {field!r} matched)"
    return f"({field}[{index}], gold {index + 1} of {count})"


def no_gradable_gold(field: str, count: int, detail: str) -> str:
    """The ``invalid_input`` message for a gold list none of whose golds can be graded."""
    return f"no gold in field {field!r} can be graded ({count} given; {detail})"


def _number_text(value: float) -> str | None:
    """A finite number's plain decimal text; ``None`` for NaN, infinities and huge integers."""
    try:
        if isinstance(value, int):
            return str(value)
        return format(Decimal(repr(value)), "f") if math.isfinite(value) else None
    except ValueError:  # an int past Python's str() digit limit
        return None


def clip(text: str, limit: int = METADATA_TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters (marked with ``…``), for metadata."""
    return text if len(text) <= limit else text[:limit] + "…"
