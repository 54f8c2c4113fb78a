"""``StringMatchGrader``: the response against a reference string, four ways.

The deterministic comparisons every eval stack ships (OpenAI ``string_check``'s ``eq``/``like``/
``ilike``, Inspect's ``match``/``includes``/``pattern``, SQuAD's exact match), as one grader with a
``mode``. Each mode is a small pure function; the grader only picks one and builds the result.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Literal, get_args

import regex

from graders._base import BaseGrader, Unscored, grader
from graders._text import as_gold_list, as_text, clip, grade_any_gold
from graders._user_regex import (
    MATCH_TIMEOUT_S,
    PatternTooLarge,
    UserRegex,
    check_timeout,
    compile_regex,
)
from rm_service._exceptions import ConfigError
from rm_service._result import GraderScore

__all__ = ["StringMatchGrader", "StringMatchMode", "match_string", "normalize_answer"]

StringMatchMode = Literal["exact", "normalized", "normalised", "contains", "regex"]
RegexMatch = Literal["search", "fullmatch"]

_PUNCT_RE = re.compile(r"[^\w\s]|_")
_ARTICLES_RE = re.compile(r"\b(?:a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD-style answer normalisation, made Unicode-aware.

    In order: Unicode NFKC (full-width ``４２`` → ``42``, ligatures), ``casefold`` (a stronger
    ``lower``: ``ß`` → ``ss``), delete every character that is neither a letter, a digit nor
    whitespace (SQuAD deletes ASCII punctuation; this also deletes ``“”—…`` and symbols, and, as
    in SQuAD, deletes rather than replaces, so ``don't`` → ``dont`` and ``3.14`` → ``314``), drop
    the English articles ``a``/``an``/``the`` as whole words, collapse whitespace runs to one
    space and strip.
    """
    t = unicodedata.normalize("NFKC", text).casefold()
    t = _PUNCT_RE.sub("", t)
    t = _ARTICLES_RE.sub(" ", t)
    return " ".join(t.split())


def match_string(
    response: str,
    reference: str | UserRegex,
    *,
    mode: Literal["exact", "normalized", "contains", "regex"],
    ignore_case: bool = False,
    match: RegexMatch = "search",
) -> tuple[bool, dict[str, Any]]:
    """Whether ``response`` matches ``reference`` under ``mode``, plus what to put in metadata.

    * ``exact``: equal after stripping surrounding whitespace on both sides.
    * ``normalized``: equal after :func:`normalize_answer` on both sides.
    * ``contains``: the (stripped) reference is a substring of the response.
    * ``regex``: ``reference`` (a compiled pattern) searches / fullmatches the response.

    ``ignore_case`` applies ``casefold`` to both sides in ``exact`` and ``contains`` (the regex is
    compiled with it by the caller). ``normalized`` always ignores case.

    Raises:
        Unscored: the reference is empty (after stripping or normalising): an empty reference
            would match every response in ``contains`` mode and every blank one otherwise.
    """
    if isinstance(reference, UserRegex):
        m = reference.find(response, match)
        meta: dict[str, Any] = {"pattern": reference.pattern}
        if m is not None:
            meta["matched"] = clip(m.group(0))
            if reference.groups:
                meta["groups"] = [None if g is None else clip(g) for g in m.groups()]
        return m is not None, meta
    if mode == "normalized":
        resp, ref = normalize_answer(response), normalize_answer(reference)
        meta = {"response_normalized": clip(resp), "reference_normalized": clip(ref)}
    else:
        resp, ref = response.strip(), reference.strip()
        if ignore_case:
            resp, ref = resp.casefold(), ref.casefold()
        meta = {}
    if not ref:
        raise Unscored(
            f"the reference is empty{' after normalisation' if mode == 'normalized' else ''}",
            kind="invalid_input",
        )
    return (ref in resp if mode == "contains" else resp == ref), meta


@grader
class StringMatchGrader(BaseGrader):
    """1.0 if the response matches the reference string, else 0.0.

    Modes (see :func:`match_string` for the precise rules):

    * ``exact`` (default): equal up to surrounding whitespace (OpenAI ``eq``).
    * ``normalized`` (alias ``normalised``): SQuAD exact match, see :func:`normalize_answer`.
    * ``contains``: the reference occurs in the response (OpenAI ``like``; with
      ``ignore_case=True``, ``ilike``). Note ``"4"`` is contained in ``"42"``: use ``regex`` with
      ``\\b`` for whole words.
    * ``regex``: a regex searches (default) or fullmatches the response. The pattern is the
      record's ``reference_response``, or ``pattern=`` given at construction. A record whose
      pattern does not compile is unscored (``invalid_input``).

    A list of references in the record means any of them: 1.0 if one matches (an empty or, in
    ``regex`` mode, invalid one is passed over; see :func:`graders._text.grade_any_gold`).

    The reference comes from the record's ``reference_response`` unless fixed at construction
    (``reference=`` for the string modes, ``pattern=`` for ``regex``); then only ``response`` is
    required, e.g. a "refuses politely" check with ``mode="contains", reference="I can't"``.

    Metadata: the normalised strings (``normalized`` mode) or the matched text and groups
    (``regex`` mode).

    Args:
        mode: the comparison.
        reference: a fixed reference string (string modes only).
        pattern: a fixed regex (``regex`` mode only), compiled once here.
        ignore_case: case-insensitive ``exact``/``contains``/``regex``.
        match: ``"search"`` (default) or ``"fullmatch"`` (``regex`` mode only).
        match_timeout: seconds one match may take (``regex`` mode only; default
            :data:`~graders._user_regex.MATCH_TIMEOUT_S`); past it the response is unscored
            (``timeout``): a pattern that backtracks without bound would stall the loop.
        name: the result name.

    Raises:
        ConfigError: unknown mode, an invalid or misplaced ``pattern``/``reference``/``match``.
    """

    required_fields: tuple[str, ...] = ("response", "reference_response")
    default_name = "string_match"
    inline = True  # pure CPU, never awaits
    thread_safe = True  # a pure function of its input

    def __init__(
        self,
        *,
        mode: StringMatchMode = "exact",
        reference: str | None = None,
        pattern: str | None = None,
        ignore_case: bool = False,
        match: RegexMatch | None = None,
        match_timeout: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if not isinstance(ignore_case, bool):  # bool("false") is True
            raise ConfigError(f"ignore_case must be true or false, got {ignore_case!r}")
        if mode not in get_args(StringMatchMode):
            raise ConfigError(
                f"string_match mode must be one of {get_args(StringMatchMode)}, got {mode!r}"
            )
        self.mode: Literal["exact", "normalized", "contains", "regex"] = (
            "normalized" if mode == "normalised" else mode
        )
        self.ignore_case = bool(ignore_case)
        self._flags = re.IGNORECASE if ignore_case else 0
        if self.mode == "regex":
            if reference is not None:
                raise ConfigError("string_match regex mode takes pattern=, not reference=")
            if match not in (None, *get_args(RegexMatch)):
                raise ConfigError(f"match must be 'search' or 'fullmatch', got {match!r}")
        else:
            if pattern is not None or match is not None or match_timeout is not None:
                raise ConfigError(
                    f"pattern=, match= and match_timeout= apply to regex mode, not {mode!r}"
                )
            if reference is not None and not isinstance(reference, str):
                raise ConfigError(f"reference must be a string, got {type(reference).__name__}")
            if reference is not None and not (
                normalize_answer(reference) if self.mode == "normalized" else reference.strip()
            ):
                raise ConfigError(f"reference {reference!r} is empty for mode {mode!r}")
        self.match: RegexMatch = match or "search"
        self._timeout = MATCH_TIMEOUT_S if match_timeout is None else check_timeout(match_timeout)
        self._fixed: str | UserRegex | None = (
            compile_regex(pattern, self._flags, what="string_match pattern", timeout=self._timeout)
            if pattern is not None
            else reference
        )
        if self._fixed is not None:
            # A fixed reference makes the record's one irrelevant: do not require it.
            self.required_fields = ("response",)

    def __repr__(self) -> str:
        return f"StringMatchGrader(name={self.name!r}, mode={self.mode!r})"

    async def _aevaluate(self, response: Any, reference_response: Any = None) -> GraderScore:
        text = as_text(response, "response")
        golds = (
            None
            if self._fixed is not None
            else as_gold_list(reference_response, "reference_response")
        )
        if golds is None:
            ref = self._fixed
            if ref is None:
                ref = as_text(reference_response, "reference_response")
            score, reason, metadata = self._match(text, ref)
        else:  # several acceptable references: any match
            score, reason, metadata = grade_any_gold(
                golds, "reference_response", lambda gold: self._match(text, gold)
            )
        return GraderScore(name=self.name, score=score, reason=reason, metadata=metadata)

    def _match(self, text: str, ref: str | UserRegex) -> tuple[float, str, dict[str, Any]]:
        if self.mode == "regex" and isinstance(ref, str):
            ref = _compile_record_pattern(ref, self._flags, self._timeout)
        ok, metadata = match_string(
            text, ref, mode=self.mode, ignore_case=self.ignore_case, match=self.match
        )
        return float(ok), f"{self.mode}: {'match' if ok else 'no match'}", metadata


def _compile_record_pattern(pattern: str, flags: int, timeout: float) -> UserRegex:
    """Compile a per-record pattern (the ``regex`` module caches compiled patterns); bad data
    is unscored. A pattern too large to compile safely (``a{1000000000}``: an OOM kill) is
    refused before compiling, since a record is data the service does not control."""
    if not pattern:
        raise Unscored("the reference pattern is empty", kind="invalid_input")
    try:
        return UserRegex(pattern, flags, timeout=timeout)
    except PatternTooLarge as exc:
        raise Unscored(
            f"the reference regex in reference_response {clip(pattern, 200)!r} is refused before "
            f"compiling: {exc}",
            kind="invalid_input",
        ) from exc
    except (regex.error, ValueError) as exc:  # ValueError: flags at odds, e.g. (?V1)
        raise Unscored(
            f"invalid reference regex in reference_response {clip(pattern, 200)!r}: {exc}",
            kind="invalid_input",
        ) from exc
