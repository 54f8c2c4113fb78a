"""Text repairs for the math check: what math-verify misreads, fixed before it reads it.

Each fix is backed by cases in ``tests/data/math_equiv.jsonl``: bare LaTeX golds and predictions
(wrapped in ``$...$``), plain numbers with separators (kept away from the LaTeX parser, which
reads ``1,000`` as a set), sentence punctuation inside math delimiters, mixed numbers
(``4 4/9``), inline math broken across lines, answer words in other languages, and trailing
variables that math-verify's unit stripping deletes (``x + 3c`` read as ``x + 3``). Also the
text-level reading around them: which part of a response holds its answer, and whether a gold
has math in it. Only the standard library: this runs in the worker processes of
:mod:`graders._math_worker`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

from graders._text import delimited_math, numeric_text

_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_ESCAPED_DOLLAR = re.compile(r"(?<!\\)\\\$")
_MATH_SPAN = re.compile(
    r"(?<!\\)\$\$(?P<dd>.+?)(?<!\\)\$\$"
    r"|(?<!\\)\$(?P<d>[^$\n]+?)(?<!\\)\$"
    r"|" + delimited_math("\\[", "\\]", "b") + "|" + delimited_math("\\(", "\\)", "p"),
    re.DOTALL,
)
# A plain number as math-verify's expression extractor reads it: thousands separators, a decimal
# point or comma, an optional percent sign. Such golds go to the expression parser, not LaTeX.
_PLAIN_NUMBER = re.compile(
    r"[+-]?(?:\d{1,3}(?:[ ,]\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?|\.\d+)\s*(?:%|\\%|percent)?"
)
_LATEX_COMMAND = re.compile(r"\\[a-zA-Z]+")
_TEXT_BLOCK = re.compile(
    r"\\(?:text|textbf|textit|textnormal|mathrm|mbox|operatorname)\s*\{[^{}]*\}"
)
_WORD = re.compile(r"[A-Za-z]{3,}")
# Words of 3+ letters that do not make an undelimited answer prose (function names and the like).
_MATH_WORDS = frozenset(
    {
        *("sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan"),
        *("sinh", "cosh", "tanh", "log", "exp", "sqrt", "frac", "dfrac", "tfrac"),
        *("pmatrix", "bmatrix", "matrix", "begin", "end", "left", "right", "cdot", "times"),
        *("div", "infty", "inf", "and", "min", "max", "gcd", "lcm", "mod", "deg", "det"),
        *("cup", "cap", "emptyset", "circ"),
    }
)
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
_CJK_BEFORE = re.compile(r"([\u3000-\u303f\u3400-\u9fff\uff00-\uffef])(?=[-+\d$\\.(])")
_MIXED_NUMBER = re.compile(
    r"(?<![\d./,\w])(?P<sign>[-+]?)(?P<whole>\d{1,3}(?: \d{3})+|\d+) (?P<num>\d+)/(?P<den>\d+)"
    r"(?![\d/.]\d)(?P<pct>\s*(?:%|percentage|percent|pct))?"
)
# Inline math broken across lines ("Answer $ \n 9 \n $") is not math for math-verify's LaTeX
# extractor; without this its plain-number fallback would still read the 9 out of it.
_BROKEN_INLINE = re.compile(
    r"(?<![\\$])\$(?!\$)[ \t]*\n[^$]*?\n[ \t]*(?<!\\)\$(?!\$)|\\\([ \t]*\n.*?\n[ \t]*\\\)",
    re.DOTALL,
)
# Answer anchors in other languages, mapped to the English word math-verify anchors on.
_ANSWER_WORDS = re.compile(r"(?i)\b(?:réponse|respuesta|resposta|antwort|risposta)\b|答案")
_MARKDOWN_EMPHASIS = re.compile(
    r"(?<![\w*])\*\*(?=\S)([^*\n]+?)(?<=\S)\*\*(?![\w*])"
    r"|(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])"
    r"|(?<!\w)__(?=\S)([^_\n]+?)(?<=\S)__(?!\w)"
    r"|(?<!`)`([^`\n]+)`(?!`)"
)
"""Markdown bold, italics and inline code around an answer (``<answer>**4**</answer>``): the
answer inside is the answer; math-verify read ``**4**`` as no number. Not a product or a power:
``2 * 3 * 4`` and ``2**3`` have no marker hugging a word on both sides."""
_LOGICAL_OR = re.compile(r"\\(?:lor|vee)(?![A-Za-z])|∨")
_LOGICAL_AND = re.compile(r"\\land(?![A-Za-z])|∧")
r"""``\lor`` and ``\land``: math-verify reads neither, and kept the last alternative alone, so
``\boxed{x = 7 \lor x = 2}`` equalled a gold of ``x = 2`` (and ``\boxed{2}`` the gold
``x = -2 \lor x = 2``). Written as ``\text{ or }`` / ``\text{ and }``, which it reads as a set
of answers, each side counts. (``\wedge`` is left alone: it is also the exterior product.)"""
# A single letter set upright (``\mathrm{e}``) is a symbol unless it follows a number, where it is a
# unit (``5\,\mathrm{m}``). Left as text, math-verify's unit stripping can delete it together with
# a closing brace: ``1 - \frac{1}{\mathrm{e}}`` became ``1 - \frac{1}{`` and matched ``1 + ...``.
_SINGLE_LETTER_TEXT = re.compile(
    r"(?<![\d\s])\\(?:text|mathrm|mathit|textnormal|rm)\s*\{\s*([A-Za-z])\s*\}"
)
_TRAILING_PUNCT = re.compile(r"(?<![.\s\\])\s*[.,;:]\s*$")
# A trailing variable right after a digit or a brace ("3c", "2ab", "\frac{1}{2}m") whose name is
# also in latex2sympy's unit list: its unit stripping deletes it, turning ``x + 3c`` into ``x + 3``
# (a false "equivalent"). Bracing the variable keeps it. Units written with a space ("5 m") or as
# text ("5\text{ m}"), the usual forms in answers, are still stripped.
_TRAILING_VARIABLE = re.compile(r"(?<=[\d}])([cdghlmost]|ab|bc|st)\s*$")
# The same names after an operator ("12 - s", "\frac{1}{2} + m"): no unit follows an operator,
# yet the unit stripping deleted the letter and left "12 -", which math-verify read as 12, so a
# wrong answer scored as the gold. Bracing keeps the variable (and changes nothing else).
# Scientific notation ("1e5", "1.5e-3"): math-verify read "1e5" as 1 times e times 5 and "1.5e3"
# in prose as 1.5, so 100000 and 1e5 were different answers. Written as a power of ten instead.
_SCIENTIFIC = re.compile(r"(?<![\w.\\^{])(\d+(?:\.\d+)?)[eE]([+-]?\d{1,3})(?![\w.])")


def _scientific_latex(m: re.Match[str]) -> str:
    return f"{m.group(1)}\\times 10^{{{m.group(2)}}}"


def _scientific_plain(text: str) -> str:
    return _SCIENTIFIC.sub(lambda m: f"${_scientific_latex(m)}$", text)


_OPERATOR_VARIABLE = re.compile(r"(?<=[-+*/^])(\s*)([cdghlmost]|ab|bc|st)\s*$")


_SPAN_DELIMITERS = {"dd": ("$$", "$$"), "d": ("$", "$"), "b": ("\\[", "\\]"), "p": ("\\(", "\\)")}


def _map_math(text: str, fn: Callable[[str], str]) -> str:
    """Apply ``fn`` to the content of every math span (``$``, ``$$``, ``\\[``, ``\\(``)."""

    def sub(m: re.Match[str]) -> str:
        name = m.lastgroup or "d"
        open_, close = _SPAN_DELIMITERS[name]
        return f"{open_}{fn(m.group(name))}{close}"

    return _MATH_SPAN.sub(sub, text)


def _map_plain(text: str, fn: Callable[[str], str]) -> str:
    """Apply ``fn`` to the text outside math spans."""
    out: list[str] = []
    pos = 0
    for m in _MATH_SPAN.finditer(text):
        out.append(fn(text[pos : m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(fn(text[pos:]))
    return "".join(out)


def _map_boxed(text: str, fn: Callable[[str], str]) -> str:
    """Apply ``fn`` to the content of every ``\\boxed{...}`` (brace-matched)."""
    out: list[str] = []
    pos = 0
    while True:
        i = text.find("\\boxed{", pos)
        if i < 0:
            break
        start = i + len("\\boxed{")
        depth, j = 1, start
        while j < len(text) and depth:
            if text[j] == "{" and text[j - 1] != "\\":
                depth += 1
            elif text[j] == "}" and text[j - 1] != "\\":
                depth -= 1
            j += 1
        if depth:
            break
        out.append(text[pos:start])
        out.append(fn(text[start : j - 1]))
        out.append("}")
        pos = j
    out.append(text[pos:])
    return "".join(out)


def _fix_math_content(content: str) -> str:
    """Repairs applied inside every math span and box, before math-verify normalises it."""
    content = _SCIENTIFIC.sub(_scientific_latex, content)
    content = _SINGLE_LETTER_TEXT.sub(r"\1", content)
    content = _TRAILING_PUNCT.sub("", content)

    content = _OPERATOR_VARIABLE.sub(r"\1{\2}", content)
    return _TRAILING_VARIABLE.sub(r"{\1}", content)


def _fix_mixed_numbers(text: str) -> str:
    """``4 4/9`` -> ``$\\frac{40}{9}$``; an improper or zero-denominator one becomes opaque text."""

    def sub(m: re.Match[str]) -> str:
        whole = int(m.group("whole").replace(" ", ""))
        num, den = int(m.group("num")), int(m.group("den"))
        if den == 0 or num >= den:
            # "11 6/6" is neither 11, 12 nor 1: make sure no part of it reads as a number.
            return "\\text{" + m.group(0).strip().replace("%", "") + "}"
        value = whole * den + num
        sign = "-" if m.group("sign") == "-" else ""
        if m.group("pct"):
            den *= 100  # "4 4/9%" is 40/900 (math-verify would equate 40/9% with 40/9)
        return f"${sign}\\frac{{{value}}}{{{den}}}$"

    return _MIXED_NUMBER.sub(sub, text)


def _is_delimited(text: str) -> bool:
    return bool(
        _UNESCAPED_DOLLAR.search(text) or "\\[" in text or "\\(" in text or "\\boxed" in text
    )


def _is_bare_math(text: str) -> bool:
    """True for a short undelimited answer written as math (``\\frac{x}{7}+1``, ``(1,2]``).

    Such text has to be wrapped in ``$...$`` for math-verify to read it as LaTeX; prose must not
    be, or "Answer is forty two" becomes a product of symbols.
    """
    if not text or len(text) > 300 or "\n" in text or _is_delimited(text):
        return False
    stripped = _LATEX_COMMAND.sub(" ", _TEXT_BLOCK.sub(" ", text))
    if _CJK.search(text):
        return False
    return all(w.lower() in _MATH_WORDS for w in _WORD.findall(stripped))


def _wrap(text: str) -> str:
    return "$" + re.sub(r"(?<!\\)%", r"\\%", text) + "$"


def _without_emphasis(text: str) -> str:
    return _MARKDOWN_EMPHASIS.sub(lambda m: next(g for g in m.groups() if g is not None), text)


def _ascii_digits(text: str) -> str:
    """``text`` with the digits a reader sees as digits written in ASCII: full-width ``５６``
    (Chinese and Japanese text), other scripts' decimal digits (Arabic-Indic ``٥٦``,
    mathematical bold ``𝟓𝟔``), and no invisible characters between them (a direction mark
    before a number). math-verify reads none of these, so an honest ``<answer>５６</answer>``
    scored 0 as "no answer found". Superscripts (``²``) are not decimal digits and stay powers.
    """
    if text.isascii():
        return text
    text = numeric_text(text)
    return "".join(
        str(unicodedata.decimal(c)) if not c.isascii() and unicodedata.category(c) == "Nd" else c
        for c in text
    )


def _prepare_text(text: str) -> str:
    """Text-level repairs, applied before deciding how to read the text."""
    text = _ascii_digits(text).strip()
    text = _ESCAPED_DOLLAR.sub("", text)  # "\$5.40" is currency: math-verify drops it too
    text = _BROKEN_INLINE.sub(" ", text)
    text = _map_plain(text, _fix_mixed_numbers)
    text = _map_plain(text, _scientific_plain)
    text = _ANSWER_WORDS.sub(" answer", text)
    if "*" in text or "_" in text or "`" in text:  # outside math: $2 *3* 4$ is a product
        text = _map_plain(text, _without_emphasis)
    if "\\l" in text or "\\vee" in text or "∨" in text or "∧" in text:
        text = _LOGICAL_AND.sub(r" \\text{ and } ", _LOGICAL_OR.sub(r" \\text{ or } ", text))
    return _CJK_BEFORE.sub(r"\1 ", text).strip()


def _fix_spans(text: str) -> str:
    return _map_boxed(_map_math(text, _fix_math_content), _fix_math_content)


_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_ODD_TAG = re.compile(r"<(/?)(think|answer)(?:\s[^<>]*)?>", re.IGNORECASE)


def canonical_tags(response: str) -> str:
    """``response`` with its think and answer tags written as ``<think>``, ``</answer>``...

    ``<ANSWER>56</ANSWER>``, ``<Answer>`` and ``<answer id="final">`` are an answer block to a
    reader, but math-verify reads no number after a ``>``, so the right answer in one scored 0
    ("no answer found"), and an upper-case ``</THINK>`` let the reasoning count as the answer.
    The format grader still holds them to the exact tags; the correctness of what they hold is
    graded here either way.
    """
    if "<" not in response:
        return response
    return _ODD_TAG.sub(lambda m: f"<{m[1]}{m[2].lower()}>", response)


def final_part(response: str) -> str | None:
    """The part of a response that holds its final answer; ``None`` when reasoning never ended.

    Reasoning (``<think>...</think>``) never counts. In the R1 format the answer is the last
    ``<answer>...</answer>`` block (an unclosed one runs to the end); whether the format itself is
    right is the format grader's business, not this one's. Tags are read in any case and with
    attributes (:func:`canonical_tags`).
    """
    response = canonical_tags(response)
    if "</think>" in response:
        response = response.rsplit("</think>", 1)[1]
    elif "<think>" in response:
        return None
    blocks = _ANSWER_BLOCK.findall(response)
    if blocks:
        return blocks[-1]
    if "<answer>" in response:
        return response.rsplit("<answer>", 1)[1]
    return response


def _decimals(text: str) -> int:
    return max((len(m) for m in re.findall(r"\d\.(\d+)", text)), default=0)


def _holds_math(text: str, parsed: list[Any]) -> bool:
    """Whether a parsed gold has something to compare.

    When math-verify cannot build an expression it still hands back the raw string, to compare
    as written: ``"é"`` or ``"\\x00"`` came back as themselves and every response scored 0.0
    against them, where ``"abc"`` (nothing extracted) was an invalid gold. A string-only parse
    counts as math only if the text has a number (``½``, ``٣`` too), a math symbol (``∞``,
    ``√``, ``+``) or a LaTeX command; letters alone (``"a\\x00b"``, ``"Q.E.D."``) that
    math-verify could not read as variables are not.
    """
    if any(not isinstance(p, str) for p in parsed):
        return True
    return bool(_LATEX_COMMAND.search(text)) or any(
        c.isnumeric() or unicodedata.category(c) == "Sm" for c in text
    )
