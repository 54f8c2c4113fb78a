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
from collections.abc import Callable, Iterator, Sequence
from typing import overload

from graders._anchors import _family_anchors, _opening_words, _trie_regex

__all__ = ["Alternatives", "AnchoredSet", "KeywordRegex", "alternation_matches"]


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
    """

    __slots__ = ("_sentences", "covers", "hits")

    def __init__(
        self,
        sentences: Sequence[str],
        hits: Sequence[frozenset[str]] | None,
        covers: frozenset[object],
    ) -> None:
        self._sentences = sentences
        self.hits = hits
        self.covers = covers

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


class AnchoredSet:
    """Several regexes searched in one text, screened by one scan for all their anchors.

    Why: a regex that opens with a lookbehind and a big alternation (the query scans of
    :mod:`graders._inject_context`) is tried at every position, and a text read by several of
    them was scanned once per regex. One trie of all their anchors (:func:`_anchors`: literals
    one of which every match contains) lists those the text holds in one scan, and a regex
    owning none of them is not searched. Exact: no anchor, no match. A regex without derivable
    anchors (or a case-insensitive one) is always searched.
    """

    __slots__ = ("_anchors", "_owners", "_scan", "patterns")

    def __init__(self, patterns: Sequence[re.Pattern[str]]) -> None:
        self.patterns = tuple(patterns)
        self._anchors = tuple(
            None if p.flags & re.IGNORECASE else _family_anchors([p.pattern]) for p in patterns
        )
        every = frozenset().union(*(a for a in self._anchors if a))
        self._scan = _AnchorScan(every, frozenset()) if every else None
        self._owners: dict[str, tuple[int, ...]] = {}

    def search(self, text: str) -> list[re.Match[str] | None]:
        """Each regex's ``search(text)``, in order (``None`` for one whose anchors are absent)."""
        may: set[int] | None = None
        if self._scan is not None and _PREFILTER:
            may = set()
            for hit in self._scan.hits(text):
                own = self._owners.get(hit)
                if own is None:
                    own = self._owners[hit] = _owning(hit, self._anchors)
                may.update(own)
        return [
            rx.search(text) if may is None or not anchors or i in may else None
            for i, (rx, anchors) in enumerate(zip(self.patterns, self._anchors, strict=True))
        ]


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
    return text.translate(_LOWER_BEFORE).lower().translate(_CASE_GROUPS)


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
