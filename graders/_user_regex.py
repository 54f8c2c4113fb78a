"""``UserRegex``: a pattern from a config or a record, matched under a time limit.

Why: Python's ``re`` backtracks without bound, and these patterns run on text the policy wrote.
Public format rewards are written with nested quantifiers: open-r1's code-format pattern took
34 s on a 6 KB response, and a reference pattern like ``(\\w+\\s?)+`` takes seconds on 25
characters. A rule grader runs inline on the event loop, so that is a stalled service, and no
timer can stop a running ``re`` match. The ``regex`` module checks a deadline while it matches:
past ``timeout`` seconds the component is unscored (``kind="timeout"``) and the loop goes on.

``regex`` is compiled in its ``re``-compatible mode (``VERSION0``), so a pattern pasted from a
recipe that uses ``re`` reads the same.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

import regex

from graders._base import Unscored
from rm_service._exceptions import ConfigError

__all__ = ["MATCH_TIMEOUT_S", "UserRegex", "check_timeout", "compile_regex"]

MATCH_TIMEOUT_S = 0.25
"""The default time limit of one match, in seconds: an honest pattern on a long response takes
milliseconds; one that backtracks without bound is stopped here."""

_FLAGS = {re.IGNORECASE: regex.IGNORECASE, re.MULTILINE: regex.MULTILINE, re.DOTALL: regex.DOTALL}


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
        regex.error, ValueError: the pattern does not compile, or its inline flags contradict
            the re-compatible mode (``(?V1)``); the caller says whose fault that is.
    """

    __slots__ = ("_compiled", "groups", "pattern", "timeout")

    def __init__(self, pattern: str, flags: int = 0, *, timeout: float = MATCH_TIMEOUT_S) -> None:
        own = regex.VERSION0
        for flag, theirs in _FLAGS.items():
            if flags & flag:
                own |= theirs
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
