"""How the ``addresses_grader`` gate matches phrases: folded text and anchored phrase families.

One idea: the matching machinery under :mod:`graders._inject_gate`. Text is folded (:func:`fold`:
NFKC, casefold, punctuation to spaces, Latin diacritics dropped, Cyrillic or Greek lookalikes in
Latin words mapped to Latin) and each phrase family compiles to one regex plus the literal anchors
derived from its own patterns, so the regex only runs on sentences holding an anchor. A
:class:`_Family` also knows when a match is a description, a report or a negation rather than an
order to the grader. The phrase tables themselves are in :mod:`graders._inject_phrases` and
:mod:`graders._inject_claims`.

The anchor screen is shared beyond that gate: :class:`Anchored` for a case-sensitive regex, and
:class:`Alternatives` for the other gates' and the harm rules' case-insensitive phrase lists.
"""

from __future__ import annotations

import re
import re._casefix as _sre_casefix  # type: ignore[import-not-found]  # no stub: a private table
import re._constants as _sre_constants
import re._parser as _sre_parser
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from graders._pregate_text import normalize_for_gate
from graders._text import INVISIBLE

__all__ = ["Alternatives", "Anchored", "fold"]


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


@dataclass(frozen=True)
class _Matcher:
    """A family's regex, and literal anchors one of which every match contains.

    A big alternation costs Python's regex engine a try of every alternative at every word,
    which dominates the check's cost. Every match contains one of a few
    literal strings (``ignore``, ``instruction``, ``rubric``, ``marks``...), and ``in`` finds
    them at C speed, so the regex runs only on sentences holding one. The anchors are derived
    from the patterns themselves (:func:`_anchors`), so they cannot drift from them; ``None``
    means "run the regex always".
    """

    pattern: re.Pattern[str]
    anchors: frozenset[str] | None
    anchor_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    """Matches where any anchor occurs: the anchors as a trie-shaped regex (see
    :func:`_trie_regex`), which tests them all in one scan instead of one ``in`` per anchor."""

    def __post_init__(self) -> None:
        found = None if self.anchors is None else _trie_regex(self.anchors)
        object.__setattr__(self, "anchor_re", found)

    def candidates(self, sentences: Sequence[str], text: str) -> Sequence[str]:
        """The sentences the regex must see (``text`` is them joined): those holding an anchor."""
        if self.anchor_re is None or not _PREFILTER or _CJK_SEARCH_RE.search(text):
            return sentences
        search = self.anchor_re.search
        return [s for s in sentences if search(s)]


class _FamilyScreen:
    """The sentences any of several phrase families may match: one scan for all of them.

    Each family's prefilter (:meth:`_Matcher.candidates`) scans every sentence for its own
    anchors, so on a long answer every family pays a scan of the whole text, mostly to find
    nothing. The union of their anchors, as one trie regex, picks the sentences that hold any
    anchor in a single scan; each family then scans only those. Exact: a sentence left out
    holds no family's anchor, so no family's regex could match it. With CJK text (whose
    anchors are not literal) or a family without anchors, every sentence is kept, as each
    family's own prefilter would keep them.
    """

    def __init__(self, families: Sequence[_Family]) -> None:
        anchors = [f.matcher.anchors for f in families]
        self.anchor_re: re.Pattern[str] | None = (
            None
            if any(a is None for a in anchors)
            else _trie_regex(frozenset().union(*(a for a in anchors if a is not None)))
        )

    def __call__(self, sentences: Sequence[str]) -> Sequence[str]:
        if self.anchor_re is None or not _PREFILTER or _CJK_SEARCH_RE.search("\n".join(sentences)):
            return sentences
        search = self.anchor_re.search
        return [s for s in sentences if search(s)]


class Anchored:
    """A regex searched only in text that holds one of the literal anchors every match of it
    contains (:func:`_anchors`, as the phrase families derive theirs).

    Why: a regex that opens with a lookbehind and a big alternation (the query scans of
    :mod:`graders._inject_context`) is tried at every position, while its anchors' trie regex
    skips most positions on their first character. Most texts hold no anchor, and then a
    search costs about half. Without derivable anchors it is the plain regex. Exact: no
    anchor, no match.
    """

    __slots__ = ("_screen", "pattern")

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        # Case-insensitive regexes are left alone: a case-insensitive trie tests every position
        # slowly, and their literal first characters already make them fast.
        anchors = None if pattern.flags & re.IGNORECASE else _family_anchors([pattern.pattern])
        self._screen = _trie_regex(anchors).search if anchors else None

    def may_match(self, text: str) -> bool:
        return self._screen is None or not _PREFILTER or self._screen(text) is not None

    def search(self, text: str) -> re.Match[str] | None:
        return self.pattern.search(text) if self.may_match(text) else None


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
        self._owners = {
            a: frozenset(i for i, own in enumerate(folded) if any(b.startswith(a) for b in own))
            for a in every
        }
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
    folded = [_strip_marks(w) for w in words]
    parts = [r"(?<!\w)" + _p(*folded) + r"(?!\w)"]
    if cjk:
        # The lookahead fails at once on other scripts, so the CJK alternatives cost nothing
        # at the positions of a Latin or Cyrillic text (and vice versa: the lookbehind above).
        parts.append(f"(?=[{_CJK_CHARS}])" + _p(*cjk))
    return _Matcher(re.compile("|".join(parts)), _family_anchors(folded))


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
        sentences = list(sentences)
        for s in self.matcher.candidates(sentences, "\n".join(sentences)):
            for m in self.matcher.pattern.finditer(s):
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
