"""How the ``addresses_grader`` gate matches phrases: folded text and anchored phrase families.

One idea: the matching machinery under :mod:`graders._inject_gate`. Text is folded (:func:`fold`:
NFKC, casefold, punctuation to spaces, Latin diacritics dropped, Cyrillic or Greek lookalikes in
Latin words mapped to Latin) and each phrase family compiles to one regex plus the literal anchors
derived from its own patterns, so the regex only runs on sentences holding an anchor. A
:class:`_Family` also knows when a match is a description, a report or a negation rather than an
order to the grader. The phrase tables themselves are in :mod:`graders._inject_phrases` and
:mod:`graders._inject_claims`.

The anchor screen is shared beyond that gate: :class:`AnchoredSet` for the query's case-sensitive
scans, and :class:`Alternatives` for the other gates' and the harm rules' case-insensitive phrase
lists.
"""

from __future__ import annotations

import re
import re._casefix as _sre_casefix  # type: ignore[import-not-found]  # no stub: a private table
import re._constants as _sre_constants
import re._parser as _sre_parser
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

from graders._pregate_text import normalize_for_gate
from graders._text import INVISIBLE

__all__ = ["Alternatives", "AnchoredSet", "fold"]


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
        covers: frozenset[_Matcher],
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

    def __init__(self, anchors: frozenset[str], covers: frozenset[_Matcher]) -> None:
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
        """The sentences that may match, each with the regexes to run on it (:func:`_finditer`):
        the alternatives owning one of its anchors, or the whole :attr:`pattern` unscreened.

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
            for m in _finditer(s, regexes):
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


def _finditer(s: str, regexes: Sequence[re.Pattern[str]]) -> Iterator[re.Match[str]]:
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
        best = None
        for i in sorted(chosen):
            m = self._each[i].search(text)
            if m is not None and (best is None or m.start() < best.start()):
                best = m
        return best

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return iter(()) if self._chosen(text) == frozenset() else self.pattern.finditer(text)

    def sub(self, repl: str, text: str) -> str:
        return text if self._chosen(text) == frozenset() else self.pattern.sub(repl, text)


def _trie_regex(words: Iterable[str]) -> re.Pattern[str]:
    """A regex that matches where any of ``words`` occurs (as a literal), shaped as a trie.

    Why a trie: a flat ``a|b|c...`` alternation of hundreds of literals makes the regex engine
    try every alternative at every position; branching on one character at a time tries only
    the few that share the text's next character. A word that another word starts with ends
    the branch: whenever the longer one occurs the shorter one does too, so the regex says the
    same "some anchor is here" with fewer branches.
    """
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = True

    def build(node: dict[str, Any]) -> str:
        if "" in node:
            return ""
        alts = [re.escape(ch) + build(child) for ch, child in sorted(node.items())]
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return re.compile(build(trie) if trie else "(?!)")


_PREFILTER = True
"""Tests turn the anchor prefilter off to check it never changes a verdict."""
_COMMON = frozenset(_words("the and that this with for you your are was not all any can"))


def _cost(anchors: Iterable[str]) -> float:
    """How often a set of anchors is expected in ordinary text: short and common words cost."""
    # + 8 per anchor: each one is a substring search at run time
    return sum(
        8 + 4 ** max(0, 8 - len(a.strip())) * (4 if a.strip() in _COMMON else 1) for a in anchors
    )


def _anchors(items: Sequence[Any]) -> frozenset[str] | None:
    """Literal strings one of which every match of the parsed ``items`` contains, or ``None``.

    A run of literals is in every match, and a branch of plain words extends it into one string
    per word (``un 10``, ``un diez``...); so is one of the anchors of each alternative of any
    other branch, and of a group or a repeat that must run at least once. Of those candidates
    the cheapest (:func:`_cost`) is kept. Lookarounds are not part of a match.
    """
    best: frozenset[str] | None = None

    def consider(found: frozenset[str] | None) -> None:
        nonlocal best
        if found and all(found) and (best is None or _cost(found) < _cost(best)):
            best = found

    run = {""}

    def flush() -> None:
        nonlocal run
        consider(frozenset(run))
        run = {""}

    for op, arg in items:
        words = _plain_words(op, arg)
        if words is not None and len(run) * len(words) <= _MAX_RUN_SET:
            run = {r + w for r in run for w in words}
            continue
        flush()
        if op is _sre_constants.BRANCH:
            alts = [a for alt in arg[1] if (a := _anchors(alt)) is not None]
            if len(alts) == len(arg[1]):
                consider(frozenset().union(*alts))
        elif op is _sre_constants.SUBPATTERN and not (arg[1] or arg[2]):  # no inline flags
            consider(_anchors(arg[-1]))
        elif op in _REPEAT_OPS and arg[0] >= 1:
            consider(_anchors(arg[2]))
    flush()
    return best


_MAX_RUN_SET = 64


def _first_chars(items: Sequence[Any]) -> frozenset[str] | None:
    """The characters a match of the parsed ``items`` can start with, or ``None`` when that is
    not a short list of literals (a class such as ``\\w``, an empty match, inline flags).

    Why: a scan that would normalise a line before matching it can first ask whether the line
    could start such a match. Lookarounds are not part of a match.
    """
    found: set[str] = set()
    for op, arg in items:
        if op is _sre_constants.LITERAL:
            return frozenset(found | {chr(arg)})
        if op is _sre_constants.IN:
            if not all(o is _sre_constants.LITERAL for o, _ in arg):
                return None
            return frozenset(found | {chr(c) for _, c in arg})
        if op is _sre_constants.BRANCH:
            alts = [_first_chars(alt) for alt in arg[1]]
            if any(a is None for a in alts) or any(not alt for alt in arg[1]):
                return None
            return frozenset(found.union(*(a for a in alts if a is not None)))
        if op is _sre_constants.SUBPATTERN and not (arg[1] or arg[2]):
            inner = _first_chars(arg[-1])
        elif op in _REPEAT_OPS:
            inner = _first_chars(arg[2])
            if inner is not None and arg[0] == 0:
                found |= inner  # optional: the match may start with what follows
                continue
        elif op in (_sre_constants.ASSERT, _sre_constants.ASSERT_NOT, _sre_constants.AT):
            continue
        else:
            return None
        if inner is None or _sre_parser.SubPattern(None, [(op, arg)]).getwidth()[0] == 0:
            return None
        return frozenset(found | inner)
    return None


def first_chars(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """:func:`_first_chars` of a compiled case-sensitive regex (``None`` for any other)."""
    if pattern.flags & re.IGNORECASE:
        return None
    return _first_chars(list(_sre_parser.parse(pattern.pattern, pattern.flags)))


def _plain_words(op: Any, arg: Any) -> list[str] | None:
    """The strings an item matches when it is a literal, a branch of literals or an optional
    literal (``s?``); ``None`` for anything else."""
    if op is _sre_constants.LITERAL:
        return [chr(arg)]
    if op is _sre_constants.BRANCH:
        texts = [t for alt in arg[1] if (t := _literal_text(alt)) is not None]
        return texts if len(texts) == len(arg[1]) else None
    if op in _REPEAT_OPS and arg[0] == 0 and arg[1] == 1:
        body = _literal_text(arg[2])
        return None if body is None else ["", body]
    return None


def _literal_text(items: Sequence[Any]) -> str | None:
    if all(op is _sre_constants.LITERAL for op, _ in items):
        return "".join(chr(c) for _, c in items)
    return None


_REPEAT_OPS = frozenset(
    {_sre_constants.MAX_REPEAT, _sre_constants.MIN_REPEAT, _sre_constants.POSSESSIVE_REPEAT}
)


def _family_anchors(sources: Sequence[str]) -> frozenset[str] | None:
    found: set[str] = set()
    for src in sources:
        try:
            anchors = _anchors(list(_sre_parser.parse(src)))
        except Exception:  # pragma: no cover - a pattern re accepts but the parser does not
            return None
        if anchors is None:
            return None
        found |= anchors
    return frozenset(found)


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
            for m in _finditer(s, regexes):
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
