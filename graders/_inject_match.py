"""How the ``addresses_grader`` gate matches phrases: folded text and anchored phrase families.

One idea: the matching machinery under :mod:`graders._inject_gate`. Text is folded (:func:`fold`:
NFKC, casefold, punctuation to spaces, Latin diacritics dropped, Cyrillic or Greek lookalikes in
Latin words mapped to Latin) and each phrase family compiles to one regex plus the literal anchors
derived from its own patterns, so the regex only runs on sentences holding an anchor. A
:class:`_Family` also knows when a match is a description, a report or a negation rather than an
order to the grader. The phrase tables themselves are in :mod:`graders._inject_phrases` and
:mod:`graders._inject_claims`.

The anchors themselves are read from the patterns by :mod:`graders._anchors`, and the screen that
skips a sentence holding none (shared beyond this gate) is :mod:`graders._anchor_screen`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from graders._anchor_screen import _CJK_CHARS, _AnchorScan, _owning, _Screened, alternation_matches
from graders._anchors import _family_anchors
from graders._pregate_text import normalize_for_gate
from graders._text import INVISIBLE

__all__ = ["fold"]


# --- normalisation -------------------------------------------------------------------------------

_INVISIBLE = INVISIBLE
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}\U000e0000-\U000e007f]")
_MARKS_RE = re.compile("[\u0300-\u036f]")
_LATIN = frozenset("abcdefghijklmnopqrstuvwxyz")
_LOOKALIKES = str.maketrans(
    "аеорсухіјѕԁһӏԛԝϲοαειντκρυχ",  # Cyrillic, then Greek
    "aeopcyxijsdhlqwcoaeivtkpux",
)
"""Cyrillic and Greek letters drawn like Latin ones, used to dodge a phrase list (``ignоre``)."""
_SMALL_CAPS = str.maketrans(
    "ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘꞯʀꜱᴛᴜᴠᴡʏᴢ",
    "abcdefghijklmnopqrstuvwyz",
)
"""Small capitals, which NFKC leaves alone: ``ɪɢɴᴏʀᴇ ᴘʀᴇᴠɪᴏᴜꜱ`` reads as plain words."""


def _strip_marks(text: str) -> str:
    """Drop Latin combining diacritics (``rúbrica`` → ``rubrica``, ``й`` → ``и``); keep kana."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", _MARKS_RE.sub("", unicodedata.normalize("NFD", text)))


def _unconfuse(word: str) -> str:
    if word.isascii() or _LATIN.isdisjoint(word):
        return word
    return word.translate(_LOOKALIKES)


def fold(text: str) -> str:
    """The form phrases are matched on: :func:`normalize_for_gate`, no diacritics, no lookalikes.

    Words are separated by single spaces, so patterns use ``" "`` between words. A word mixing
    Latin letters with Cyrillic or Greek lookalikes is mapped to Latin; a whole Russian word is
    left alone.
    """
    if not text.isascii():
        text = text.translate(_SMALL_CAPS)
    t = _strip_marks(normalize_for_gate(text))
    if t.isascii():
        return t
    return " ".join(_unconfuse(w) for w in t.split(" "))


def _p(*alternatives: str) -> str:
    """A non-capturing alternation of regex fragments (written in folded form)."""
    return "(?:" + "|".join(alternatives) + ")"


def _words(words: str) -> list[str]:
    """A whitespace-separated word list; ``_`` stands for a space inside one entry."""
    return [w.replace("_", " ") for w in words.split()]


def _any(words: str) -> str:
    """A non-capturing alternation of :func:`_words` (entries may be regex fragments)."""
    return "(?:" + "|".join(_words(words)) + ")"


class _Matcher:
    """A family's regex, the word alternatives it is made of, and literal anchors one of which
    every match contains.

    A big alternation costs Python's regex engine a try of every alternative at every word,
    which dominates the check's cost. Every match contains one of a few literal strings
    (``ignore``, ``instruction``, ``rubric``, ``marks``...), derived from the patterns
    themselves (:func:`_anchors`), so they cannot drift from them; ``None`` means "run the
    regex always". Two exact screens follow from them: a sentence holding none of the
    family's anchors cannot match, so it is skipped; in one that holds some, an alternative
    owning none of them cannot match there either, so only the others run, each as its own
    regex, and their matches merge into those of the whole alternation (:meth:`matches`).
    """

    def __init__(self, words: Sequence[str], cjk: Sequence[str] = ()) -> None:
        parts = [r"(?<!\w)" + _p(*words) + r"(?!\w)"]
        if cjk:
            # The lookahead fails at once on other scripts, so the CJK alternatives cost nothing
            # at the positions of a Latin or Cyrillic text (and vice versa: the lookbehind above).
            parts.append(f"(?=[{_CJK_CHARS}])" + _p(*cjk))
        self.pattern = re.compile("|".join(parts))
        self._words = tuple(words)
        self._alternatives: list[re.Pattern[str] | None] = [None] * len(words)
        self._word_anchors = tuple(_family_anchors([w]) for w in words)
        known = [a for a in self._word_anchors if a is not None]
        self.anchors: frozenset[str] | None = (
            frozenset().union(*known) if len(known) == len(words) else None
        )
        self._scan = None if self.anchors is None else _AnchorScan(self.anchors, frozenset({self}))
        self._owners: dict[str, tuple[int, ...]] = {}
        self._chosen_memo: dict[frozenset[str], tuple[re.Pattern[str], ...]] = {}

    @property
    def anchor_re(self) -> re.Pattern[str] | None:
        """Matches where any anchor occurs: the anchors as a trie-shaped regex."""
        return None if self._scan is None else self._scan.regex

    def screen(self, sentences: Sequence[str]) -> _Screened:
        """The sentences holding one of this family's anchors (all of them without anchors)."""
        if self._scan is None:
            return _Screened(sentences, None, frozenset({self}))
        return self._scan(sentences)

    def runs(self, sentences: Sequence[str]) -> list[tuple[str, tuple[re.Pattern[str], ...]]]:
        """The sentences that may match, each with the regexes to run on it
        (:func:`~graders._anchor_screen.alternation_matches`): the alternatives owning one of its
        anchors, or the whole :attr:`pattern` unscreened.

        ``sentences`` may come screened (:class:`_FamilyScreen`): then they are not scanned
        again.
        """
        screened = sentences
        if not isinstance(screened, _Screened) or self not in screened.covers:
            screened = self.screen(sentences)
        hits = screened.hits
        if hits is None:
            whole = (self.pattern,)
            return [(s, whole) for s in screened]
        whole = (self.pattern,)
        return [
            (s, regexes if len(regexes) <= _MERGED_MAX else whole)
            for s, found in zip(screened, hits, strict=True)
            if (regexes := self._chosen(found))
        ]

    def matches(self, sentences: Sequence[str]) -> Iterator[tuple[str, re.Match[str]]]:
        """Each sentence's matches, in order, as :attr:`pattern` ``.finditer`` finds them."""
        for s, regexes in self.runs(sentences):
            for m in alternation_matches(s, regexes):
                yield s, m

    def _chosen(self, hits: frozenset[str]) -> tuple[re.Pattern[str], ...]:
        """The alternatives owning an anchor that starts with one of ``hits``, in order
        (remembered: the same few anchors recur from sentence to sentence)."""
        chosen = self._chosen_memo.get(hits)
        if chosen is None:
            owners = self._owners
            indices: set[int] = set()
            for hit in hits:
                own = owners.get(hit)
                if own is None:
                    own = owners[hit] = _owning(hit, self._word_anchors)
                indices.update(own)
            chosen = tuple(self._alternative(i) for i in sorted(indices))
            if len(self._chosen_memo) >= _CHOSEN_MEMO_SIZE:
                self._chosen_memo.clear()
            self._chosen_memo[hits] = chosen
        return chosen

    def _alternative(self, i: int) -> re.Pattern[str]:
        """The ``i``-th word alternative alone, between the same word boundaries (compiled on
        first use: most never run)."""
        rx = self._alternatives[i]
        if rx is None:
            rx = self._alternatives[i] = re.compile(rf"(?<!\w)(?:{self._words[i]})(?!\w)")
        return rx


_CHOSEN_MEMO_SIZE = 4096
_MERGED_MAX = 4
"""More alternatives than this in a sentence run as the whole alternation, one scan: merging
many would scan a long sentence once for each (a text stuffed with the family's words)."""


class _FamilyScreen:
    """The sentences any of several phrase families may match: one scan for all of them.

    Each family's own screen (:meth:`_Matcher.screen`) scans every sentence for its own
    anchors, so on a long answer every family pays a scan of the whole text, mostly to find
    nothing. The union of their anchors, as one trie regex, picks the sentences that hold any
    anchor in a single scan, with the anchors found in each, from which each family picks the
    alternatives to run. Exact: a sentence left out holds no family's anchor, so no family's
    regex could match it. With CJK text (whose anchors are not literal) or a family without
    anchors, every sentence is kept, as each family's own screen would keep them.
    """

    def __init__(self, families: Sequence[_Family]) -> None:
        matchers = frozenset(f.matcher for f in families)
        anchors = [m.anchors for m in matchers]
        self._covers = matchers
        self._scan = (
            None
            if any(a is None for a in anchors)
            else _AnchorScan(frozenset().union(*(a for a in anchors if a is not None)), matchers)
        )

    @property
    def anchor_re(self) -> re.Pattern[str] | None:
        return None if self._scan is None else self._scan.regex

    def __call__(self, sentences: Sequence[str]) -> _Screened:
        if self._scan is None:
            return _Screened(sentences, None, self._covers)
        return self._scan(sentences)


def _compile_family(words: Sequence[str], cjk: Sequence[str] = ()) -> _Matcher:
    """One regex: ``words`` patterns between word boundaries, ``cjk`` ones anywhere.

    Pattern sources go through the same diacritic folding as the text, so they can be written
    with accents (``rúbrica``) and still match.
    """
    return _Matcher([_strip_marks(w) for w in words], cjk)


_W = r"(?:\w++ )"
"""One filler word (possessive, so a long word never backtracks)."""

# --- phrase families -----------------------------------------------------------------------------


_NEG_WORDS = frozenset(
    _words(
        "not never cannot t no nor n ne nunca jamas nicht nie niemals kein keine не нельзя "
        "никогда ни without sin sans ohne"
    )
)
_NEG_CJK = frozenset("不别別勿莫没沒未非")
_NEG_AFTER_RE = re.compile(
    r" ?(?:nicht|pas)(?!\w)|"
    + _any("しない しません せず するな できな できません してはいけ してはなら ないで ません ない")
)
_CUE_RE = re.compile(
    r"(?<!\w)(?:"
    + _any(
        "such_as like e_g eg i_e for_example for_instance examples? instance says? saying said "
        r"tells? telling told instruct\w* asks? asking trick\w* contain\w* includ\w* phrases? "
        r"strings? text payloads? commands? attack\w* adversar\w* malicious inject\w* hidden "
        r"hides? "
        r"embed\w* smuggl\w* writ\w* append\w* insert\w* adds? adding known_as called patterns? "
        r"techniques? tr(?:y|ies|ying) attempt\w* might may could would can quote como "
        r"por_ejemplo p_ej ejemplos? frases? texto comme par_exemple exemples? texte wie "
        r"zum_beispiel z_b beispiel\w* satz например как типа фраз\w* текст\w*"
    )
    + r")(?!\w)|"
    + _any("例如 比如 譬如 像是 例えば たとえば のような")
)
"""Words that *report* a phrase rather than say it (used only on queries about injections)."""


_DESCRIPTIVE_PREV = frozenset(
    _words(
        "they he she it we who which that people users students teachers attackers models "
        "will would can could may might often usually typically sometimes always generally "
        "a ai as avons avez ont avait avaient aura ete est sont etait "
        "ha han he has hemos habia habian hat habe haben hatte hatten wird werden wurde wurden"
    )
)
"""A token before the verb that makes it a description ("teachers often give full marks", "will
award", French "a ignoré" folded to "a ignore"), not an order to the grader."""
_ADVERBS = frozenset(_words("just simply safely also then really easily probably usually"))
_ORDER_MODALS = frozenset(_words("will must shall should"))
_REPORTING_VERBS = frozenset(
    _words(
        "told asked instructed trained designed programmed supposed forced ordered tries tried "
        "refuses refused wants wanted manages managed able unable attempts attempted how learn "
        "learns learned"
    )
)
"""Verbs before "to ...": the robot "is told to ignore its previous instructions"."""


@dataclass(frozen=True)
class _Family:
    """A family of phrases addressed to the grader, in every covered language.

    ``imperative``: the family is made of orders, so a match whose verb has another subject
    (:data:`_DESCRIPTIVE_PREV`, or "told to", "asked to") is a description and is skipped.
    """

    name: str
    label: str
    matcher: _Matcher
    imperative: bool = False

    def first(self, sentences: Iterable[str], *, reported_ok: bool = False) -> str | None:
        """The first match that is neither negated nor (with ``reported_ok``) reported."""
        if not isinstance(sentences, (_Screened, list, tuple)):
            sentences = list(sentences)
        for s, regexes in self.matcher.runs(sentences):
            for m in alternation_matches(s, regexes):
                if _negated(s, m) or (self.imperative and _described(s, m)):
                    continue
                if reported_ok and _CUE_RE.search(s, 0, m.start()):
                    continue
                return m.group(0)
        return None


def _described(s: str, m: re.Match[str]) -> bool:
    before = s[max(0, m.start() - 60) : m.start()].split()[-4:]
    while before and before[-1] in _ADVERBS:
        before.pop()  # "you can just ignore all of the above"
    before = before[-2:]
    if not before:
        return False
    if before[-1] in _DESCRIPTIVE_PREV:
        # "you will rate ..." and "you must give ..." are orders; "you can accept ..." is not
        return not (len(before) == 2 and before[0] == "you" and before[1] in _ORDER_MODALS)
    return before[-1] == "to" and len(before) == 2 and before[0] in _REPORTING_VERBS


def _negated(s: str, m: re.Match[str]) -> bool:
    before = s[max(0, m.start() - 24) : m.start()]
    if any(t in _NEG_WORDS for t in before.split()[-2:]):
        return True
    if any(c in _NEG_CJK for c in before[-2:]):
        return True
    return bool(_NEG_AFTER_RE.match(s, m.end()))
