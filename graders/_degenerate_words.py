"""Word lists and query cues shared by the degenerate-text gates.

One idea: the vocabulary the gates in :mod:`graders._degenerate` and :mod:`graders._non_answer`
judge text by: function words per language (a sentence is full of them, a keyword dump has
almost none), filler words, a light stemmer, a CJK test, and what the query asks for (a
repetition or a transformation of its own text, which exempts a response from some gates).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

from graders._anchor_screen import Alternatives
from graders._master_key import META_WORDS, STOP_WORDS
from graders._pregate_text import per_text
from graders._restate import _FRAMING_WORDS

__all__ = ["FUNCTION_WORDS", "FUNCTION_WORDS_BY_LANGUAGE", "asks_for_repetition"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


FUNCTION_WORDS_BY_LANGUAGE: dict[str, frozenset[str]] = {
    "en": _words(
        """
        a an the of to in on at by for with from into onto about as than then so and or nor but
        if is are was were be been being am do does did done has have had having can could will
        would shall should may might must not no it its this that these those there here which
        who whom whose what when where why how i you he she we they me him her us them my your
        his our their s t ll ve re d m also very just only all each any some such own same other
        more most both up out over under after before while because through during between again
        once too
        """
    ),
    "es": _words(
        """
        el la los las lo un una unos unas de del y e o u en que es son fue era por para con sin
        se su sus al como más mas pero muy ya también este esta esto ese esa hay le les nos
        """
    ),
    "fr": _words(
        """
        le la les un une des du de et ou en est sont été être avec dans sur ce cette ces il elle
        ils elles ne pas au aux qui que mais plus se sa son ses leur je tu nous vous c l qu n j y
        """
    ),
    "de": _words(
        """
        der die das den dem des ein eine einen einem einer und oder ist sind war zu mit von im
        in auf für nicht es sich auch als wie dass bei aus nach noch nur wird werden kann hat
        haben ich
        """
    ),
    "it": _words(
        "il lo la gli le un una di e è che per con non si della delle dei al alla nel uno sono"
    ),
    "pt": _words(
        "o a os as um uma de do da dos das e é que em no na nos nas não com à ao se são foi por"
    ),
    "ru": _words(
        """
        и в во не на что с со по это как к из у о об а но за от для он она оно они мы вы я же
        бы то так его ее её их был была было были есть ли или если
        """
    ),
    "nl": _words("de het een en van in is op te dat die niet met voor zijn"),
    "pl": _words("i w na z się jest to nie że do jak ale od po co"),
    "tr": _words("ve bir bu da de için ile çok ne mi"),
    "id": _words("yang dan di ini itu dengan untuk dari ke tidak ada adalah"),
    "vi": _words(
        """
        và là của các những có không được cho với này một trong thì mà để từ đã sẽ đang cũng như
        hơn nhưng vì nên khi đó người rất
        """
    ),
    "hi": _words("है हैं का की के को में से पर और या यह वह इस उस एक ने भी तो था थी थे हो कि जो नहीं"),
    "bn": _words("এবং ও বা এই সেই একটি যে কি না হয় করে থেকে জন্য দিয়ে মধ্যে তার এর চেয়ে হল আর"),
    "ar": _words("في من على إلى عن أن هذا هذه التي الذي و أو لا ما هو هي كان مع"),
}
"""The commonest function words of fifteen languages: a third to a half of the words of any
sentence in them, and almost none of a keyword dump. A language that writes with spaces and is
missing here reads as 0% function words, and a long sentence of it as a dump: add it."""

FUNCTION_WORDS: frozenset[str] = frozenset().union(*FUNCTION_WORDS_BY_LANGUAGE.values())
"""All of :data:`FUNCTION_WORDS_BY_LANGUAGE` together."""

_TASK_WORDS = _words(
    """
    name list describe define give tell show write state identify summarize summarise outline
    discuss compare mention provide please brief short concise
    """
)
"""Imperatives and softeners of a request: "Name the capital of France" asks, it says nothing."""

_EN_FILLER = (
    STOP_WORDS | META_WORDS | _FRAMING_WORDS | _TASK_WORDS | FUNCTION_WORDS_BY_LANGUAGE["en"]
)


def _filler_for(tokens: Sequence[str]) -> frozenset[str]:
    """English filler, plus the function words of every other language the text is written in.

    A language counts when at least two of its distinct function words occur. One alone is more
    likely a content word that happens to be spelt like one ("Au", the symbol of gold, is French
    "au"; "die" is German "the"), and an answer must not lose its one content word to that.
    """
    counts: dict[str, int] = {}
    for token in set(tokens):
        for lang in _LANGUAGES_OF.get(token, ()):
            counts[lang] = counts.get(lang, 0) + 1
    langs = tuple(sorted(lang for lang, n in counts.items() if n >= 2))
    return _filler_in(langs) if langs else _EN_FILLER


_LANGUAGES_OF: dict[str, tuple[str, ...]] = {}
"""Each function word of a language other than English, to the languages it is one of: a text's
languages are counted from its own words, not by intersecting it with every list."""
for _lang, _function_words in FUNCTION_WORDS_BY_LANGUAGE.items():
    if _lang != "en":
        for _w in _function_words:
            _LANGUAGES_OF[_w] = (*_LANGUAGES_OF.get(_w, ()), _lang)


@lru_cache(maxsize=64)
def _filler_in(langs: tuple[str, ...]) -> frozenset[str]:
    return _EN_FILLER.union(*(FUNCTION_WORDS_BY_LANGUAGE[lang] for lang in langs))


_SUFFIXES = ("ing", "ed", "ly", "es", "s")


def _stem(token: str) -> str:
    """A crude English stem ("explained", "explains", "explaining" → "explain"; "changing",
    "change" → "chang"; "briefly" → "brief"), so a reworded echo cannot hide behind inflection.
    Only words over five letters lose a suffix; a final "e" goes from words over four.

    Remembered for words up to 40 characters (a bounded table): the gates stem every word of
    every response, and words recur."""
    stem = _STEMS.get(token)
    if stem is None:
        stem = token
        if len(stem) > 5 and not stem.endswith("ss"):
            for suffix in _SUFFIXES:
                if stem.endswith(suffix):
                    stem = stem[: -len(suffix)]
                    break
        if len(stem) > 4 and stem.endswith("e"):
            stem = stem[:-1]
        if len(token) <= 40:
            if len(_STEMS) >= 65536:
                _STEMS.clear()
            _STEMS[token] = stem
    return stem


_STEMS: dict[str, str] = {}


_EN_FILLER_STEMS = frozenset(map(_stem, _EN_FILLER))


def _content_tokens(tokens: Sequence[str], filler: frozenset[str] | None = None) -> list[str]:
    """The tokens that are not filler in the text's own languages (see :func:`_filler_for`, or
    ``filler`` when the caller judged the languages on a larger text); a token whose stem is an
    English filler word's stem is filler too."""
    filler = _filler_for(tokens) if filler is None else filler
    return [t for t in tokens if t not in filler and _stem(t) not in _EN_FILLER_STEMS]


def _content_stems(tokens: Sequence[str]) -> set[str]:
    """Stems of :func:`_content_tokens`: what a text says, whatever its inflection. Each token
    is stemmed once (the near-copy gate reads every response and query through this)."""
    filler = _filler_for(tokens)
    stems = set()
    for t in tokens:
        if t not in filler:
            stem = _stem(t)
            if stem not in _EN_FILLER_STEMS:
                stems.add(stem)
    return stems


_CJK_RE = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def _mostly_cjk(text: str) -> bool:
    """At least a fifth of the text's letters are CJK."""
    if text.isascii():
        return False
    letters = sum(map(str.isalpha, text))
    return bool(letters) and sum(map(str.isalpha, _CJK_RE.findall(text))) >= 0.2 * letters


# --- what the query asks for ---------------------------------------------------------------------

_REPEAT_TASK_RE = Alternatives.of(
    re.compile(
        r"\b(?:repeat\w*|again and again|over and over|(?:\d+|two|three|four|five|six|seven|eight"
        r"|nine|ten|twenty|fifty|hundred|a hundred|thousand) times|copy|echo|verbatim|loop|chant"
        r"|mantra)\b"
        r"|重复|遍|繰り返",
        re.IGNORECASE,
    )
)
_TRANSFORM_RE = Alternatives.of(
    re.compile(
        r"\b(?:sort|sorted|alphabeti[sz]e|reverse|rearrange|arrange|order|reorder|rank|shuffle"
        r"|dedupe|deduplicate|fill in|complete the|continue|finish the)\b",
        re.IGNORECASE,
    )
)
_ASKING_FIELDS = ("query", "instruction")


def asks_for_repetition(fields: Mapping[str, str]) -> bool:
    """Whether the query or instruction asks for repeated text ("write 'hello' ten times")."""
    return any(_asks_repetition(fields.get(f) or "") for f in _ASKING_FIELDS)


@per_text
def _asks_repetition(text: str) -> bool:
    return _REPEAT_TASK_RE.search(text) is not None
