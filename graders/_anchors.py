"""The literal anchors of a regex, read from its own parse tree, and a trie regex that finds them.

One idea: what a regex's matches must contain, derived from the pattern itself so it can never
drift from it. :func:`_anchors` gives literals one of which every match contains (``ignore``,
``rubric``...), :func:`first_chars` the characters a match can start with, and
:func:`_opening_words` the ASCII words a case-insensitive match opens with. :func:`_trie_regex`
turns a set of literals into one regex that says "some anchor is here" in one scan. Why apart:
this is pure pattern analysis, shared by every screen that skips a regex where its anchors are
absent (:mod:`graders._anchor_screen`), and it imports nothing of the graders.
"""

from __future__ import annotations

import itertools
import re
import re._constants as _sre_constants
import re._parser as _sre_parser
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

__all__ = ["first_chars"]


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


_COMMON = frozenset(
    {
        "the", "and", "that", "this", "with", "for", "you", "your", "are", "was", "not", "all",
        "any", "can",
    }
)  # fmt: skip


def _cost(anchors: Iterable[str]) -> float:
    """How often a set of anchors is expected in ordinary text: short and common words cost."""
    # + 8 per anchor: each one is a substring search at run time
    return sum(
        8 + 4 ** max(0, 8 - len(a.strip())) * (4 if a.strip() in _COMMON else 1) for a in anchors
    )


def _anchors(items: Sequence[Any]) -> frozenset[str] | None:
    """Literal strings one of which every match of the parsed ``items`` contains, or ``None``.

    The cheapest (:func:`_cost`) of :func:`_clauses`, the first of equally cheap ones.
    """
    return _cheapest(_clauses(items))


def _clauses(items: Sequence[Any]) -> list[frozenset[str]]:
    """Sets of literal strings such that every match of the parsed ``items`` contains one string
    of each set, in the order they are met.

    A run of literals is in every match, and a branch of plain words extends it into one string
    per word (``un 10``, ``un diez``...); so is one of the anchors of each alternative of any
    other branch, and each set of a group or a repeat that must run at least once.
    Lookarounds are not part of a match.

    Why all of them and not only the cheapest: a screen that has found one set's literal in a
    text can ask for the others too before it runs the regex (:mod:`graders._anchor_screen`).
    """
    found: list[frozenset[str]] = []

    def consider(clause: frozenset[str] | None) -> None:
        if clause and all(clause):
            found.append(clause)

    run = {""}
    for op, arg in items:
        words = _plain_words(op, arg)
        if words is not None and len(run) * len(words) <= _MAX_RUN_SET:
            run = {r + w for r in run for w in words}
            continue
        consider(frozenset(run))
        run = {""}
        if op is _sre_constants.BRANCH:
            alts = [a for alt in arg[1] if (a := _anchors(alt)) is not None]
            if len(alts) == len(arg[1]):
                consider(frozenset().union(*alts))
        elif op is _sre_constants.SUBPATTERN and not (arg[1] or arg[2]):  # no inline flags
            found.extend(_clauses(arg[-1]))
        elif op in _REPEAT_OPS and arg[0] >= 1:
            found.extend(_clauses(arg[2]))
    consider(frozenset(run))
    return found


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


def _opening_words(regex: re.Pattern[str]) -> tuple[str, ...]:
    """The lowercase ASCII words that the top-level alternatives of ``regex`` open with (after
    any ``\\b``, and through a group of literal words), as ASCII text can match them. An
    alternative that needs a character no ASCII one matches (``é``, ``ответ``, ``答案``) never
    matches ASCII text and adds none. Read from the pattern itself, so a phrase added to it is
    never missed."""
    top = list(_sre_parser.parse(regex.pattern, regex.flags))
    alternatives = top[0][1][1] if len(top) == 1 and top[0][0] is _sre_constants.BRANCH else [top]
    words: set[str] = set()
    for items in alternatives:
        opening = [""]
        # \b: zero-width
        for op, arg in itertools.dropwhile(lambda it: it[0] is _sre_constants.AT, items):
            if op is _sre_constants.LITERAL:
                opening = [w + chr(arg) for w in opening]
            elif op is _sre_constants.BRANCH:  # a group of words, ``(?:correct|right)``
                branch = arg[1]
                if not all(all(o is _sre_constants.LITERAL for o, _ in alt) for alt in branch):
                    break
                opening = [w + "".join(chr(c) for _, c in alt) for w in opening for alt in branch]
            else:
                break
        if not all(opening):
            raise ValueError(f"an alternative of {regex.pattern!r} opens with no literal word")
        for word in opening:
            ascii_word = [_ascii_case(c, regex.flags) for c in word]
            if None not in ascii_word:
                words.add("".join(c for c in ascii_word if c is not None))
    return tuple(sorted(words))


def _ascii_case(char: str, flags: int) -> str | None:
    """The lowercase ASCII character that ``char`` in a pattern with ``flags`` matches (``ſ``
    matches ``s`` case-insensitively), or ``None`` when it matches none."""
    if char.isascii():
        return char.lower() if flags & re.IGNORECASE else char
    pattern = re.compile(re.escape(char), flags)
    return next((a.lower() for a in map(chr, range(128)) if pattern.fullmatch(a)), None)


def _openings(regex: re.Pattern[str]) -> frozenset[str] | None:
    """ASCII strings one of which every match of ``regex`` in ASCII text starts with (in lower
    case when the regex ignores case), or ``None`` when a match may start otherwise.

    Why: a regex that opens with a lookbehind or an optional word is tried at every position
    of the text; where every match starts with one of a few words, a scan for those words
    finds where it may start. Read from the pattern itself (:func:`_prefixes`); a string that
    needs a character no ASCII one matches (``évaluation``) is left out, as ASCII text cannot
    start with it.
    """
    found = _prefixes(list(_sre_parser.parse(regex.pattern, regex.flags)))
    if "" in found:
        return None
    out: set[str] = set()
    for s in found:
        chars = [_ascii_case(c, regex.flags) for c in s]
        if None not in chars:
            out.add("".join(c for c in chars if c is not None))
    return frozenset(out) if "" not in out else None


def _word_start_openings(regex: re.Pattern[str]) -> frozenset[str] | None:
    """:func:`_openings` as found in ASCII text read through :func:`_word_table` with a space
    put before it, when every match of ``regex`` starts after a non-word character or at the
    start (it opens with ``(?<!\\w)``): each opening read through the table, after a space; else
    ``None``.

    Why: the space is then the literal prefix of their trie, so the engine skips from word
    start to word start, where a trie of openings such as ``the`` or ``score`` is tried at every
    character. A match starting at ``i`` has a non-word character before it (a space in the
    read text) and its opening, read the same way, after it.
    """
    for op, arg in _sre_parser.parse(regex.pattern, regex.flags):
        if op is _sre_constants.ASSERT_NOT and arg[0] == -1 and list(arg[1]) == _NOT_WORD_BEFORE:
            openings = _openings(regex)
            table = _word_table(bool(regex.flags & re.IGNORECASE))
            return None if not openings else frozenset(" " + o.translate(table) for o in openings)
        if op not in (_sre_constants.AT, _sre_constants.ASSERT, _sre_constants.ASSERT_NOT):
            return None
    return None


def _word_table(lower: bool) -> dict[int, str]:
    """ASCII characters as a word-start scan reads them: a non-word character as a space, a
    letter in lower case with ``lower`` (``bytes.translate`` of :func:`_word_bytes`)."""
    out = {}
    for b in range(128):
        c = chr(b)
        out[b] = (c.lower() if lower else c) if _is_word(c) else " "
    return out


def _word_bytes(lower: bool) -> bytes:
    table = _word_table(lower)
    return bytes(ord(table[b]) for b in range(128)) + bytes(range(128, 256))


_OPENING_CHARS = 8
"""Openings are cut to this many characters: longer ones would only make the scan longer."""
_OPENING_SET = 512
"""More openings than this are not worth a scan: the regex is searched as it is."""
_OPENING_CLASS = 4
"""A class of at most this many literal characters (``[ée]``) opens one string per character."""


def _prefixes(items: Sequence[Any], budget: int = _OPENING_CHARS) -> set[str]:
    """Strings of at most ``budget`` characters, one of which every match of the parsed
    ``items`` starts with; ``""`` among them when a match may start with anything (a class, an
    empty match, inline flags). Cutting a string shorter keeps it true, so where the strings
    would be too many, they stop early."""
    if not items or budget <= 0:
        return {""}
    op, arg = items[0]
    rest = items[1:]
    if op in (_sre_constants.AT, _sre_constants.ASSERT, _sre_constants.ASSERT_NOT):
        return _prefixes(rest, budget)  # zero-width: the match starts with what follows
    if op is _sre_constants.LITERAL:
        chars = [chr(arg)]
    elif (
        op is _sre_constants.IN
        and len(arg) <= _OPENING_CLASS
        and all(o is _sre_constants.LITERAL for o, _ in arg)
    ):
        chars = [chr(c) for _, c in arg]
    elif op is _sre_constants.SUBPATTERN and not (arg[1] or arg[2]):
        return _prefixes([*arg[-1], *rest], budget)
    elif op is _sre_constants.BRANCH:
        found = set().union(*(_prefixes([*alt, *rest], budget) for alt in arg[1]))
        if len(found) > _OPENING_SET:  # each alternative's own start, cut where it ends
            found = set().union(*(_prefixes(alt, budget) for alt in arg[1]))
        return {""} if "" in found or len(found) > _OPENING_SET else found
    elif op in _REPEAT_OPS:
        # the first repetition, cut where it ends (what follows it depends on the count)
        once = _prefixes(arg[2], budget)
        if "" in once:
            return {""}
        return once | _prefixes(rest, budget) if arg[0] == 0 else once
    else:
        return {""}
    after = _prefixes(rest, budget - 1)
    if len(after) * len(chars) > _OPENING_SET:
        after = {""}
    return {c + s for c in chars for s in after}


# --- anchors that start a word --------------------------------------------------------------------

_BOUND, _WORD, _UNKNOWN, _EDGE = "bound", "word", "unknown", "edge"
"""What precedes a point of a match: a non-word character or the start of the text, a word
character, either, or (right after ``\\b``) a non-word character if a word character follows."""
_NOT_WORD_BEFORE = [(_sre_constants.IN, [(_sre_constants.CATEGORY, _sre_constants.CATEGORY_WORD)])]


def _led_anchors(source: str, before: str = _BOUND) -> frozenset[str] | None:
    """Anchors of the regex ``source`` (as :func:`_family_anchors`) where each one that starts
    a word starts with a space, standing for "a non-word character, or the start of the text,
    before it"; ``None`` when no set of them has only such anchors, or ones that start with a
    character outside ASCII. ``before``: what precedes a match (the phrase patterns are read
    between word boundaries: :data:`_BOUND`).

    Why: a trie of plain anchors is tried at every position of a sentence, since nearly every
    character starts one of them; where every anchor starts with a space, the regex engine
    skips from space to space and tries the trie only there, a few times faster (and one of
    CJK anchors skips to those characters). The phrase patterns are written between word
    boundaries (``(?<!\\w)``) with single spaces between words, so nearly every one of their
    literals starts a word. Read on a sentence of word characters and single spaces with a
    space put before it, where "a non-word character before it" can only be that space. Of
    the sets found (:func:`_led_clauses`), the cheapest.
    """
    try:
        clauses, _ = _led_clauses(list(_sre_parser.parse(source)), before)
    except Exception:  # pragma: no cover - a pattern re accepts but the parser does not
        return None
    return _cheapest_led(clauses)


def _cheapest_led(clauses: Iterable[frozenset[str]]) -> frozenset[str] | None:
    return _cheapest(c for c in clauses if all(a[0] == " " or not a[0].isascii() for a in c))


class _WordLiterals(NamedTuple):
    """What a phrase alternative's matches must hold, read from one parse of its pattern."""

    anchors: frozenset[str] | None
    """:func:`_family_anchors`."""
    led: frozenset[str] | None
    """:func:`_led_anchors`."""
    needs: tuple[frozenset[str], ...]
    """:func:`_need_clauses` of its :func:`_clauses`."""
    led_needs: tuple[frozenset[str], ...]
    """:func:`_need_clauses` of its :func:`_led_clauses`, every literal a word start."""


def _word_literals(source: str) -> _WordLiterals:
    """:class:`_WordLiterals` of a phrase alternative (read between word boundaries).

    Why one function: parsing a pattern costs more than reading it, and a family has dozens."""
    try:
        items = list(_sre_parser.parse(source))
    except Exception:  # pragma: no cover - a pattern re accepts but the parser does not
        return _WordLiterals(None, None, (), ())
    plain = _clauses(items)
    led, _ = _led_clauses(items, _BOUND)
    starts = [c for c in led if all(a[0] == " " for a in c)]
    return _WordLiterals(
        _cheapest(plain), _cheapest_led(led), _need_clauses(plain), _need_clauses(starts)
    )


def _need_clauses(clauses: Iterable[frozenset[str]]) -> tuple[frozenset[str], ...]:
    """A few of ``clauses`` worth checking before a regex runs: the least likely in ordinary
    text (:func:`_cost`), the cheapest last (a screen has usually found one of its literals
    already)."""
    kept = sorted(dict.fromkeys(c for c in clauses if _cost(c) <= _NEED_COST_MAX), key=_cost)
    kept = kept[:_NEEDS_MAX]
    return tuple(kept[1:] + kept[:1])


_NEED_COST_MAX = 1 << 15
"""A clause costlier than this (:func:`_cost`: short or common literals, a single space) is met
by nearly every text: not worth a scan."""
_NEEDS_MAX = 3


def _led_clauses(items: Sequence[Any], before: str) -> tuple[list[frozenset[str]], str]:
    """:func:`_clauses` of the parsed ``items`` matched after ``before`` (:data:`_BOUND`...),
    each literal that starts with a word character after a :data:`_BOUND` point written with a
    space before it; and what precedes the point where the match ends."""
    found: list[frozenset[str]] = []
    state = run_state = before
    run = {""}

    def flush() -> None:
        if run and all(run):
            lead = " " if run_state in (_BOUND, _EDGE) else ""
            found.append(frozenset(lead + r if _is_word(r[0]) else r for r in run))

    for op, arg in items:
        words = _plain_words(op, arg)
        if words is not None and len(run) * len(words) <= _MAX_RUN_SET:
            if run == {""}:
                run_state = state
            run = {r + w for r in run for w in words}
            state = _merged(*((_char_state(w[-1]) if w else state) for w in words))
            continue
        flush()
        run = {""}
        if op is _sre_constants.BRANCH:
            alts = [_led_clauses(alt, state) for alt in arg[1]]
            best = [_cheapest(c) for c, _ in alts]
            if all(b is not None for b in best):
                found.append(frozenset().union(*(b for b in best if b is not None)))
            state = _merged(*(end for _, end in alts))
        elif op is _sre_constants.SUBPATTERN and not (arg[1] or arg[2]):
            inner, state = _led_clauses(arg[-1], state)
            found.extend(inner)
        elif op in _REPEAT_OPS:
            inner, end = _led_clauses(arg[2], state)
            # a later repetition starts where one ended (the same point: the same end)
            again = end if end == state else _led_clauses(arg[2], end)[1]
            if arg[0] >= 1:
                found.extend(inner)
                state = _merged(end, again)
            else:
                state = _merged(state, end, again)
        elif op is _sre_constants.ASSERT_NOT and arg[0] == -1 and list(arg[1]) == _NOT_WORD_BEFORE:
            state = _BOUND  # (?<!\w)
        elif op is _sre_constants.ASSERT and arg[0] == -1:
            behind = list(arg[1])  # (?<=^), (?<=p s ): a non-word character or the start
            bound = behind == [(_sre_constants.AT, _sre_constants.AT_BEGINNING)] or (
                bool(behind)
                and behind[-1][0] is _sre_constants.LITERAL
                and not _is_word(chr(behind[-1][1]))
            )
            state = _BOUND if bound else state
        elif op in (_sre_constants.ASSERT, _sre_constants.ASSERT_NOT):
            pass  # zero-width: what precedes the point is unchanged
        elif op is _sre_constants.AT:
            beginning = (_sre_constants.AT_BEGINNING, _sre_constants.AT_BEGINNING_STRING)
            edge = arg is _sre_constants.AT_BOUNDARY
            state = _BOUND if arg in beginning else _EDGE if edge else _UNKNOWN
        elif op is _sre_constants.IN and all(o is _sre_constants.LITERAL for o, _ in arg):
            state = _merged(*(_char_state(chr(c)) for _, c in arg))
        elif op is _sre_constants.IN and arg == _NOT_WORD_BEFORE[0][1]:
            state = _WORD
        else:
            state = _UNKNOWN
    flush()
    return found, state


def _is_word(char: str) -> bool:
    """Whether ``\\w`` matches ``char`` (what ``str.isalnum`` says, and the underscore)."""
    return char.isalnum() or char == "_"


def _char_state(char: str) -> str:
    return _WORD if _is_word(char) else _BOUND


def _merged(*states: str) -> str:
    first = states[0]
    return first if all(s == first for s in states) else _UNKNOWN


def _cheapest(clauses: Iterable[frozenset[str]]) -> frozenset[str] | None:
    """The first of the cheapest ``clauses`` (:func:`_cost`), as :func:`_anchors` picks."""
    best: frozenset[str] | None = None
    best_cost = 0.0
    for found in clauses:
        cost = _cost(found)
        if best is None or cost < best_cost:
            best, best_cost = found, cost
    return best
