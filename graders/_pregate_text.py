"""What every pre-gate shares: the ``PreGate`` protocol and the normalised form text is matched on.

One idea: the gate contract and its text normalisation. A gate is any object with a ``name`` and
``check(response, fields) -> reason | None``; it matches on :func:`normalize_for_gate` (NFKC,
casefolded, non-letters to spaces) and exempts a response the query quotes verbatim
(:func:`asked_verbatim`). Every gate module (:mod:`graders._master_key`,
:mod:`graders._restate`, :mod:`graders._degenerate`, :mod:`graders._inject_gate`) imports
from here, and :mod:`graders._pregate` assembles them, so no gate module imports the assembly.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from functools import lru_cache, wraps
from typing import Protocol, TypeVar, runtime_checkable

__all__ = ["PreGate", "asked_verbatim", "normalize_for_gate", "per_text", "tokens_for_gate"]


@runtime_checkable
class PreGate(Protocol):
    """A rule run before the judge; ``check`` returns why the response is worthless, or ``None``.

    ``fields`` holds the text of every field the grader received (``query``, ``reference_response``,
    ...), so a gate can compare the response with them.
    """

    name: str

    def check(self, response: str, fields: Mapping[str, str]) -> str | None: ...


# --- normalisation -------------------------------------------------------------------------------

_CJK_CLASS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
"""Hiragana, katakana, CJK ideographs (base, extension A, compatibility) and hangul syllables."""
_CJK_RE = re.compile(f"([{_CJK_CLASS}])")
_NON_CONTENT_RE = re.compile(
    r"(?:[^\w∞∅"  # letters and digits; ∞ and ∅ are whole answers on their own
    r"\u0300-\u036f"  # combining diacritics
    r"\u0900-\u0963\u0966-\u0dff"  # Indic scripts with their vowel signs (not the danda)
    r"\u0e31\u0e34-\u0e3a\u0e47-\u0e4e"  # Thai vowel and tone marks
    r"]|_)+"
)
"""A run of characters that carry no content: punctuation, symbols, whitespace, underscores."""


def _is_cjk(ch: str) -> bool:
    return bool(_CJK_RE.fullmatch(ch))


def normalize_for_gate(text: str) -> str:
    """NFKC, casefold, every run of non-letter/non-digit characters to one space, stripped.

    ``"**Let’s solve it step-by-step:**"`` → ``"let s solve it step by step"``. Apostrophes become
    spaces on both sides of a comparison (phrases go through the same function), so curly and
    straight quotes match. Combining marks stay in their word (Devanagari vowel signs). One
    regex pass, so a 100 kB response costs a few milliseconds.

    Texts up to :data:`_MEMO_MAX_CHARS` are remembered (a bounded LRU): the gates of one record
    normalise the same response and query many times over, across its graders too.
    """
    if len(text) <= _MEMO_MAX_CHARS:
        return _normalize_memo(text)
    return _normalize(text)


def _normalize(text: str) -> str:
    if text.isascii():  # the same result, several times faster: no regex over the text
        return " ".join(text.translate(_ASCII_NON_CONTENT).lower().split())
    t = unicodedata.normalize("NFKC", text).casefold()
    return _NON_CONTENT_RE.sub(" ", t).strip()


_ASCII_NON_CONTENT = str.maketrans({chr(i): " " for i in range(128) if not chr(i).isalnum()})
"""ASCII characters that carry no content (all but letters and digits), to a space."""


_MEMO_MAX_CHARS = 4096
"""Longer texts are not memoised, so the memo holds at most ``maxsize`` short texts."""
_normalize_memo = lru_cache(maxsize=2048)(_normalize)

T = TypeVar("T")


def per_text(fn: Callable[[str], T]) -> Callable[[str], T]:
    """``fn``, remembered for texts up to :data:`_MEMO_MAX_CHARS` (a bounded LRU).

    For a pure function of a query: GRPO grades a group of responses to each prompt, and the
    gates would otherwise scan the same query once per response (whether it asks for a copy, a
    transformation, a repetition, a yes/no answer).
    """
    memo = lru_cache(maxsize=2048)(fn)

    @wraps(fn)
    def remembered(text: str) -> T:
        return memo(text) if len(text) <= _MEMO_MAX_CHARS else fn(text)

    return remembered


def tokens_for_gate(text: str) -> list[str]:
    """Words of :func:`normalize_for_gate`, with each CJK character its own token.

    CJK text has no spaces, so without this a whole Chinese sentence would be one "word" and
    overlap measures would see nothing in common between a question and its restatement.
    """
    if len(text) <= _MEMO_MAX_CHARS:
        return list(_tokens_memo(text))
    return _tokens(text)


def _tokens(text: str) -> list[str]:
    normal = normalize_for_gate(text)
    return normal.split() if normal.isascii() else _CJK_RE.sub(r" \1 ", normal).split()


@lru_cache(maxsize=2048)
def _tokens_memo(text: str) -> tuple[str, ...]:
    return tuple(_tokens(text))


# --- gates ---------------------------------------------------------------------------------------

_QUOTED_RE = re.compile(
    r'"([^"\n]{1,300})"|“([^”\n]{1,300})”|‘([^’\n]{1,300})’|`([^`\n]{1,300})`|「([^」\n]{1,300})」'
    r"|(?<!\w)'([^'\n]{1,300})'(?!\w)"
)
_ASKING_FIELDS = ("query", "instruction")


def asked_verbatim(response: str, fields: Mapping[str, str]) -> bool:
    """Whether the query or instruction quotes exactly this response (``Reply with "OK"``).

    Then a short or restating response is what was asked for, not a trick. The exemption cannot
    be abused: the policy writes the response, not the query.
    """
    target = normalize_for_gate(response)
    if not target:
        return False
    for field in _ASKING_FIELDS:
        for m in _QUOTED_RE.finditer(fields.get(field) or ""):
            quoted = next(g for g in m.groups() if g is not None)
            if normalize_for_gate(quoted) == target:
                return True
    return False


def _quote(text: str, limit: int = 80) -> str:
    t = " ".join(text.split())
    return repr(t if len(t) <= limit else t[:limit] + "…")
