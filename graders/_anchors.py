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
from typing import Any

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
