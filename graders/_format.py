"""``FormatGrader``: does the response have the shape the prompt asked for?

Format rewards are the cheap half of an R1-style GRPO reward: they teach the policy to put its
reasoning in ``<think>`` and its answer where an accuracy grader will look. Four modes, one
pure function each (``check_*``), all returning ``(score, reason, metadata)``:

* ``think``: TRL's ``think_format_reward``, bit for bit;
* ``think_answer``: exactly one think block then exactly one answer block, nothing else;
* ``regex``: any regular expression;
* ``template``: a sentence with placeholders, ``"The answer is [NUM]."``, with partial credit.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, get_args

from graders._base import BaseGrader, grader
from graders._text import (
    NUMBER_CORE,
    as_text,
    clip,
    is_blank,
    jsonable_number,
    parse_number,
)
from graders._user_regex import MATCH_TIMEOUT_S, UserRegex, check_timeout, compile_regex
from rm_service._exceptions import ConfigError
from rm_service._result import GraderScore

__all__ = [
    "PLACEHOLDERS",
    "FormatGrader",
    "FormatMode",
    "Template",
    "check_regex",
    "check_template",
    "check_think",
    "check_think_answer",
    "compile_template",
]

FormatMode = Literal["think", "think_answer", "regex", "template"]
RegexMatch = Literal["fullmatch", "match", "search"]
Outcome = tuple[float, str, dict[str, Any]]
"""What every ``check_*`` returns: ``(score, reason, metadata)``."""
Check = Callable[[str], Outcome]

_TAG_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")

# --- think (TRL) ---------------------------------------------------------------------------------


def _think_regex(tag: str) -> re.Pattern[str]:
    """TRL's ``^<think>(?!.*<think>)(.*?)</think>.*$`` (DOTALL), with the tail captured too."""
    o, c = re.escape(f"<{tag}>"), re.escape(f"</{tag}>")
    return re.compile(rf"^{o}(?!.*{o})(.*?){c}(.*)$", re.DOTALL)


def check_think(text: str, *, regex: re.Pattern[str], tag: str) -> Outcome:
    """1.0 iff ``text`` matches TRL's ``think_format_reward`` pattern.

    That is: it starts with ``<think>`` (no leading whitespace), contains no second ``<think>``,
    and has a ``</think>`` somewhere after it; anything may follow, including nothing and
    including a stray second ``</think>``. The think block may be empty.
    """
    m = regex.match(text)
    if m:
        answer = m.group(2).strip()
        return (
            1.0,
            f"starts with a single <{tag}>…</{tag}> block",
            {"think_chars": len(m.group(1)), "answer": clip(answer)},
        )
    o, c = f"<{tag}>", f"</{tag}>"
    if not text.startswith(o):
        why = f"does not start with {o}"
        if text.lstrip().startswith(o):
            why += " (leading whitespace)"
    elif o in text[len(o) :]:
        why = f"more than one {o}"
    else:
        why = f"no closing {c}"
    return 0.0, why, {}


# --- think_answer (strict) -----------------------------------------------------------------------


def check_think_answer(text: str, *, think_tag: str, answer_tag: str) -> Outcome:
    """1.0 iff ``text`` is exactly one think block, then exactly one non-empty answer block.

    Precisely: each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` occurs exactly once,
    in that order, and only whitespace comes before ``<think>``, between ``</think>`` and
    ``<answer>``, and after ``</answer>``. The answer must contain non-whitespace (an empty answer
    is never well-formed, and would make the format reward free to collect); the think block may
    be empty, as Qwen3's non-thinking mode emits ``<think>\\n\\n</think>``.

    Plain string scans, no regex: linear time even on adversarial input, and the first broken rule
    becomes the reason.
    """
    ot, ct, oa, ca = f"<{think_tag}>", f"</{think_tag}>", f"<{answer_tag}>", f"</{answer_tag}>"
    for tag in (ot, ct, oa, ca):
        n = text.count(tag)
        if n != 1:
            return 0.0, f"expected exactly one {tag}, found {n}", {}
    i_ot, i_ct, i_oa, i_ca = (text.find(tag) for tag in (ot, ct, oa, ca))
    if not i_ot < i_ct < i_oa < i_ca:
        return 0.0, f"tags out of order (expected {ot}…{ct} {oa}…{ca})", {}
    if text[:i_ot].strip():
        return 0.0, f"text before {ot}", {}
    if text[i_ct + len(ct) : i_oa].strip():
        return 0.0, f"text between {ct} and {oa}", {}
    if text[i_ca + len(ca) :].strip():
        return 0.0, f"trailing text after {ca}", {}
    answer = text[i_oa + len(oa) : i_ca].strip()
    if _shows_nothing(answer):
        return 0.0, f"empty {oa} block", {}
    return (
        1.0,
        f"one {ot} block then one {oa} block",
        {"think_chars": i_ct - i_ot - len(ot), "answer": clip(answer)},
    )


def _shows_nothing(answer: str) -> bool:
    """Whether an answer block shows a reader nothing: whitespace, zero-width characters, fillers
    or blank cells (:func:`~graders._text.is_blank`), or control characters alone. A NUL byte
    (``<answer>\x00</answer>``) was a non-empty answer, so the format reward was paid for an
    answer block with nothing in it."""
    return is_blank("".join(c for c in answer if unicodedata.category(c) != "Cc"))


# --- regex ---------------------------------------------------------------------------------------


def check_regex(text: str, *, regex: UserRegex, match: RegexMatch) -> Outcome:
    """1.0 iff ``regex`` matches ``text``: the whole text (``fullmatch``), a prefix of it
    (``match``, as ``re.match``: anchored at the start, anything may follow) or anywhere in it
    (``search``).

    Metadata holds the matched text and groups; a group named ``answer`` is also lifted to
    ``metadata["answer"]``.
    """
    m = regex.find(text, match)
    if m is None:
        return 0.0, f"pattern does not {match} the response", {}
    metadata: dict[str, Any] = {"matched": clip(m.group(0))}
    if regex.groups:
        metadata["groups"] = [None if g is None else clip(g) for g in m.groups()]
    named = m.groupdict()
    if named:
        metadata["named_groups"] = {k: None if v is None else clip(v) for k, v in named.items()}
        if named.get("answer") is not None:
            metadata["answer"] = clip(named["answer"])
    return 1.0, f"pattern {match}es the response", metadata


# --- template ------------------------------------------------------------------------------------

PLACEHOLDERS: dict[str, str] = {
    # Not preceded by a digit or dot, so "[NUM]" cannot match the "2" of "12" or of "1.2"; nor
    # by a digit and a comma, so it never starts inside "1,234" (a search would retry at every
    # group of "1,111,111,…" and read all the groups after it: quadratic).
    "NUM": r"(?<![0-9.])(?<![0-9],)" + NUMBER_CORE,
    # A whole word (letters/digits, inner ' or -), atomic: no backtracking into a long "word".
    "WORD": r"(?<![\w'’-])(?>\w+(?:['’-]\w+)*)",
    # Non-empty and ending in a non-space (so it never has to be retried inside a whitespace run).
    "TEXT": r".*?\S",
}
"""Template placeholders and what each matches (``[NUM]`` uses the shared number syntax).

``[TEXT]`` (any non-empty text) may only open the template or be its last placeholder: an
unbounded placeholder between two literals makes matching quadratic on repetitive responses
("answer: answer: answer: …"), and these checks run inline on the event loop.
"""

_NUM = PLACEHOLDERS["NUM"]
_BOXED_NUM = rf"\\(?:boxed|fbox)\s*+\{{\s*+{_NUM}\s*+\}}"
_MATH_NUM = rf"(?:{_BOXED_NUM}|{_NUM})"
WRAPPED_NUM = (
    rf"(?:{_BOXED_NUM}"
    rf"|\$\$\s*+{_MATH_NUM}\s*+\$\$"
    rf"|\$\s*+{_MATH_NUM}\s*+\$"
    rf"|\\\(\s*+{_MATH_NUM}\s*+\\\)"
    rf"|\\\[\s*+{_MATH_NUM}\s*+\\\]"
    rf"|\*\*\s*+{_NUM}\s*+\*\*)"
)
"""A ``[NUM]`` wrapped the way models write an answer: ``\\boxed{4}``, ``$4$``, ``$$4$$``,
``\\(4\\)``, ``\\[4\\]``, ``$\\boxed{4}$`` or ``**4**``. Each opener needs its own closer. It
fills a placeholder in a *partial* match only: the template is there, the number is dressed."""

_NUM_RE = re.compile(_NUM)
_TOKEN_RE = re.compile(r"\[([A-Z]+)\]")
_TRAILING = string.whitespace + ".!?;:,。！？"


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template. Build it with :func:`compile_template`."""

    text: str
    placeholders: tuple[str, ...]
    exact: re.Pattern[str]
    partial: re.Pattern[str]


def _literal(text: str) -> str:
    """Escape ``text``, letting each whitespace run match any non-empty whitespace run.

    The run is possessive (``\\s++``): what follows it never starts with whitespace, so giving
    characters back could never help, and not trying keeps long blank runs linear.
    """
    return "".join(r"\s++" if p.isspace() else re.escape(p) for p in re.split(r"(\s+)", text) if p)


def compile_template(template: object) -> Template:
    """Compile a template such as ``"The answer is [NUM]."``.

    Raises:
        ConfigError: empty template, no placeholder (use ``string_match`` for fixed text), an
            unknown ``[UPPERCASE]`` token (almost always a typo such as ``[NUMBER]``), or a
            ``[TEXT]`` between two literals (see :data:`PLACEHOLDERS`).
    """
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f"template must be a non-empty string, got {template!r}")
    text = template.strip()
    parts = _TOKEN_RE.split(text)
    literals, names = parts[0::2], tuple(parts[1::2])
    unknown = sorted({n for n in names if n not in PLACEHOLDERS})
    if unknown:
        raise ConfigError(
            f"template {template!r}: unknown placeholder(s) {', '.join(f'[{n}]' for n in unknown)}"
            f"; known: {', '.join(f'[{n}]' for n in PLACEHOLDERS)}"
        )
    if not names:
        known = ", ".join(f"[{n}]" for n in PLACEHOLDERS)
        raise ConfigError(
            f"template {template!r} has no placeholder ({known}); use string_match for fixed text"
        )

    for i, name in enumerate(names):
        opens = i == 0 and not literals[0]
        closes = i == len(names) - 1 and not literals[-1].strip(_TRAILING)
        if name == "TEXT" and not (opens or closes):
            raise ConfigError(
                f"template {template!r}: [TEXT] may only open the template or end it "
                "(followed by nothing but final punctuation), to keep matching linear-time"
            )
    # A leading [TEXT] can absorb any prefix, so anchoring it at the start finds the same matches
    # as searching from every position, without the quadratic retries.
    anchor = r"\A" if names[0] == "TEXT" and not literals[0] else ""

    def build(lits: list[str], *, wrapped: bool) -> str:
        out = [anchor, _literal(lits[0])]
        for name, lit in zip(names, lits[1:], strict=True):
            # A [TEXT] that ends the pattern takes the rest of the response, not one character.
            body = r".*\S" if name == "TEXT" and not lit else PLACEHOLDERS[name]
            if name == "NUM" and wrapped:
                body = f"{body}|{WRAPPED_NUM}"
            out.append(f"({body})")
            out.append(_literal(lit))
        return "".join(out)

    loose = [*literals[:-1], literals[-1].rstrip(_TRAILING)]
    return Template(
        text=text,
        placeholders=names,
        exact=re.compile(build(literals, wrapped=False), re.DOTALL),
        partial=re.compile(build(loose, wrapped=True), re.DOTALL | re.IGNORECASE),
    )


def _captures(m: re.Match[str], names: tuple[str, ...]) -> list[dict[str, Any]] | None:
    """The placeholder captures of ``m``; ``None`` if a ``[NUM]`` is not a usable number.

    A wrapped ``[NUM]`` (see :data:`WRAPPED_NUM`) reports the number as ``text`` and what it
    was wrapped in as ``wrapped``.
    """
    out = []
    for i, name in enumerate(names, start=1):
        text = m.group(i)
        cap: dict[str, Any] = {"placeholder": name, "text": clip(text)}
        if name == "NUM":
            inner = _NUM_RE.search(text)
            n = parse_number(inner.group(0)) if inner else None
            if inner is None or n is None:  # e.g. "1/0"
                return None
            cap["value"] = jsonable_number(n.value)
            if inner.group(0) != text:
                cap["text"], cap["wrapped"] = inner.group(0), clip(text)
        out.append(cap)
    return out


def check_template(text: str, *, template: Template, partial_credit: float) -> Outcome:
    """Score ``text`` against ``template``: 1.0 exact, ``partial_credit`` partial, 0.0 otherwise.

    * **exact**: the response, with leading/trailing whitespace removed, is the template with each
      placeholder filled: literal text verbatim and case-sensitive, except that a whitespace run
      in the template matches any whitespace run.
    * **partial**: not exact, but the template, with its trailing punctuation (``.!?;:,``) dropped,
      matches *somewhere* in the response case-insensitively (same whitespace rule), a ``[NUM]``
      also matching a wrapped number (:data:`WRAPPED_NUM`). This covers a changed case ("the
      answer is 42"), different or missing final punctuation ("… is 42!"), extra text before or
      after ("Let me think. The answer is 42. Done.") and a dressed number ("The answer is
      $\\boxed{42}$.").
    * **none**: every placeholder must still be filled (``[NUM]`` by a number), so an empty
      response, "The answer is ." or "The answer is many." scores 0.0.
    """
    m = template.exact.fullmatch(text.strip())
    if m is not None and (caps := _captures(m, template.placeholders)) is not None:
        return 1.0, "matches the template exactly", {"match": "exact", "captures": caps}
    m = template.partial.search(text)
    if m is not None and (caps := _captures(m, template.placeholders)) is not None:
        return (
            partial_credit,
            "matches the template up to case, final punctuation, surrounding text or a wrapped "
            "number",
            {"match": "partial", "captures": caps, "matched": clip(m.group(0))},
        )
    return 0.0, f"does not match the template {template.text!r}", {"match": "none"}


# --- the grader ----------------------------------------------------------------------------------


@grader
class FormatGrader(BaseGrader):
    """1.0 when the response has the required format, else 0.0 (``template`` mode: also 0.5).

    Modes (see each ``check_*`` function for the exact rule):

    * ``think`` (default): TRL's ``think_format_reward``: matches
      ``^<think>(?!.*<think>)(.*?)</think>.*$`` with DOTALL. Lenient about what follows.
    * ``think_answer``: strict R1 format: exactly one ``<think>…</think>`` then exactly one
      non-empty ``<answer>…</answer>``, only whitespace around and between; trailing text after
      ``</answer>`` or a repeated block fails. Metadata ``answer`` is the answer block's content.
    * ``regex``: ``pattern`` must ``fullmatch`` (default), ``match`` (as ``re.match``: anchored
      at the start only) or ``search`` the response. DOTALL is on unless ``dotall=False``;
      ``multiline=True`` adds MULTILINE. So a public format reward's regex is used as written:
      open-r1's ``re.match(p, s, re.DOTALL | re.MULTILINE)`` is ``match="match",
      multiline=True``; a bare ``re.match(p, s)`` is ``match="match", dotall=False``.
    * ``template``: ``template="The answer is [NUM]."``; 1.0 exact, ``partial_credit`` (0.5) for
      a case/punctuation/extra-text/wrapped-number variant (``"The answer is $\\boxed{4}$."``),
      0.0 otherwise. Placeholders: ``[NUM]`` (a number, as
      :func:`graders._text.find_numbers` reads them), ``[WORD]`` (one word), ``[TEXT]`` (any
      non-empty text; only first or last, see :data:`PLACEHOLDERS`). Metadata ``captures`` holds
      what each placeholder matched.

    Args:
        mode: which check to run.
        pattern: the regex (``regex`` mode only, required there).
        match: ``"fullmatch"``, ``"match"`` or ``"search"`` (``regex`` mode only).
        ignore_case: case-insensitive pattern (``regex`` mode only).
        multiline: ``^``/``$`` also match at line breaks (``regex`` mode only).
        dotall: ``.`` also matches a line break; on unless ``False`` (``regex`` mode only).
        template: the template (``template`` mode only, required there).
        partial_credit: the score of a partial template match, in [0, 1] (``template`` mode
            only; default 0.5).
        think_tag: the reasoning tag name (``think`` modes only), e.g. ``"reasoning"``.
        answer_tag: the answer tag name (``think_answer`` mode only).
        think_prefilled: the chat template already opened ``<think>`` in the prompt (Qwen3,
            DeepSeek-R1), so the completion starts inside the block; checked as if the response
            began with ``<think>`` (so a response that repeats it has two and fails).
        match_timeout: seconds one match of ``pattern`` may take (``regex`` mode only; default
            :data:`~graders._user_regex.MATCH_TIMEOUT_S`); past it the response is unscored
            (``timeout``), since a pattern that backtracks without bound would stall the loop.
        name: the result name.

    Raises:
        ConfigError: unknown mode, a missing or invalid pattern/template, or an option given for a
            mode that does not use it.
    """

    required_fields = ("response",)
    default_name = "format"
    inline = True  # pure CPU, never awaits
    thread_safe = True  # a pure function of its input

    def __init__(
        self,
        *,
        mode: FormatMode = "think",
        pattern: str | None = None,
        match: RegexMatch | None = None,
        ignore_case: bool = False,
        multiline: bool = False,
        dotall: bool | None = None,
        template: str | None = None,
        partial_credit: float | None = None,
        think_tag: str | None = None,
        answer_tag: str | None = None,
        think_prefilled: bool = False,
        match_timeout: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if mode not in get_args(FormatMode):
            raise ConfigError(f"format mode must be one of {get_args(FormatMode)}, got {mode!r}")
        self.mode: FormatMode = mode
        for what, flag in (
            ("ignore_case", ignore_case),
            ("multiline", multiline),
            ("think_prefilled", think_prefilled),
            ("dotall", False if dotall is None else dotall),
        ):
            if not isinstance(flag, bool):
                raise ConfigError(f"{what} must be true or false, got {flag!r}")
        _only_for(
            mode,
            "regex",
            pattern=pattern,
            match=match,
            ignore_case=ignore_case or None,
            multiline=multiline or None,
            dotall=dotall,
            match_timeout=match_timeout,
        )
        _only_for(mode, "template", template=template, partial_credit=partial_credit)
        _only_for(mode, "think_answer", answer_tag=answer_tag, required=False)
        if mode not in ("think", "think_answer"):
            for what, given in (("think_prefilled", think_prefilled), ("think_tag", think_tag)):
                if given not in (None, False):
                    raise ConfigError(f"{what} applies to the think modes, not {mode!r}")
        think_tag = "think" if think_tag is None else think_tag
        answer_tag = "answer" if answer_tag is None else answer_tag
        partial_credit = 0.5 if partial_credit is None else partial_credit
        for what, tag in (("think_tag", think_tag), ("answer_tag", answer_tag)):
            if not isinstance(tag, str) or not _TAG_NAME_RE.fullmatch(tag):
                raise ConfigError(f"{what} must be a tag name such as 'think', got {tag!r}")
        if (
            isinstance(partial_credit, bool)
            or not isinstance(partial_credit, int | float)
            or not 0.0 <= partial_credit <= 1.0
        ):
            raise ConfigError(f"partial_credit must be a number in [0, 1], got {partial_credit!r}")

        check: Check
        if mode == "think":
            check = partial(check_think, regex=_think_regex(think_tag), tag=think_tag)
        elif mode == "think_answer":
            check = partial(check_think_answer, think_tag=think_tag, answer_tag=answer_tag)
        elif mode == "regex":
            if match not in (None, *get_args(RegexMatch)):
                raise ConfigError(f"match must be one of {get_args(RegexMatch)}, got {match!r}")
            flags = (
                (re.DOTALL if dotall is not False else 0)
                | (re.IGNORECASE if ignore_case else 0)
                | (re.MULTILINE if multiline else 0)
            )
            timeout = MATCH_TIMEOUT_S if match_timeout is None else check_timeout(match_timeout)
            regex = compile_regex(pattern, flags, what="format pattern", timeout=timeout)
            check = partial(check_regex, regex=regex, match=match or "fullmatch")
        else:
            tpl = compile_template(template)
            check = partial(check_template, template=tpl, partial_credit=float(partial_credit))
        self._check = check
        self._prefix = f"<{think_tag}>" if think_prefilled else ""

    def __repr__(self) -> str:
        return f"FormatGrader(name={self.name!r}, mode={self.mode!r})"

    async def _aevaluate(self, response: Any) -> GraderScore:
        score, reason, metadata = self._check(self._prefix + as_text(response, "response"))
        return GraderScore(name=self.name, score=score, reason=reason, metadata=metadata)


def _only_for(mode: str, wanted: str, *, required: bool = True, **options: Any) -> None:
    """Reject options meant for another mode, so a typo'd config fails at load, not silently
    (``mode: think, answer_tag: final`` scored 1.0 with no answer tag at all). The first option
    is ``wanted``'s required one, unless ``required=False``."""
    given = sorted(k for k, v in options.items() if v is not None)
    if mode == wanted:
        first = next(iter(options))
        if required and options[first] is None:
            raise ConfigError(f"format mode {wanted!r} needs {first}=")
    elif given:
        raise ConfigError(f"{', '.join(given)}: only for format mode {wanted!r}, not {mode!r}")
