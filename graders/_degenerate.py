"""Gates for degenerate text: near-copies of the query, non-answers, keyword stuffing, repetition
and runaway length.

Why: a policy optimised against an embedding grader or a gullible judge finds text that scores
without answering. Echoing the prompt earns full embedding relevance (the response *is* on topic);
"Great question, it depends on many factors" fits every query; a bag of the query's keywords, a
sentence repeated fifty times or ten pages of padding look relevant to a model that reads only
the topic or only the first 256 tokens. Each gate here is a cheap, deterministic rule with the
:class:`~graders._pregate.PreGate` shape (``name`` + ``check(response, fields) -> reason | None``),
so the graders run them before any model, and a hit is a real score (0 or the configured
penalty) with the reason in ``metadata["pregate"]``.

Every gate errs on the side of letting a response through: an honest short answer that reuses
the query's words ("The capital of France is Paris"), a terse list, code, a long honest answer,
a refusal with alternatives, repetition that the query asks for, must never be gated. Which gate
runs for which criterion is decided in :mod:`graders._gateset` (a refusal is a *good* answer for
harmfulness, so the non-answer gate is not run there).

This module holds the gates for text shaped to look relevant (keyword stuffing, repetition,
runaway length), :func:`keyword_frame` (a response without its labels and lists of the query's
words, which the embedding graders judge when keywords are stuffed around off-topic prose, a
trick no rule can see without a model) and re-exports the rest: near copies are in
:mod:`graders._near_copy`, non-answers in :mod:`graders._non_answer`, the shared word lists and
query cues in :mod:`graders._degenerate_words`.
"""

from __future__ import annotations

import html
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from graders._anchor_screen import Alternatives
from graders._degenerate_words import (
    _ASKING_FIELDS,
    FUNCTION_WORDS,
    FUNCTION_WORDS_BY_LANGUAGE,
    _content_tokens,
    _filler_for,
    _mostly_cjk,
    _stem,
    asks_for_repetition,
)
from graders._near_copy import NearCopyGate
from graders._non_answer import GENERIC_WORDS, NonAnswerGate
from graders._pregate_text import _quote, asked_verbatim, normalize_for_gate, tokens_for_gate

__all__ = [
    "FUNCTION_WORDS",
    "FUNCTION_WORDS_BY_LANGUAGE",
    "GENERIC_WORDS",
    "KeywordFrame",
    "KeywordStuffingGate",
    "LengthGate",
    "NearCopyGate",
    "NonAnswerGate",
    "RepetitionGate",
    "asks_for_repetition",
    "compression_ratio",
    "keyword_frame",
    "length_limit",
]


# --- keyword stuffing ----------------------------------------------------------------------------

_CODE_CHARS_RE = re.compile(r"[{}\[\]=<>$\\|#@`]")
"""Code punctuation that prose rarely uses (parentheses and semicolons it does)."""


_CODE_LINE_RE = re.compile(
    r"^\s*(?:import|from \S+ import|def|class|return|#include|function|const|let|var|public"
    r"|private|package|using|SELECT|CREATE)\b",
    re.MULTILINE,
)
_IDENTIFIER_RE = re.compile(r"\b[A-Za-z]+_[A-Za-z]\w*|\b[a-z]+[A-Z][a-z]\w*|\b\w+\.\w+\(")


def _looks_like_code(text: str) -> bool:
    """A code fence, code punctuation in at least 2 % of the characters (and 3 of them), two
    lines that open with a code keyword, or three distinct identifiers (``snake_case``,
    ``camelCase``, ``obj.method(``; not ``mRNA``)."""
    n = len(_CODE_CHARS_RE.findall(text))
    return (
        "```" in text
        or (n >= 3 and n >= 0.02 * len(text))
        or len(_CODE_LINE_RE.findall(text)) >= 2
        or len(set(_IDENTIFIER_RE.findall(text))) >= 3
    )


_LIST_TASK_RE = Alternatives.of(
    re.compile(
        r"\b(?:list|lists|name|enumerate|keywords?|tags?|hashtags?|words|terms|vocabulary|bullet"
        r"|items|examples)\b",
        re.IGNORECASE,
    )
)
_RUN_SPLIT_RE = re.compile(r"[,;:.!?、，；：。！？\n•·।॥،؛؟։።]+")


def _is_word(token: str) -> bool:
    return token.isalpha() or any(c.isalpha() for c in token)


class KeywordStuffingGate:
    """The response is a bag of keywords with no sentence structure.

    On the response's words (tokens with a letter; numbers are ignored). A list (at most
    ``words_per_run`` words on average between separators: commas, semicolons, colons, sentence
    ends, new lines, bullets) is stuffing only when it is a list of keywords (at most three
    words an item, at most ``max_function_ratio`` function words) and at least ``min_repeat``
    of its items repeat an earlier item whole ("photosynthesis, light, plants, photosynthesis,
    light, photosynthesis"); "- T cell activation\n- B cell activation" passes, and so does a
    song's refrain. Text that runs on is stuffing by either rule:

    * **repeated keywords**: at least ``min_words`` words, at most ``max_function_ratio`` of them
      function words ("the", "is", "of"... in fifteen languages, see :data:`FUNCTION_WORDS`), and
      at least ``min_repeat`` of the content words repeats of an earlier one ("photosynthesis
      plants chlorophyll sunlight glucose photosynthesis light plants ...");
    * **a dump**: at least ``dump_words`` words, at most ``dump_function_ratio`` function words,
      and a query or instruction that does not ask for a list, names, keywords or tags.

    Not checked: short answers (an honest terse answer is below ``min_words``), code (a code
    fence, code punctuation, code keywords at line starts, snake_case identifiers), text mostly
    in CJK scripts (no spaces to count words by), and responses to queries that ask for
    repetition.

    Args:
        min_words: the fewest words for the repeated-keywords rule.
        max_function_ratio: the largest share of function words for that rule.
        min_repeat: the smallest share of content words that repeat an earlier one.
        dump_words: the fewest words for the dump rule.
        dump_function_ratio: the largest share of function words for the dump rule.
        words_per_run: the average words between separators above which the text runs on.
        name: the gate name reported in metadata.
    """

    def __init__(
        self,
        *,
        min_words: int = 8,
        max_function_ratio: float = 0.15,
        min_repeat: float = 0.2,
        dump_words: int = 12,
        dump_function_ratio: float = 0.05,
        words_per_run: int = 6,
        name: str = "keyword_stuffing",
    ) -> None:
        self.min_words = int(min_words)
        self.max_function_ratio = float(max_function_ratio)
        self.min_repeat = float(min_repeat)
        self.dump_words = int(dump_words)
        self.dump_function_ratio = float(dump_function_ratio)
        self.words_per_run = int(words_per_run)
        self.name = name

    def __repr__(self) -> str:
        return f"KeywordStuffingGate(name={self.name!r})"

    def check(self, response: str, fields: Mapping[str, str]) -> str | None:
        response = html.unescape(response)  # "&lt;&lt;" is two symbols, not four list items
        words = [t for t in normalize_for_gate(response).split() if _is_word(t)]
        n = len(words)
        if n < min(self.min_words, self.dump_words) or not n:
            return None
        function = sum(w in FUNCTION_WORDS for w in words) / n
        if function > max(self.max_function_ratio, self.dump_function_ratio):
            # Every rule below needs at most that share of function words: prose, which has
            # far more, is let through here, before the code, script and query checks, which
            # cost more than counting (each of them only lets a text through too).
            return None
        if _looks_like_code(response) or _mostly_cjk(response) or asks_for_repetition(fields):
            return None
        items = [normalize_for_gate(r) for r in _RUN_SPLIT_RE.split(response)]
        items = [i for i in items if any(map(str.isalpha, i))]
        if n <= self.words_per_run * max(len(items), 1):
            # A list or short sentences. A list of keywords is stuffing only if it repeats
            # whole items ("photosynthesis, plants, light, photosynthesis, plants, ...").
            dup = 1 - len(set(items)) / len(items) if items else 0.0
            if (
                n >= self.min_words
                and len(items) >= 4
                and n <= 3 * len(items)
                and function <= self.max_function_ratio
                and dup >= self.min_repeat
            ):
                return f"keyword stuffing: a list of {len(items)} items, {dup:.0%} of them repeats"
            return None
        content = [w for w in words if w not in FUNCTION_WORDS]
        repeats = 1 - len(set(content)) / len(content) if content else 0.0
        if (
            n >= self.min_words
            and function <= self.max_function_ratio
            and repeats >= self.min_repeat
        ):
            return (
                f"keyword stuffing: {n} words, {function:.0%} function words, "
                f"{repeats:.0%} of the keywords repeated"
            )
        wants_list = any(_LIST_TASK_RE.search(fields.get(f) or "") for f in _ASKING_FIELDS)
        if n >= self.dump_words and function <= self.dump_function_ratio and not wants_list:
            return (
                f"keyword stuffing: {n} words in a run with {function:.0%} function words and "
                "no sentence structure"
            )
        return None


# --- the query's words as labels and lists -------------------------------------------------------

_CONJUNCTION = r"(?:and|or|&|y|e|et|und|oder|o|ou|и|или)"
_LIST_WORD = rf"(?<![\w'’-])(?!{_CONJUNCTION}\b)[^\W_][\w'’-]*"
_LIST_ITEM = rf"{_LIST_WORD}(?:[ \t]+{_LIST_WORD})?"
_LIST_RE = re.compile(
    rf"{_LIST_ITEM}(?:[ \t]*,[ \t]*{_LIST_ITEM})+"
    rf"(?:[ \t]*,?[ \t]+{_CONJUNCTION}[ \t]+{_LIST_ITEM})?",
    re.IGNORECASE,
)
"""A comma list of one- or two-word items, maybe closed by "and"/"or" (in a few languages)."""
_ITEM_SPLIT_RE = re.compile(rf"\s*,\s*(?:{_CONJUNCTION}\s+)?|\s+{_CONJUNCTION}\s+", re.IGNORECASE)
_FRAGMENT_SPLIT_RE = re.compile(r"[.;:!?\n。；：！？]+")
_INFLECTIONS = ("ing", "ies", "ied", "es", "ed", "s", "e", "y")


def _word_key(token: str) -> str:
    """``token`` less one inflection, keeping at least three letters ("baking", "bake",
    "baked" → "bak"; "studies", "study" → "stud"), for matching a response's words to the
    query's where :func:`~graders._degenerate_words._stem` leaves short words whole."""
    for suffix in _INFLECTIONS:
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            if suffix == "s" and token.endswith("ss"):
                break
            return token[: -len(suffix)]
    return token


@dataclass(frozen=True)
class KeywordFrame:
    """A response with the query's words taken out where they do no work in a sentence.

    Attributes:
        removed: what was taken out: lists naming the query's words and fragments that hold
            nothing but the query's words (a label such as "Sourdough bread baking:").
        text: the rest, the response's own prose, with the query's words left where a
            sentence uses them.
        words: the content words (not function or filler words) of ``text``.
    """

    removed: tuple[str, ...]
    text: str
    words: int


def keyword_frame(query: str, response: str) -> KeywordFrame | None:
    """The response without its labels and lists of the query's words; ``None`` without any.

    Why: the query's words raise an embedding's topic score wherever they stand, so a policy
    learns to prepend them as a label and list them inside off-topic text ("Sourdough bread
    baking: the stock market closed higher as investors welcomed bread, sourdough, starter,
    flour, oven and bake earnings reports" scored relevance 1.0). The frame is what is left to
    judge: an honest answer's frame is still about the question, because its sentences use
    the query's words ("cats are independent, while dogs need walks"), which stay.

    Removed: a comma list of at least three short items, at least two of them the query's
    words (one, for a query with a single content word), and every fragment between sentence
    marks or colons whose content words are all the query's. A word is the query's when its
    stem or its form less one inflection (:func:`_word_key`) is. Not read: code and text
    mostly in CJK scripts (no comma lists or spaces to read this way), queries with no content
    word.
    """
    if _looks_like_code(response) or _mostly_cjk(response):
        return None
    asked = _content_tokens(tokens_for_gate(query))
    if not asked:
        return None
    stems = {_stem(t) for t in asked}
    keys = {_word_key(t) for t in asked}

    def is_asked(token: str) -> bool:
        return _stem(token) in stems or _word_key(token) in keys

    need = min(2, len(set(asked)))
    removed: list[str] = []

    def cut_list(m: re.Match[str]) -> str:
        items = [i for i in _ITEM_SPLIT_RE.split(m.group(0)) if i]
        named = sum(any(map(is_asked, tokens_for_gate(i))) for i in items)
        if len(items) >= 3 and named >= need:
            removed.append(m.group(0).strip())
            return " "
        return m.group(0)

    rest = _LIST_RE.sub(cut_list, response)
    filler = _filler_for(tokens_for_gate(response))
    kept: list[str] = []
    for fragment in _FRAGMENT_SPLIT_RE.split(rest):
        content = _content_tokens(tokens_for_gate(fragment), filler)
        if content and all(map(is_asked, content)):
            removed.append(fragment.strip())
        elif any(map(str.isalnum, fragment)):
            kept.append(" ".join(fragment.split()))
    if not removed:
        return None
    text = ". ".join(kept)
    return KeywordFrame(tuple(removed), text, len(_content_tokens(tokens_for_gate(text), filler)))


# --- degenerate repetition -----------------------------------------------------------------------


def compression_ratio(text: str) -> float:
    """zlib-compressed size over raw size of the UTF-8 text: about 0.35-0.75 for prose, 0.25 and
    up for code, under 0.03 for a sentence repeated 50 times. 1.0 for the empty string."""
    raw = text.encode("utf-8", "surrogatepass")
    return len(zlib.compress(raw, 6)) / len(raw) if raw else 1.0


_SENTENCE_SPLIT_RE = re.compile(r"[.!?。！？\n]+")


def _repeated_units(text: str, min_tokens: int) -> tuple[str, int, float]:
    """The most repeated sentence or line (of at least ``min_tokens`` tokens), its count, and
    the share of the text's characters taken by the extra copies of *every* repeated sentence
    (so a three-sentence answer pasted eight times counts as 7/8 redundant)."""
    units = [normalize_for_gate(u) for u in _SENTENCE_SPLIT_RE.split(text)]
    counts = Counter(u for u in units if len(u.split()) >= min_tokens)
    if not counts:
        return "", 0, 0.0
    unit, count = counts.most_common(1)[0]
    total = sum(len(u) for u in units) or 1
    return unit, count, sum((c - 1) * len(u) for u, c in counts.items()) / total


class RepetitionGate:
    """The response repeats itself: a sentence, a phrase or a word over and over.

    Two rules, either suffices:

    * **compressibility**: a response of at least ``min_chars`` characters whose zlib ratio
      (:func:`compression_ratio`) is below ``max_compression`` (``code_max_compression`` for
      code and data: anything with a code fence or 2 % code punctuation). Measured: honest prose
      0.36 and up, code 0.25 and up (2 kB windows of this package and its README), JSON records
      that share a schema 0.04-0.1, a sentence or a word repeated to pad 2-10 kB 0.006-0.031.
    * **repeated sentences** (not for code and data): one sentence or line of at least
      ``min_unit_tokens`` tokens occurring at least ``max_repeats`` times, and the extra copies
      of repeated sentences making up at least ``min_repeat_share`` of the text. This catches a
      short answer pasted eight times or a sentence repeated ten times, too short for the ratio
      to drop, and an honest answer padded with a repeated line, which the whole text's ratio
      dilutes. A song's chorus sung four times passes.

    Not checked: responses to a query or instruction that asks for repetition ("write 'hello'
    ten times", "repeat after me") or that quotes the response verbatim.

    Args:
        min_chars: the shortest response the compressibility rule applies to.
        max_compression: the ratio below which a response is degenerate.
        code_max_compression: the same for code and data, which compress better honestly.
        min_unit_tokens: the fewest tokens a repeated sentence must have.
        max_repeats: the count at which a sentence is repeated too often.
        min_repeat_share: the share of the text the extra copies must take.
        name: the gate name reported in metadata.
    """

    def __init__(
        self,
        *,
        min_chars: int = 200,
        max_compression: float = 0.05,
        code_max_compression: float = 0.02,
        min_unit_tokens: int = 1,
        max_repeats: int = 5,
        min_repeat_share: float = 0.3,
        name: str = "repetition",
    ) -> None:
        self.min_chars = int(min_chars)
        self.max_compression = float(max_compression)
        self.code_max_compression = float(code_max_compression)
        self.min_unit_tokens = int(min_unit_tokens)
        self.max_repeats = int(max_repeats)
        self.min_repeat_share = float(min_repeat_share)
        self.name = name

    def __repr__(self) -> str:
        return f"RepetitionGate(name={self.name!r}, max_compression={self.max_compression})"

    def check(self, response: str, fields: Mapping[str, str]) -> str | None:
        reason = self._reason(response)
        if reason is None or asks_for_repetition(fields) or asked_verbatim(response, fields):
            return None
        return reason

    def _reason(self, response: str) -> str | None:
        if len(response) < self.min_chars and (
            len(_SENTENCE_SPLIT_RE.findall(response)) + 1 < self.max_repeats
        ):
            # Too short for the ratio, and fewer sentences than a unit must repeat (each run of
            # separators splits one more off): neither rule can fire, so the code test, which
            # only picks between them, is skipped. Most answers are this.
            return None
        code = _looks_like_code(response)
        if len(response) >= self.min_chars:
            ratio = compression_ratio(response)
            if ratio < (self.code_max_compression if code else self.max_compression):
                return (
                    f"degenerate repetition: {len(response)} characters compress to "
                    f"{ratio:.1%} of their size"
                )
        if code:
            return None  # records and code repeat lines by nature ("}", '"role": "admin",')
        unit, count, share = _repeated_units(response, self.min_unit_tokens)
        if count >= self.max_repeats and share >= self.min_repeat_share:
            return f"degenerate repetition: {_quote(unit, 60)} repeated {count} times"
        return None


# --- runaway length ------------------------------------------------------------------------------

_ONE_LINE_CUES = Alternatives.of(
    re.compile(
        r"\b(?:in (?:one|a single|a) (?:sentence|word|line|phrase)|one[- ](?:word|sentence|line)"
        r"|single (?:word|sentence)|in (?:a few|few|two|three) words|yes or no|tl;? ?dr"
        r"|just the (?:answer|number|name)|only the (?:answer|number|name)"
        r"|en una (?:frase|palabra|oración)|en une (?:phrase)|en un mot|in einem (?:satz|wort)"
        r"|одним (?:предложением|словом))\b|一句话|一个词|一言で|一文で",
        re.IGNORECASE,
    )
)
_BRIEF_CUES = Alternatives.of(
    re.compile(
        r"\b(?:briefly|brief|concise|concisely|succinct|succinctly|short answer|keep it short"
        r"|in short|brevemente|breve|brièvement|kurz|kurzgefasst|кратко|коротко|resumidamente"
        r"|in breve)\b|简要|简短|简单地|簡潔|簡単に",
        re.IGNORECASE,
    )
)
_COUNT_RE = Alternatives.of(
    re.compile(
        r"\b(?:in|under|within|at most|no more than|not more than|maximum of|max|fewer than"
        r"|less than|up to)\s+(\d{1,5})\s+"
        r"(words?|sentences?|lines?|characters?|chars?|paragraphs?)\b",
        re.IGNORECASE,
    )
)
_CHARS_PER_UNIT = {"word": 15, "sentence": 300, "line": 200, "character": 2, "char": 2}
_CHARS_PER_UNIT["paragraph"] = 1500


_LEAST_COUNT_CHARS = 200
"""The least limit an explicit count in the query sets ("in at most 2 words")."""


def length_limit(
    fields: Mapping[str, str],
    *,
    ratio: float = 20.0,
    min_chars: int = 2000,
    brief_chars: int = 3000,
    one_line_chars: int = 600,
    max_chars: int | None = None,
) -> tuple[int, str] | None:
    """The longest acceptable response for these fields, and why; ``None`` when nothing sets one.

    The first rule that applies, in order:

    1. a reference answer: ``max(min_chars, ratio * len(reference))``;
    2. an explicit maximum in the query or instruction ("in at most 50 words", "under 3
       sentences"): twice the size that allows (15 characters a word, 300 a sentence, 200 a
       line, 1500 a paragraph), and at least 200;
    3. a one-line cue ("in one sentence", "one word", "yes or no", "TL;DR"): ``one_line_chars``;
    4. a brevity cue ("briefly", "concise", "short answer", in a few languages):
       ``brief_chars``;
    5. otherwise ``max_chars`` if set, else no limit (a long answer may be what was asked).
    """
    ref = fields.get("reference_response")
    if ref and ref.strip():
        return max(min_chars, int(ratio * len(ref))), f"{ratio:g}x the reference's length"
    asked = " ".join(fields.get(f) or "" for f in _ASKING_FIELDS)
    asked = unicodedata.normalize("NFKC", asked)
    m = _COUNT_RE.search(asked)
    if m:
        unit = m.group(2).lower().rstrip("s")
        limit = max(_LEAST_COUNT_CHARS, 2 * int(m.group(1)) * _CHARS_PER_UNIT[unit])
        return limit, f"the query asks for {m.group(0).strip()!r}"
    m = _ONE_LINE_CUES.search(asked)
    if m:
        return one_line_chars, f"the query asks for {m.group(0).strip()!r}"
    m = _BRIEF_CUES.search(asked)
    if m:
        return brief_chars, f"the query asks for {m.group(0).strip()!r}"
    if max_chars is not None:
        return max_chars, "the configured maximum"
    return None


class LengthGate:
    """The response is far longer than the query calls for (see :func:`length_limit`).

    A reference answer sets the budget (20 times its length, at least 2000 characters); without
    one, only an explicit or implied request for brevity does, or ``max_chars``. Long answers to
    open questions are never gated. Off by default for correctness (reasoning traces before a
    short final answer are legitimately long) and harmfulness; on for relevance, instruction
    following and the embedding graders, whose model reads only the first ~256 tokens, so text
    past that is never seen.

    Args:
        ratio, min_chars, brief_chars, one_line_chars, max_chars: see :func:`length_limit`.
        name: the gate name reported in metadata.
    """

    def __init__(
        self,
        *,
        ratio: float = 20.0,
        min_chars: int = 2000,
        brief_chars: int = 3000,
        one_line_chars: int = 600,
        max_chars: int | None = None,
        name: str = "length",
    ) -> None:
        self.ratio = float(ratio)
        self.min_chars = int(min_chars)
        self.brief_chars = int(brief_chars)
        self.one_line_chars = int(one_line_chars)
        self.max_chars = None if max_chars is None else int(max_chars)
        self.name = name

    def __repr__(self) -> str:
        return f"LengthGate(name={self.name!r}, ratio={self.ratio:g}, min_chars={self.min_chars})"

    def _least_limit(self) -> float:
        """The smallest limit :func:`length_limit` can give with these settings: a reference's
        is at least ``min_chars``, an explicit count's at least :data:`_LEAST_COUNT_CHARS`."""
        least = min(self.min_chars, _LEAST_COUNT_CHARS, self.one_line_chars, self.brief_chars)
        return least if self.max_chars is None else min(least, self.max_chars)

    def check(self, response: str, fields: Mapping[str, str]) -> str | None:
        if len(response) <= self._least_limit():
            return None  # within every limit a query could set: its cues need not be read
        limit = length_limit(
            fields,
            ratio=self.ratio,
            min_chars=self.min_chars,
            brief_chars=self.brief_chars,
            one_line_chars=self.one_line_chars,
            max_chars=self.max_chars,
        )
        if limit is None or len(response) <= limit[0]:
            return None
        return f"the response has {len(response)} characters, over {limit[0]} ({limit[1]})"
