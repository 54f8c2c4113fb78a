"""Regexes run only where their literal anchors occur: the anchor screen.

One idea: a big alternation costs Python's regex engine a try of every alternative at every
position, so a text that holds none of a regex's anchors (:mod:`graders._anchors`: literals one
of which every match contains) is not searched, and where some occur only the alternatives
owning them run. Exact: no anchor, no match. Shared by the ``addresses_grader`` phrase families
(:class:`_AnchorScan`, :class:`_Screened`, used by :mod:`graders._inject_match`), the query's
case-sensitive scans (:class:`AnchoredSet`), the other gates' and the harm rules'
case-insensitive phrase lists (:class:`Alternatives`) and the answer phrases of the number
readers (:class:`KeywordRegex`). :data:`_PREFILTER` turns the screen off, for the tests that
check it never changes a match.
"""

from __future__ import annotations

import re
import re._casefix as _sre_casefix  # type: ignore[import-not-found]  # no stub: a private table
import re._parser as _sre_parser
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, overload

from graders._anchors import (
    _BOUND,
    _UNKNOWN,
    _cheapest,
    _cheapest_led,
    _clauses,
    _family_anchors,
    _led_clauses,
    _need_clauses,
    _opening_words,
    _openings,
    _trie_regex,
    _word_bytes,
    _word_start_openings,
)

__all__ = [
    "Alternatives",
    "AnchoredSet",
    "KeywordRegex",
    "Needs",
    "OpeningScan",
    "alternation_matches",
    "needs_of",
]


_PREFILTER = True
"""Tests turn the anchor prefilter off to check it never changes a verdict."""

_CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
"""Hiragana, katakana and CJK ideographs: where a Chinese or Japanese phrase can start."""


_CJK_SEARCH_RE = re.compile(f"[{_CJK_CHARS}]")


class _Screened(Sequence[str]):
    """Sentences an anchor screen kept, with the anchors it found in each.

    ``hits[i]`` holds, for each position of the ``i``-th sentence where an anchor starts, the
    shortest anchor there (any longer one there starts with it). ``hits`` is ``None`` when the
    screen did not run (CJK text, whose phrases have no literal anchors; a family without
    anchors; the prefilter off): then every sentence is kept and meets every alternative.
    ``covers``: the matchers whose anchors the screen looked for; another one screens again.
    ``plans``: where the screen also chose each matcher's regexes for each sentence, those runs
    by matcher (a matcher absent from it runs nothing); the sentences are then those that some
    matcher runs on.
    """

    __slots__ = ("_sentences", "covers", "hits", "plans")

    def __init__(
        self,
        sentences: Sequence[str],
        hits: Sequence[frozenset[str]] | None,
        covers: frozenset[object],
        plans: Mapping[object, list[tuple[str, tuple[re.Pattern[str], ...]]]] | None = None,
    ) -> None:
        self._sentences = sentences
        self.hits = hits
        self.covers = covers
        self.plans = plans

    def __len__(self) -> int:
        return len(self._sentences)

    def __iter__(self) -> Iterator[str]:
        return iter(self._sentences)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._sentences[index]


class _AnchorScan:
    """Where the literal anchors of one or more phrase families occur in each sentence.

    The anchors' trie regex (:func:`_trie_regex`) says whether a sentence holds any; from the
    first one on, a lookahead around the same trie lists them all, overlapping ones included
    (``" answer"`` and ``"answer"`` one character apart), in one call.
    """

    __slots__ = ("_overlapping", "covers", "regex")

    def __init__(self, anchors: frozenset[str], covers: frozenset[object]) -> None:
        self.regex = _trie_regex(anchors)
        self._overlapping = re.compile(f"(?=({self.regex.pattern}))").findall
        self.covers = covers

    def hits(self, text: str) -> frozenset[str]:
        """The anchors ``text`` holds, the shortest at each position where one starts."""
        m = self.regex.search(text)
        return frozenset() if m is None else frozenset(self._overlapping(text, m.start()))

    def __call__(self, sentences: Sequence[str]) -> _Screened:
        if not _PREFILTER or _CJK_SEARCH_RE.search("\n".join(sentences)):
            return _Screened(sentences, None, self.covers)
        kept: list[str] = []
        hits: list[frozenset[str]] = []
        for s in sentences:
            if found := self.hits(s):
                kept.append(s)
                hits.append(found)
        return _Screened(kept, hits, self.covers)


def _owning(hit: str, anchor_sets: Sequence[frozenset[str] | None]) -> tuple[int, ...]:
    """The indices of the anchor sets holding an anchor that starts with ``hit``: where a trie
    scan reports ``hit`` (the shortest anchor starting there), those may start there too."""
    return tuple(
        i
        for i, anchors in enumerate(anchor_sets)
        if anchors and any(a.startswith(hit) for a in anchors)
    )


def needs_of(
    source: str, flags: int = 0, *, led: bool = False
) -> tuple[Callable[[str], object], ...]:
    """Checks that a text holding a match of the case-sensitive regex ``source`` passes: for a
    few of its :func:`~graders._anchors._clauses` (:func:`~graders._anchors._need_clauses`),
    whether the text holds one of its literals. With ``led``, the regex is read on a sentence of
    word characters and single spaces with a space put before it, and the clauses are sets of
    word starts (:func:`~graders._anchors._led_clauses`), whose trie skips from space to space.

    Why: a screen that found one anchor of a regex has only shown the regex *may* match; most
    regexes are a sequence of word lists ("ignore" ... "instructions"), and a text holding one
    list's word but none of another's cannot match, which a literal search tells faster than the
    regex, which is tried at every position. Exact: each clause is met by every match. A
    case-insensitive regex gets none.
    """
    if flags & re.IGNORECASE:
        return ()
    try:
        items = list(_sre_parser.parse(source, flags))
    except Exception:  # pragma: no cover - a pattern re accepts but the parser does not
        return ()
    if led:
        starts = [c for c in _led_clauses(items, _BOUND)[0] if all(a[0] == " " for a in c)]
        return compiled_needs(_need_clauses(starts))
    return compiled_needs(_need_clauses(_clauses(items)))


def compiled_needs(clauses: Sequence[frozenset[str]]) -> tuple[Callable[[str], object], ...]:
    """A search for each clause's literals (:func:`~graders._anchors._trie_regex`)."""
    return tuple(_trie_regex(c).search for c in clauses)


class Needs:
    """Whether a text may hold a match of ``regex``: it holds a literal of each of a few of the
    regex's :func:`~graders._anchors._clauses` (case-folded, :func:`_fold_case`, when the regex
    ignores case), checked before the regex is searched.

    Why: a regex that opens with a line start, a lookbehind or an optional class is tried at
    every position of the text, while most texts lack a word it needs (``grader``, ``rubric``,
    ``ASSISTANT``) or a character (``|``, ``/``), which a literal search tells at C speed.
    Exact: every match holds one literal of each clause. Derived on first use (not at import);
    with the prefilter off, every text may match.
    """

    __slots__ = ("_checks", "_lower", "regex")

    def __init__(self, regex: re.Pattern[str]) -> None:
        self.regex = regex
        self._lower = bool(regex.flags & re.IGNORECASE)
        self._checks: tuple[Callable[[str], object], ...] | None = None

    def __call__(self, text: str) -> bool:
        if not _PREFILTER:
            return True
        checks = self._checks
        if checks is None:
            checks = self._checks = self._derive()
        if not checks:
            return True
        folded = _fold_case(text) if self._lower else text
        return all(check(folded) is not None for check in checks)

    def _derive(self) -> tuple[Callable[[str], object], ...]:
        try:
            clauses = _clauses(list(_sre_parser.parse(self.regex.pattern, self.regex.flags)))
        except Exception:  # pragma: no cover - a pattern re accepts but the parser does not
            return ()
        if self._lower:
            clauses = [frozenset(map(_fold_case, c)) for c in clauses]
        return compiled_needs(_need_clauses(clauses))


class _LedScan:
    """Where the anchors of a screen occur in a sentence of word characters and single spaces:
    those that start with a space (:func:`~graders._anchors._led_anchors`, a word start) read
    in the sentence with a space put before it, the others in the sentence itself.

    Why: a trie of anchors that start with a space has that space as its literal prefix, so the
    engine skips from space to space and tries the trie only there, where a trie of plain
    anchors is tried at every character. Each scan reports the shortest anchor at each position
    where one starts (:class:`_AnchorScan`), so an anchor holding one of them may be there.
    """

    __slots__ = ("_led", "_rest")

    def __init__(self, anchors: frozenset[str]) -> None:
        led = frozenset(a for a in anchors if a.startswith(" "))
        self._led = _trie_regex(led).search if led else None
        self._rest = _trie_regex(anchors - led).search if anchors - led else None

    def hits(self, text: str, spaced: str | None = None) -> frozenset[str]:
        """The anchors found in ``text`` (``spaced``: the text with a space put before it)."""
        found: set[str] = set()
        for search, where in ((self._led, spaced or " " + text), (self._rest, text)):
            if search is not None:
                m = search(where, 0)
                while m is not None:
                    found.add(m.group())
                    m = search(where, m.start() + 1)
        return frozenset(found)


def _plain_words(text: str) -> bool:
    """Whether ``text`` holds nothing but word characters and spaces, where a word starts only
    after a space (or at the start): what a :class:`_LedScan` reads.

    ``\\w`` is what ``str.isalnum`` says, and the underscore; ``isalnum`` reads the whole text at
    C speed, where a negated class in a regex looks each character's category up.
    """
    rest = text.replace(" ", "").replace("_", "")
    return not rest or rest.isalnum()


class AnchoredSet:
    """Several regexes searched in one text, screened by one scan for all their anchors.

    Why: a regex that opens with a lookbehind and a big alternation (the query scans of
    :mod:`graders._inject_context`) is tried at every position, and a text read by several of
    them was scanned once per regex. One trie of all their anchors (:func:`_anchors`: literals
    one of which every match contains) lists those the text holds in one scan, and a regex
    owning none of them is not searched. Exact: no anchor, no match. A regex without derivable
    anchors (or a case-insensitive one) is always searched.
    """

    __slots__ = ("_always", "_anchors", "_led", "_led_sets", "_owners", "_scan", "patterns")

    def __init__(self, patterns: Sequence[re.Pattern[str]]) -> None:
        self.patterns = tuple(patterns)
        anchors: list[frozenset[str] | None] = []
        led: list[frozenset[str] | None] = []
        for p in self.patterns:  # one parse of each: its anchors, and those that start a word
            items = None if p.flags & re.IGNORECASE else _parsed(p.pattern)
            found = None if items is None else _cheapest(_clauses(items))
            anchors.append(found)
            led.append(_cheapest_led(_led_clauses(items, _UNKNOWN)[0]) if items and found else None)
        self._anchors = tuple(anchors)
        self._led_sets = tuple(led)
        self._always = frozenset(i for i, a in enumerate(self._anchors) if not a)
        self._owners: tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]] = ({}, {})
        usable = all(s is not None for s, a in zip(led, anchors, strict=True) if a)
        every = frozenset().union(*(s for s in led if s))
        self._led = _LedScan(every) if usable and every else None
        self._scan: _AnchorScan | None = None  # built on first use: words and spaces are read
        # by the word-start scan

    def search(self, text: str) -> list[re.Match[str] | None]:
        """Each regex's ``search(text)``, in order (``None`` for one whose anchors are absent).

        A text of word characters and single spaces (a folded query) is screened by the
        regexes' word-start anchors (:class:`_LedScan`) where each regex has them."""
        if not _PREFILTER or not any(self._anchors):
            return [rx.search(text) for rx in self.patterns]
        if self._led is not None and _plain_words(text):
            hits, anchor_sets, owners = self._led.hits(text), self._led_sets, self._owners[1]
        else:
            if self._scan is None:
                every = frozenset().union(*(a for a in self._anchors if a))
                self._scan = _AnchorScan(every, frozenset())
            hits, anchor_sets, owners = self._scan.hits(text), self._anchors, self._owners[0]
        may = set(self._always)
        for hit in hits:
            own = owners.get(hit)
            if own is None:
                own = owners[hit] = _owning(hit, anchor_sets)
            may.update(own)
        if not may:
            return [None] * len(self.patterns)
        return [rx.search(text) if i in may else None for i, rx in enumerate(self.patterns)]


def _parsed(source: str) -> list[Any] | None:
    try:
        return list(_sre_parser.parse(source))
    except Exception:  # pragma: no cover - a pattern re accepts but the parser does not
        return None


# --- case-insensitive alternations, screened by their anchors ------------------------------------


def _case_groups() -> dict[str, str]:
    """Each character the regex engine's case-insensitive mode equates with others beyond
    lowercasing (``ı`` with ``i``, ``ſ`` with ``s``, ``ᲀ`` with ``в``...), to one character
    of its group."""
    parent: dict[int, int] = {}

    def root(c: int) -> int:
        while parent.get(c, c) != c:
            c = parent[c]
        return c

    for c, others in _sre_casefix._EXTRA_CASES.items():
        for o in others:
            a, b = root(c), root(o)
            parent[max(a, b)] = min(a, b)
    return {chr(c): chr(root(c)) for c in parent if root(c) != c}


_CASE_GROUPS = str.maketrans(_case_groups())
_CASE_GROUP_RE = re.compile("[" + "".join(map(re.escape, _case_groups())) + "]")
"""The characters :data:`_CASE_GROUPS` changes."""
_LOWER_BEFORE = str.maketrans({"\u0130": "i"})
"""``İ``: the one character whose full lowercase (``str.lower``) is two characters; the
engine's is ``i``."""


def _fold_case(text: str) -> str:
    """``text`` lowercased character by character as the regex engine's case-insensitive mode
    compares characters, each case group (:func:`_case_groups`) to one character.

    Two characters that ``re.IGNORECASE`` matches fold alike, and the length is kept, so a
    substring a case-insensitive regex matches folds to its literals' folded form.
    """
    if text.isascii():
        return text.lower()
    if "\u0130" in text:
        return text.translate(_LOWER_BEFORE).lower().translate(_CASE_GROUPS)
    low = text.lower()
    # the table maps a character at a time in Python: only where one of its characters occurs
    return low.translate(_CASE_GROUPS) if _CASE_GROUP_RE.search(low) else low


class Alternatives:
    """A case-insensitive alternation of ``patterns`` that runs only the alternatives whose
    literal anchors occur in the text.

    Why: the regex engine tries every alternative at every position, so a multilingual phrase
    list costs tens of microseconds on a one-line answer that holds none of its phrases. Each
    alternative's anchors (literals one of which every match of it contains) are derived from
    its own parse tree, as the phrase families' are (:func:`_anchors`),
    and one trie regex finds them in the case-folded text (:func:`_fold_case`). Exact: an
    alternative with no anchor in the text matches nowhere in it. :meth:`search` runs the
    alternatives left one by one, each compiled once, and keeps the leftmost match, the first
    alternative's on a tie, which is the text the whole alternation matches;
    :meth:`finditer` and :meth:`sub` run the whole alternation when any anchor occurs. An
    alternative without derivable anchors always runs.
    """

    __slots__ = ("_each", "_owners", "_screen", "pattern")

    def __init__(self, patterns: Sequence[str], flags: int = 0) -> None:
        flags |= re.IGNORECASE
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns), flags)
        self._each = tuple(re.compile(p, flags) for p in patterns)
        anchors = [_family_anchors([p]) for p in patterns]
        folded = [frozenset(map(_fold_case, a or ())) for a in anchors]
        every = frozenset().union(*folded)
        # the trie reports the shortest anchor at a position; longer ones there start with it
        self._owners = {a: frozenset(_owning(a, folded)) for a in every}
        self._screen: Callable[[str, int], re.Match[str] | None] | None = (
            _trie_regex(every).search if every and None not in anchors else None
        )

    @classmethod
    def of(cls, regex: re.Pattern[str]) -> Alternatives:
        """``regex`` (case-insensitive) as one alternative: its anchors screen the text, and it
        runs only where one occurs."""
        if not regex.flags & re.IGNORECASE:
            raise ValueError(f"not a case-insensitive regex: {regex.pattern!r}")
        return cls([regex.pattern], regex.flags)

    def _chosen(self, text: str) -> frozenset[int] | None:
        """The alternatives whose anchors occur in ``text``; ``None`` for "run them all"."""
        screen = self._screen
        if screen is None or not _PREFILTER:
            return None
        folded = _fold_case(text)
        chosen: frozenset[int] = frozenset()
        found = screen(folded, 0)
        while found is not None:
            chosen |= self._owners[found.group()]
            found = screen(folded, found.start() + 1)
        return chosen

    def search(self, text: str) -> re.Match[str] | None:
        chosen = self._chosen(text)
        if chosen is None or len(chosen) == len(self._each):
            return self.pattern.search(text)
        return next(alternation_matches(text, [self._each[i] for i in sorted(chosen)]), None)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return iter(()) if self._chosen(text) == frozenset() else self.pattern.finditer(text)

    def sub(self, repl: str, text: str) -> str:
        return text if self._chosen(text) == frozenset() else self.pattern.sub(repl, text)


def alternation_matches(s: str, regexes: Sequence[re.Pattern[str]]) -> Iterator[re.Match[str]]:
    """The matches of the alternation of ``regexes`` in ``s``, as its ``finditer`` yields them.

    At each position an alternation yields the first alternative that matches there (with the
    match that alternative alone finds), so the merge takes the leftmost of their next matches,
    the first one's on a tie, and resumes at its end, as ``finditer`` does. An alternative with
    anchors never matches the empty string, so every match moves on.
    """
    if len(regexes) == 1:
        return regexes[0].finditer(s)
    return _merged(s, regexes)


def _merged(s: str, regexes: Sequence[re.Pattern[str]]) -> Iterator[re.Match[str]]:
    ahead = [rx.search(s) for rx in regexes]
    while True:
        best: re.Match[str] | None = None
        for m in ahead:
            if m is not None and (best is None or m.start() < best.start()):
                best = m
        if best is None:
            return
        yield best
        end = best.end()
        for k, m in enumerate(ahead):
            if m is not None and m.start() < end:
                ahead[k] = regexes[k].search(s, end)


# --- a regex screened by its opening words --------------------------------------------------------


class OpeningScan:
    """``regex.finditer``, trying the regex only where a match may start.

    Why: a regex that opens with a lookbehind and a big (case-insensitive) alternation gives
    ``re`` no prefix to scan for, so ``finditer`` tries it at every position of the text: the
    verdict scan cost more than the rest of reading a long answer. In ASCII text every match
    starts with one of a few strings read from the pattern itself
    (:func:`~graders._anchors._openings`), in lower case when it ignores case; a trie of them
    finds the positions in order, the regex is matched there, and the scan goes on from the end
    of each match, as ``finditer`` does. Other text is screened by the regex's anchors
    (:func:`_fold_case`, as :class:`Alternatives` does) and then read by ``finditer``.
    Derived on first use (not at import).
    """

    __slots__ = ("_anchors", "_lower", "_ready", "_starts", "_table", "regex")

    def __init__(self, regex: re.Pattern[str]) -> None:
        self.regex = regex
        self._ready = False
        self._starts: Callable[[str, int], re.Match[str] | None] | None = None
        self._anchors: Callable[[str], re.Match[str] | None] | None = None
        self._table: bytes | None = None
        self._lower = bool(regex.flags & re.IGNORECASE)

    def _prepare(self) -> None:
        regex = self.regex
        if _sre_parser.parse(regex.pattern, regex.flags).getwidth()[0] > 0:
            # at word starts (:func:`~graders._anchors._word_start_openings`) where it can
            openings = _word_start_openings(regex)
            if openings:
                self._table = _word_bytes(self._lower)
            else:
                openings = _openings(regex)
            if openings:
                self._starts = _trie_regex(openings).search
        anchors = _family_anchors([regex.pattern])
        if anchors:
            fold = _fold_case if self._lower else str
            self._anchors = _trie_regex(frozenset(map(fold, anchors))).search
        self._ready = True

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        if not _PREFILTER:
            return self.regex.finditer(text)
        if not self._ready:
            self._prepare()
        if self._starts is not None and text.isascii():
            return self._scan(text, self._starts)
        if (
            self._anchors is not None
            and self._anchors(_fold_case(text) if self._lower else text) is None
        ):
            return iter(())
        return self.regex.finditer(text)

    def _scan(
        self, text: str, starts: Callable[[str, int], re.Match[str] | None]
    ) -> Iterator[re.Match[str]]:
        match = self.regex.match
        # ASCII: one character for one; read with a space before it, the start of a match at
        # ``i`` is the start of its opening at ``i``
        if self._table is not None:
            low = (" " + text).encode("ascii").translate(self._table).decode("ascii")
        else:
            low = text.lower() if self._lower else text
        pos = 0
        while (start := starts(low, pos)) is not None:
            at = start.start()
            if (m := match(text, at)) is not None:
                yield m
                pos = m.end()  # never empty: the regex has a minimum width
            else:
                pos = at + 1


def _last_match(regex: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = None
    for last in regex.finditer(text):  # noqa: B007  (only the last one is wanted)
        pass
    return last


class KeywordRegex:
    """A regex whose every match, in ASCII text, opens with one of a few ASCII words (letter
    case aside), so its last match there is found by searching for those words.

    Why: an ``IGNORECASE`` alternation of many phrases that each open with ``\\b`` gives ``re``
    no prefix to scan for, so ``finditer`` tries every alternative at every position of the
    text; a multilingual answer phrase cost many times the rest of reading a short response.
    Here the words are found by a plain alternation of literals (which ``re`` scans for by
    their first characters) in the lowercased text, and the regex is tried only where one
    stands, in order, each search from the end of the last match: what ``finditer`` would
    find. Text that is not ASCII (where case folding reaches past ASCII, ``ſ`` for ``s``) is
    read by ``finditer`` itself.

    Attributes:
        regex: the pattern, ``IGNORECASE``, never matching the empty string.
        starts: lowercase ASCII words, read from the pattern's own alternatives
            (:func:`_opening_words`); in ASCII text every match of ``regex`` opens with one.

    Raises:
        ValueError: an alternative that opens with no literal word.
    """

    __slots__ = ("_words", "regex", "starts")

    def __init__(self, regex: re.Pattern[str]) -> None:
        self.regex = regex
        self.starts = _opening_words(regex)
        self._words = re.compile("|".join(map(re.escape, self.starts)))

    def last_match(self, text: str) -> re.Match[str] | None:
        """The last match ``regex.finditer(text)`` yields, or ``None``."""
        if not text.isascii():
            return _last_match(self.regex, text)
        low = text.lower()  # ASCII: one character for one, so positions carry over
        last = None
        pos = 0
        while (word := self._words.search(low, pos)) is not None:
            if (m := self.regex.match(text, word.start())) is not None:
                last, pos = m, m.end()
            else:
                pos = word.start() + 1
        return last
