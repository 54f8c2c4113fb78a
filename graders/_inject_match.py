"""How the ``addresses_grader`` gate matches phrases: folded text and anchored phrase families.

One idea: the matching machinery under :mod:`graders._inject_gate`. Text is folded (:func:`fold`:
NFKC, casefold, punctuation to spaces, Latin diacritics dropped, Cyrillic or Greek lookalikes in
Latin words mapped to Latin) and each phrase family compiles to one regex plus the literal anchors
derived from its own patterns, so the regex only runs on sentences holding an anchor. A
:class:`_Family` also knows when a match is a description, a report or a negation rather than an
order to the grader. The phrase tables themselves are in :mod:`graders._inject_phrases` and
:mod:`graders._inject_claims`.

The anchors themselves are read from the patterns by :mod:`graders._anchors`, and the screen that
skips a sentence holding none (shared beyond this gate) is :mod:`graders._anchor_screen`. Most
sentences are words and spaces after folding; their screen reads the anchors that start a word
(tried only at spaces), and an alternative owning one runs only where the sentence also holds a
literal of each of its other word lists (:func:`~graders._anchors._need_clauses`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from graders import _anchor_screen
from graders._anchor_screen import (
    _CJK_CHARS,
    _AnchorScan,
    _LedScan,
    _owning,
    _plain_words,
    _Screened,
    alternation_matches,
    compiled_needs,
)
from graders._anchors import _word_literals
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
_SMALL_CAPS_RE = re.compile("[" + "".join(map(chr, _SMALL_CAPS)) + "]")
"""The characters :data:`_SMALL_CAPS` changes."""


def _ascii_fold_table() -> bytes:
    """Each ASCII byte as :func:`normalize_for_gate` reads it (a letter or digit in lower case,
    anything else a space), for :func:`fold`'s ASCII path.

    Why: ``str.translate`` looks each character up in a dict, which cost most of folding a
    short sentence; ``bytes.translate`` reads a table. Taken from :func:`normalize_for_gate`
    itself, a character at a time, so the two cannot drift apart.
    """
    table = bytearray(range(256))
    for b in range(128):
        read = normalize_for_gate(chr(b)) or " "
        if len(read) != 1 or not read.isascii():  # pragma: no cover - a character-wise fold
            raise RuntimeError(f"normalize_for_gate({chr(b)!r}) is {read!r}: not one character")
        table[b] = ord(read)
    return bytes(table)


_ASCII_FOLD = _ascii_fold_table()


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
    if text.isascii():
        return " ".join(text.encode("ascii").translate(_ASCII_FOLD).decode("ascii").split())
    if _SMALL_CAPS_RE.search(text):  # the table maps a character at a time in Python
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


_Needs = tuple[Callable[[str], object], ...]


class _Alternative:
    """An alternative's regex and the checks that a sentence it can match passes
    (:func:`~graders._anchors._word_literals`): read with a space put before it (``led``), or as
    it is (:meth:`plain`, compiled on first use: most sentences are read the first way)."""

    __slots__ = ("_clauses", "_plain", "led", "regex")

    def __init__(
        self, regex: re.Pattern[str], plain: tuple[frozenset[str], ...], led: _Needs
    ) -> None:
        self.regex = regex
        self.led = led
        self._clauses = plain
        self._plain: _Needs | None = None

    def plain(self) -> _Needs:
        if self._plain is None:
            self._plain = compiled_needs(self._clauses)
        return self._plain


_ChosenMemo = dict[frozenset[str], tuple[_Alternative, ...]]


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
        self._alternatives: list[_Alternative | None] = [None] * len(words)
        literals = [_word_literals(w) for w in words]  # one parse of each
        self._word_anchors = tuple(w.anchors for w in literals)
        self.led_anchors = tuple(w.led for w in literals)
        """Each word alternative's anchors that start a word (:func:`_led_anchors`)."""
        self._needs = tuple((w.needs, w.led_needs) for w in literals)
        known = [a for a in self._word_anchors if a is not None]
        self.anchors: frozenset[str] | None = (
            frozenset().union(*known) if len(known) == len(words) else None
        )
        self._scan: _AnchorScan | None = None  # built on first use: the families' screen is
        self._owners: tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]] = ({}, {})
        self._chosen_memo: tuple[_ChosenMemo, _ChosenMemo] = ({}, {})

    def _plain_scan(self) -> _AnchorScan | None:
        """The scan of this family's anchors alone (``None`` without anchors), built on first
        use: sentences come screened for all families (:class:`_FamilyScreen`)."""
        if self._scan is None and self.anchors is not None:
            self._scan = _AnchorScan(self.anchors, frozenset({self}))
        return self._scan

    @property
    def anchor_re(self) -> re.Pattern[str] | None:
        """Matches where any anchor occurs: the anchors as a trie-shaped regex."""
        scan = self._plain_scan()
        return None if scan is None else scan.regex

    def screen(self, sentences: Sequence[str]) -> _Screened:
        """The sentences holding one of this family's anchors (all of them without anchors)."""
        scan = self._plain_scan()
        if scan is None:
            return _Screened(sentences, None, frozenset({self}))
        return scan(sentences)

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
        if screened.plans is not None:
            return screened.plans.get(self, [])
        hits = screened.hits
        if hits is None:
            whole = (self.pattern,)
            return [(s, whole) for s in screened]
        return [
            (s, regexes)
            for s, found in zip(screened, hits, strict=True)
            if (regexes := self.runnable(s, found))
        ]

    def runnable(
        self, s: str, found: frozenset[str], spaced: str | None = None
    ) -> tuple[re.Pattern[str], ...]:
        """The regexes to run on sentence ``s`` holding the anchors ``found`` (the shortest at
        each position, :class:`~graders._anchor_screen._AnchorScan`; with ``spaced``, the
        sentence with a space put before it, of :attr:`led_anchors` there): the alternatives
        owning one of them whose other literals the sentence holds too, or the whole
        :attr:`pattern` when many remain; ``()`` when none can match."""
        return _runnable(self, self._chosen(found, spaced is not None), s, spaced)

    def matches(self, sentences: Sequence[str]) -> Iterator[tuple[str, re.Match[str]]]:
        """Each sentence's matches, in order, as :attr:`pattern` ``.finditer`` finds them."""
        for s, regexes in self.runs(sentences):
            for m in alternation_matches(s, regexes):
                yield s, m

    def _chosen(self, hits: frozenset[str], led: bool = False) -> tuple[_Alternative, ...]:
        """The alternatives owning an anchor (of :attr:`led_anchors` with ``led``) that starts
        with one of ``hits``, in order (remembered: the same few anchors recur from sentence to
        sentence)."""
        memo = self._chosen_memo[led]
        chosen = memo.get(hits)
        if chosen is None:
            owners = self._owners[led]
            anchor_sets = self.led_anchors if led else self._word_anchors
            indices: set[int] = set()
            for hit in hits:
                own = owners.get(hit)
                if own is None:
                    own = owners[hit] = _owning(hit, anchor_sets)
                indices.update(own)
            chosen = tuple(self._alternative(i) for i in sorted(indices))
            if len(memo) >= _CHOSEN_MEMO_SIZE:
                memo.clear()
            memo[hits] = chosen
        return chosen

    def _alternative(self, i: int) -> _Alternative:
        """The ``i``-th word alternative alone, between the same word boundaries, with what
        every match of it contains (:func:`~graders._anchors._need_clauses`); built on first
        use: most never run."""
        alt = self._alternatives[i]
        if alt is None:
            rx = re.compile(rf"(?<!\w)(?:{self._words[i]})(?!\w)")
            plain, led = self._needs[i]
            alt = self._alternatives[i] = _Alternative(rx, plain, compiled_needs(led))
        return alt


_CHOSEN_MEMO_SIZE = 4096
_NEEDS_MAX_ALTERNATIVES = 8
"""More alternatives than this in a sentence run as the whole alternation, unchecked: a
sentence stuffed with a family's words would be scanned for each one's literals."""
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
        self._covers = matchers
        self._matchers = tuple(dict.fromkeys(f.matcher for f in families))
        self._choice_memo: tuple[dict[frozenset[str], tuple[_Choice, ...]], ...] = ({}, {})
        anchors = [m.anchors for m in self._matchers]
        self._anchors = (
            None
            if any(a is None for a in anchors)
            else frozenset().union(*(a or () for a in anchors))
        )
        self._scan: _AnchorScan | None = None  # built on first use: most text is screened by
        sets = [a for m in self._matchers for a in m.led_anchors]
        usable = all(a is not None for a in sets)
        self._led = _LedScan(frozenset().union(*(a or () for a in sets))) if usable else None

    def _plain_scan(self) -> _AnchorScan | None:
        """The scan of every family's anchors (``None`` when a family has none), built on first
        use: only a sentence that is not words and spaces, or a CJK one, needs it."""
        if self._scan is None and self._anchors is not None:
            self._scan = _AnchorScan(self._anchors, self._covers)
        return self._scan

    @property
    def anchor_re(self) -> re.Pattern[str] | None:
        scan = self._plain_scan()
        return None if scan is None else scan.regex

    def __call__(self, sentences: Sequence[str]) -> _Screened:
        """The sentences some family may match, each family's runs on them planned
        (:meth:`_Matcher.runnable`), so that each family reads its plan instead of looking
        again, and a text no family can match leaves none (its detectors stop at once).

        A sentence of word characters and single spaces (what :func:`fold` leaves of most
        text) is screened by the anchors that start a word (:attr:`_Matcher.led_anchors`), read
        with a space before it: the engine then tries the trie only at spaces. Other text (CJK,
        or a character such as a combining mark that is neither) is screened as before.
        """
        if self._anchors is None:
            return _Screened(sentences, None, self._covers)
        led = self._led
        if led is not None and _anchor_screen._PREFILTER:
            joined = " ".join(sentences)
            if _plain_words(joined) and (joined.isascii() or _CJK_RE.search(joined) is None):
                return self._planned(sentences, None, led)
        scan = self._plain_scan()
        if scan is None:  # pragma: no cover - the families have anchors (checked above)
            return _Screened(sentences, None, self._covers)
        screened = scan(sentences)
        if screened.hits is None:
            return screened
        return self._planned(screened, screened.hits, None)

    def _planned(
        self,
        sentences: Sequence[str],
        hits: Sequence[frozenset[str]] | None,
        led: _LedScan | None,
    ) -> _Screened:
        """The sentences some family runs on, with each family's runs: from the anchors
        ``hits`` found in them, or from the word-start anchors ``led`` finds."""
        plans: dict[object, list[tuple[str, tuple[re.Pattern[str], ...]]]] = {}
        kept: list[str] = []
        kept_hits: list[frozenset[str]] = []
        for k, s in enumerate(sentences):
            spaced = None
            if led is not None:
                spaced = " " + s
                found = led.hits(s, spaced)
            else:
                found = hits[k] if hits is not None else frozenset()
            if not found:
                continue
            runs_any = False
            for matcher, chosen in self._choices(found, led is not None):
                if regexes := _runnable(matcher, chosen, s, spaced):
                    plans.setdefault(matcher, []).append((s, regexes))
                    runs_any = True
            if runs_any:
                kept.append(s)
                kept_hits.append(found)
        return _Screened(kept, kept_hits, self._covers, plans)

    def _choices(self, found: frozenset[str], led: bool) -> tuple[_Choice, ...]:
        """Each family's alternatives owning one of the anchors ``found``, for the families
        that have some (remembered, as :meth:`_Matcher._chosen` does)."""
        memo = self._choice_memo[led]
        choices = memo.get(found)
        if choices is None:
            choices = tuple((m, c) for m in self._matchers if (c := m._chosen(found, led)))
            if len(memo) >= _CHOSEN_MEMO_SIZE:
                memo.clear()
            memo[found] = choices
        return choices


_CJK_RE = re.compile(f"[{_CJK_CHARS}]")
_Choice = tuple[_Matcher, tuple[_Alternative, ...]]


def _runnable(
    matcher: _Matcher, chosen: tuple[_Alternative, ...], s: str, spaced: str | None
) -> tuple[re.Pattern[str], ...]:
    """:meth:`_Matcher.runnable` of the alternatives ``chosen`` by the anchors of ``s``."""
    if len(chosen) > _NEEDS_MAX_ALTERNATIVES:
        return (matcher.pattern,)
    text = s if spaced is None else spaced
    regexes = []
    for alt in chosen:
        for need in alt.plain() if spaced is None else alt.led:
            if need(text) is None:
                break
        else:
            regexes.append(alt.regex)
    return tuple(regexes) if len(regexes) <= _MERGED_MAX else (matcher.pattern,)


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
