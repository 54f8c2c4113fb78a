"""``UserRegex``: a pattern from a config or a record, matched under a time limit.

Why: Python's ``re`` backtracks without bound, and these patterns run on text the policy wrote.
Public format rewards are written with nested quantifiers: open-r1's code-format pattern took
34 s on a 6 KB response, and a reference pattern like ``(\\w+\\s?)+`` takes seconds on 25
characters. A rule grader runs inline on the event loop, so that is a stalled service, and no
timer can stop a running ``re`` match. The ``regex`` module checks a deadline while it matches:
past ``timeout`` seconds the component is unscored (``kind="timeout"``) and the loop goes on.

``regex`` is compiled in its ``re``-compatible mode (``VERSION0``), so a pattern pasted from a
recipe that uses ``re`` reads the same.

Compiling needs a bound of its own, which no match timeout gives: ``regex`` (unlike ``re``)
lays out a copy of what a counted repeat repeats, so the 14 characters ``a{10000000}`` took
2.6 GB and stalled the loop for 4 s, and ``a{1000000000}`` got the process OOM-killed. So a
pattern is parsed first, with ``regex``'s own parser (cheap: it builds a tree, copies nothing),
and one longer than :data:`MAX_PATTERN_CHARS` or larger than :data:`MAX_PATTERN_SIZE` once its
counted repeats are written out is refused (:class:`PatternTooLarge`) before it is compiled.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, Literal

import regex
from regex import _regex_core

from graders._base import Unscored
from rm_service._exceptions import ConfigError, PatternTooLarge

__all__ = [
    "MATCH_TIMEOUT_S",
    "MAX_PATTERN_CHARS",
    "MAX_PATTERN_SIZE",
    "PatternTooLarge",
    "UserRegex",
    "check_pattern_size",
    "check_timeout",
    "compile_regex",
    "expanded_size",
]

MATCH_TIMEOUT_S = 0.25
"""The default time limit of one match, in seconds: an honest pattern on a long response takes
milliseconds; one that backtracks without bound is stopped here."""

MAX_PATTERN_CHARS = 20_000
"""The longest pattern compiled, in characters: ``regex`` parses in Python, at about 4 µs a
character, on the event loop (a 20,000-character pattern, such as an alternation of accepted
answers: about 80 ms, once, then cached)."""

MAX_PATTERN_SIZE = 10_000
"""The most items a pattern may hold once its counted repeats are written out (see
:func:`expanded_size`): ``a{10000}`` compiles in about 1 ms and 3 MB; each factor of ten past
it costs ten times that, on the event loop."""

_FLAGS = {re.IGNORECASE: regex.IGNORECASE, re.MULTILINE: regex.MULTILINE, re.DOTALL: regex.DOTALL}


def check_pattern_size(pattern: str, flags: int = 0) -> None:
    """Raise :class:`PatternTooLarge` if compiling ``pattern`` could take unbounded memory and
    time: it is longer than :data:`MAX_PATTERN_CHARS`, or :func:`expanded_size` is above
    :data:`MAX_PATTERN_SIZE`. ``flags`` are ``regex`` flags (verbose mode changes the parse).

    Raises:
        PatternTooLarge: the pattern is refused; the message says why.
        regex.error, ValueError: the pattern does not parse (as compiling would say).
    """
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternTooLarge(
            f"the pattern is {len(pattern):,} characters long (limit {MAX_PATTERN_CHARS:,})"
        )
    size = expanded_size(pattern, flags)
    if size > MAX_PATTERN_SIZE:
        raise PatternTooLarge(
            f"its counted repeats, multiplied along their nesting, expand it to {size:,} items "
            f"(limit {MAX_PATTERN_SIZE:,}); the regex engine lays out every copy, so compiling "
            "it would take memory and time in proportion"
        )


@functools.lru_cache(maxsize=1024)
def expanded_size(pattern: str, flags: int = 0) -> int:
    """How many items ``pattern`` holds once each counted repeat is written out as copies.

    Every leaf of ``regex``'s parse tree (a character, a class member, an anchor...) counts 1,
    a node holding others counts their sum, and a repeat counts its body times its count,
    so nesting multiplies (``(?:a{100}){1000}`` is 100,000) and siblings add (``a{9000}`` ten
    times is 90,000: a product bound alone would let a long row of them through). A counted
    repeat counts its smaller number, the copies ``regex`` lays out (``{2,500}`` is 2; ``{500,}``
    is 500): the rest of a range is a loop; ``*``, ``+`` and ``?`` count once. Cached: a GRPO group
    shares one reference pattern.

    Raises:
        PatternTooLarge: nested too deeply for the parser.
        regex.error, ValueError: the pattern does not parse.
    """
    try:
        return _size(_parse(pattern, flags))
    except RecursionError:
        raise PatternTooLarge("its groups are nested too deeply to parse") from None


def _parse(pattern: str, flags: int) -> Any:
    """``regex``'s parse tree of ``pattern``, as ``regex.compile`` builds it before compiling:
    parsed again with the global flags when an inline flag such as ``(?x)`` sets them."""
    global_flags = flags
    while True:
        source = _regex_core.Source(pattern)
        info = _regex_core.Info(global_flags, source.char_type, {})
        source.ignore_space = bool(info.flags & regex.VERBOSE)
        source.use_unicode_space(bool(info.flags & regex.VERSION1))
        try:
            return _regex_core._parse_pattern(source, info)
        except _regex_core._UnscopedFlagSet:
            global_flags = info.global_flags


def _size(node: Any) -> int:
    """:func:`expanded_size` of one parse-tree node."""
    if isinstance(node, _regex_core.GreedyRepeat):  # lazy and possessive repeats subclass it
        # The engine lays out the minimum's copies (x{100000}: 26 MB); the rest of a range
        # is a loop (a{1,100000000} compiles at once), so ".{200,15000}" counts as 200.
        return max(node.min_count, 1) * _size(node.subpattern)
    return max(1, sum(_size(child) for child in _children(node)))


def _children(node: Any) -> list[Any]:
    """A node's sub-nodes, whatever the attribute (``subpattern``, ``items``, ``branches``,
    ``yes_item``...): read generically, so a node kind this code does not name still counts."""
    out: list[Any] = []
    for value in getattr(node, "__dict__", {}).values():
        if isinstance(value, _regex_core.RegexBase):
            out.append(value)
        elif isinstance(value, list | tuple):
            out.extend(v for v in value if isinstance(v, _regex_core.RegexBase))
    return out


def check_timeout(value: Any) -> float:
    """A match time limit from a config, or :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"match_timeout must be a number of seconds > 0, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"match_timeout must be finite, got {value!r}")
    return float(value)


class UserRegex:
    """A compiled user pattern whose ``search``, ``match`` and ``fullmatch`` take at most
    ``timeout`` seconds each, else raise ``Unscored(kind="timeout")``.

    Raises:
        PatternTooLarge: the pattern is refused before compiling (:func:`check_pattern_size`).
        regex.error, ValueError: the pattern does not compile, or its inline flags contradict
            the re-compatible mode (``(?V1)``); the caller says whose fault that is.
    """

    __slots__ = ("_compiled", "groups", "pattern", "timeout")

    def __init__(self, pattern: str, flags: int = 0, *, timeout: float = MATCH_TIMEOUT_S) -> None:
        own = regex.VERSION0
        for flag, theirs in _FLAGS.items():
            if flags & flag:
                own |= theirs
        check_pattern_size(pattern, own)
        self._compiled = regex.compile(pattern, own)
        self.pattern = pattern
        self.groups: int = self._compiled.groups
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"UserRegex({self.pattern!r}, timeout={self.timeout})"

    def find(self, text: str, how: Literal["search", "match", "fullmatch"]) -> Any:
        """The match object of ``how`` (as ``re``'s method of that name), or ``None``."""
        try:
            return getattr(self._compiled, how)(text, timeout=self.timeout)
        except TimeoutError:
            raise Unscored(
                f"the pattern {self.pattern[:80]!r} took more than {self.timeout:g} s on this "
                f"response ({len(text)} characters) and was stopped: it backtracks without bound "
                "on text like this; rewrite it without nested quantifiers, or raise "
                "match_timeout",
                kind="timeout",
            ) from None


def compile_regex(
    pattern: Any, flags: int = 0, *, what: str, timeout: float = MATCH_TIMEOUT_S
) -> UserRegex:
    """Compile a construction-time pattern, raising :class:`ConfigError` (naming ``what``) if
    it is not a non-empty valid regex."""
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(f"{what} must be a non-empty regex string, got {pattern!r}")
    try:
        return UserRegex(pattern, flags, timeout=timeout)
    except (regex.error, ValueError) as exc:  # ValueError: flags at odds, e.g. (?V1)
        raise ConfigError(f"{what}: invalid regex {pattern!r}: {exc}") from exc
