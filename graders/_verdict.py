"""Reading a judge's verdict: strict whole-answer parsing, and the expected score from logprobs.

One idea: turning the judge's answer text (and its token logprobs) into a scale value, or a
:class:`VerdictError` saying why the answer is not exactly one valid verdict. Only the judge's
own answer is parsed, and only as a whole: a verdict-shaped string quoted from the graded
response is never searched for.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rm_service.models._base import ChatResult, TokenLogprob

__all__ = [
    "AMBIGUOUS_MASS",
    "LOW_SCALE_MASS",
    "VerdictError",
    "ambiguous_value",
    "expected_from_token",
    "expected_score",
    "label_distribution_verdict",
    "parse_json_verdict",
    "parse_label_verdict",
    "withheld",
]


# --- verdict parsing -----------------------------------------------------------------------------


class VerdictError(ValueError):
    """The judge's answer is not exactly one valid verdict (the message says why)."""


@dataclass(frozen=True, slots=True)
class _Verdict:
    """A parsed verdict: the raw scale value, the judge's reason, and where the value was written.

    ``span`` is the ``[start, end)`` character range of the score value in the answer text, or
    the index of the label token, so the expected score can find its logprobs.
    """

    value: float
    reason: str
    span: tuple[int, int] | None = None
    core: str = ""


_FENCED_RE = re.compile(r"\A\s*```[ \t]*(?:json)?[ \t]*\r?\n(.*?)\r?\n?[ \t]*```\s*\Z", re.S | re.I)
_THINK_OPEN_RE = re.compile(r"\A\s*<think>", re.I)
_THINK_CLOSE_RE = re.compile(r"</think>", re.I)


def _answer_start(text: str) -> int:
    """Where the judge's answer starts: after a leading reasoning block, else 0.

    A reasoning model served without a reasoning parser (DeepSeek-R1, QwQ, Qwen3 thinking) writes
    ``<think>...</think>`` before its answer, or only the closing tag when its chat template
    opened the block in the prompt. The block is the judge's scratchpad, not its verdict: a draft
    score in it is never read, and the text after it must be the whole verdict. Both tags are
    matched in any case, as the opening one always was: a ``<THINK>`` block closed by
    ``</THINK>`` is the same scratchpad. An answer that starts as a verdict (``{`` or a code
    fence) is read whole, so a reason quoting ``</think>`` is not cut.

    Raises:
        VerdictError: the answer opens a reasoning block that never closes, so no verdict follows
            it (a judge cut at ``max_tokens`` while thinking).
    """
    m = _THINK_OPEN_RE.match(text)
    if m is None and text.lstrip().startswith(("{", "`")):
        return 0
    close = _THINK_CLOSE_RE.search(text, 0 if m is None else m.end())
    if close is None and m is not None:
        raise VerdictError("the answer opens a reasoning block (<think>) that never closes")
    return 0 if close is None else close.end()


_JSON_WS = " \t\n\r"


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise VerdictError(f"the verdict repeats the key {dup!r}")
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise VerdictError(f"the verdict contains {name}, which is not a number")


_STRICT = json.JSONDecoder(object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
"""What ``json.loads(..., object_pairs_hook=..., parse_constant=...)`` builds on every call, built
once (a decoder keeps no state between documents)."""
_DECODER = json.JSONDecoder()


def parse_json_verdict(text: str, *, scale: tuple[int, int], allow_float: bool = False) -> _Verdict:
    """Read a ``{"reason": ..., "score": n}`` verdict that is the *whole* answer.

    Allowed around it: whitespace, one Markdown code fence (```` ```json ````), and before it a
    reasoning model's ``<think>...</think>`` block, which is skipped unread. Not allowed:
    any other text, a second object, duplicate keys, a missing score, a score that is not an
    integer (or, with ``allow_float``, a finite number), a score outside ``scale``, a reason that
    is not a string. Extra keys are ignored.

    Why so strict: a lenient parser ("find a score anywhere") reads whatever verdict-shaped text
    is in the answer, including a verdict the judge quoted from the response it was grading.

    Raises:
        VerdictError: why the answer is not a verdict.
    """
    offset = _answer_start(text)
    body = text[offset:]
    m = _FENCED_RE.match(body)
    if m:
        body, offset = m.group(1), offset + m.start(1)
    plain = _plain_verdict(body, scale)
    if plain is not None:
        value, reason, (start, end) = plain
        return _Verdict(value, reason, (start + offset, end + offset), body.strip())
    try:
        if body.startswith("\ufeff"):  # as json.loads says
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", body, 0)
        obj = _STRICT.decode(body)
    except json.JSONDecodeError as exc:
        raise VerdictError(f"the answer is not a single JSON object ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise VerdictError(f"the answer is JSON {type(obj).__name__}, not an object")
    if "score" not in obj:
        raise VerdictError('the verdict has no "score"')
    score = obj["score"]
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise VerdictError(f"score {score!r} is not a number")
    if isinstance(score, float) and not allow_float:
        raise VerdictError(f"score {score!r} is not an integer")
    lo, hi = scale
    if not (lo <= score <= hi and math.isfinite(score)):  # range first: 10**400 overflows
        raise VerdictError(f"score {score!r} is outside the scale {lo}-{hi}")
    reason = obj.get("reason", "")
    if not isinstance(reason, str):
        raise VerdictError(f"reason is {type(reason).__name__}, not a string")
    start, end = _value_span(body, "score")
    return _Verdict(float(score), reason, (start + offset, end + offset), body.strip())


_WS = r"[ \t\n\r]*"
_PLAIN_REASON = r'"reason"' + _WS + ":" + _WS + r'"(?P<reason>[^"\\\x00-\x1f]*)"'
_PLAIN_SCORE = r'"score"' + _WS + ":" + _WS + r"(?P<score>-?(?:0|[1-9][0-9]{0,17}))"
_PLAIN_VERDICTS = tuple(
    re.compile(_WS + r"\{" + _WS + first + _WS + "," + _WS + second + _WS + r"\}" + _WS)
    for first, second in ((_PLAIN_REASON, _PLAIN_SCORE), (_PLAIN_SCORE, _PLAIN_REASON))
)
"""A verdict of exactly a ``reason`` with no escapes and an integer ``score``, either order,
in JSON's own whitespace: what a judge answers nearly always."""


def _plain_verdict(body: str, scale: tuple[int, int]) -> tuple[float, str, tuple[int, int]] | None:
    """``(score, reason, score span)`` of a plain verdict within ``scale``, read without a JSON
    parse (the general path gives the same for it); ``None`` for anything else, which the
    general path reads or refuses with its reason."""
    for rx in _PLAIN_VERDICTS:
        m = rx.fullmatch(body)
        if m is not None:
            score = int(m.group("score"))
            if not scale[0] <= score <= scale[1]:
                return None
            return float(score), m.group("reason"), m.span("score")
    return None


def _value_span(doc: str, key: str) -> tuple[int, int]:
    """Character range of the top-level ``key``'s value in the JSON object text ``doc``.

    A real scanner, not a regex: ``"score": 5`` may also appear inside the reason string.
    """
    decoder = _DECODER

    def skip(i: int) -> int:
        while i < len(doc) and doc[i] in _JSON_WS:
            i += 1
        return i

    i = skip(0) + 1  # past "{"
    while True:
        i = skip(i)
        name, i = decoder.raw_decode(doc, i)
        i = skip(skip(i) + 1)  # past ":"
        _, end = decoder.raw_decode(doc, i)
        if name == key:
            return i, end
        i = skip(end) + 1  # past ","


def withheld(result: ChatResult) -> str | None:
    """Why ``result`` holds no verdict because the endpoint's content filter withheld or cut it
    (``finish_reason: content_filter``), or ``None``. Whatever text came is not the judge's
    whole verdict, and a digit left before the cut would be a plausible wrong score."""
    if result.finish_reason != "content_filter":
        return None
    return (
        "the judge's answer was withheld by the endpoint's content filter "
        "(finish_reason 'content_filter'), so it holds no verdict"
    )


def parse_label_verdict(text: str, labels: Mapping[str, int], *, cut: bool = False) -> _Verdict:
    """Read an answer that is exactly one label (case-insensitive; a trailing period is allowed).

    Before it, a reasoning model's ``<think>...</think>`` block is skipped unread, as in
    :func:`parse_json_verdict`: a label judge that reasons first would otherwise never parse, and
    a digit in its reasoning is a draft, not its verdict.

    ``cut``: the answer stopped at ``max_tokens`` (``finish_reason: length``). Then an answer that
    ends right after a label which begins a longer label (``1`` of ``10`` on a 0-10 scale, where a
    tokenizer writes ``10`` as two tokens) may be the longer one cut short, and is refused.

    Raises:
        VerdictError: the answer is anything else.
    """
    token = text[_answer_start(text) :].strip()
    if token.endswith(".") and len(token) > 1:
        token = token[:-1].rstrip()
    folded = {k.casefold(): v for k, v in labels.items()}
    key = token.casefold()
    value = folded.get(key)
    if value is None:
        raise VerdictError(f"the answer is not one of the labels {', '.join(labels)}")
    longer = [k for k in labels if k.casefold() != key and k.casefold().startswith(key)]
    if cut and longer and text.endswith(token):
        raise VerdictError(
            f"the answer was cut at max_tokens right after {token!r}, which may be the start of "
            f"{longer[0]!r}; raise max_tokens so the whole label fits"
        )
    return _Verdict(float(value), f"judge answered {token!r}")


# --- expected score from logprobs ----------------------------------------------------------------

LOW_SCALE_MASS = 0.5
"""Below this total probability on the scale tokens, an expected score is flagged in metadata:
the judge mostly meant to write something else, so the weighted mean says little."""


_LOGPROB_SLACK = 1e-6
"""The most a log-probability may exceed 0 by (servers round); above it, an entry is dropped."""


@dataclass(frozen=True, slots=True)
class _Expected:
    value: float
    mass: float
    distribution: dict[str, float]


AMBIGUOUS_MASS = 0.01
"""From this much probability on alternatives that may be the first token of a longer scale value
(``1`` of ``10``), the expected score at one position is not read (see :func:`ambiguous_value`)."""

_SIGNS = frozenset({"-", "+", "\u2212"})


def _candidates(token: TokenLogprob, prefix: str, suffix: str) -> list[tuple[str, float, bool]]:
    """The usable alternatives at ``token``'s position: ``(value text, logprob, closed)``.

    The value text is stripped of whitespace and of the ``prefix``/``suffix`` the sampled token
    carried around the value, and casefolded; ``closed``: the alternative carried that suffix
    (``"1}"``), so no more of the value follows it."""
    seen = {alt for alt, _ in token.top}
    entries = list(token.top)
    if token.token not in seen:
        entries.append((token.token, token.logprob))
    pre, suf = prefix.strip(), suffix.strip()
    out: list[tuple[str, float, bool]] = []
    for alt, logprob in entries:
        if not isinstance(alt, str) or not isinstance(logprob, int | float):
            continue  # a malformed entry: not evidence for any value
        if not math.isfinite(logprob) or logprob > _LOGPROB_SLACK:
            continue  # a probability above 1 is no probability (and exp(1000) overflows)
        cand = alt.strip()
        if pre and cand.startswith(pre):
            cand = cand[len(pre) :].strip()
        closed = bool(suf) and cand.endswith(suf)
        if closed:
            cand = cand[: -len(suf)].strip()
        out.append((cand.casefold(), float(logprob), closed))
    return out


def _ambiguous(candidates: list[tuple[str, float, bool]], folded: Mapping[str, int]) -> set[int]:
    """Indices of the alternatives that may be the first token of a longer scale value which is
    not itself an alternative: ``1`` on a 0-10 scale, where a tokenizer that splits digits
    writes ``10`` as ``1`` then ``0``, or ``-`` on a scale with negative values."""
    present = {cand for cand, _, _ in candidates}
    return {
        i
        for i, (cand, _, closed) in enumerate(candidates)
        if cand
        and not closed
        and (cand in folded or cand in _SIGNS)
        and any(k != cand and k.startswith(cand) and k not in present for k in folded)
    }


def _mass(candidates: list[tuple[str, float, bool]], indices: set[int]) -> float:
    return sum(math.exp(candidates[i][1]) for i in indices)


def ambiguous_value(
    token: TokenLogprob, values: Mapping[str, int], *, prefix: str = "", suffix: str = ""
) -> str | None:
    """Why ``token``'s position cannot give an expected score, or ``None`` when it can.

    It cannot when alternatives carrying :data:`AMBIGUOUS_MASS` or more may be the first token of
    a longer scale value: the probability of ``1`` on a 0-10 scale is that of 1 *and* of 10,
    written ``1``, ``0`` by a tokenizer that splits digits, so counting it as 1 reads a judge torn
    between 9 and 10 as a 5."""
    folded = {k.casefold(): v for k, v in values.items()}
    candidates = _candidates(token, prefix, suffix)
    unsure = _ambiguous(candidates, folded)
    mass = _mass(candidates, unsure)
    if mass < AMBIGUOUS_MASS:
        return None
    first = max((candidates[i] for i in unsure), key=lambda c: c[1])[0]
    longer = min((k for k in folded if k != first and k.startswith(first)), key=len)
    return (
        f"{first!r} at the score position (p={mass:.3f}) may be the first token of {longer!r}: "
        "the scale's values are not one token each"
    )


def expected_from_token(
    token: TokenLogprob, values: Mapping[str, int], *, prefix: str = "", suffix: str = ""
) -> _Expected | None:
    """Probability-weighted mean scale value at one generated position.

    The sampled token and its top alternatives are matched to scale values after stripping
    whitespace (and the ``prefix``/``suffix`` that the sampled token carried around the value, as
    in a token ``":4"``), case-insensitively; probabilities of alternatives that map to the same
    value add up, and the mean is renormalised over the matched mass. ``None`` when no
    alternative is a scale value, or when the position cannot tell the values apart (see
    :func:`ambiguous_value`); alternatives that might begin a longer value but carry under
    :data:`AMBIGUOUS_MASS` together are left out, like any other non-scale token.
    """
    folded = {k.casefold(): v for k, v in values.items()}
    candidates = _candidates(token, prefix, suffix)
    unsure = _ambiguous(candidates, folded)
    if _mass(candidates, unsure) >= AMBIGUOUS_MASS:
        return None
    probs: dict[int, float] = {}
    for i, (cand, logprob, _) in enumerate(candidates):
        value = folded.get(cand)
        if value is None or i in unsure:
            continue
        probs[value] = probs.get(value, 0.0) + math.exp(logprob)
    mass = sum(probs.values())
    if mass <= 0.0:
        return None
    mean = sum(v * p for v, p in probs.items()) / mass
    dist = {str(v): round(p / mass, 6) for v, p in sorted(probs.items())}
    return _Expected(mean, mass, dist)


def _token_at(
    logprobs: Sequence[TokenLogprob], text: str, start: int, end: int
) -> tuple[TokenLogprob, str, str] | str:
    """The token that carries ``text[start:end]``, with its text before and after the value.

    Tokens are aligned to the text from the end, so a backend whose token strings differ from the
    text earlier on (split multi-byte characters in the reason) still lines up at the score.
    Returns a fallback reason (a ``str``) when the value cannot be pinned to one token.
    """
    joined = "".join(t.token for t in logprobs)
    tail = text[start:].rstrip()
    cat = joined.rstrip()
    if not cat.endswith(tail):
        return "the logprob tokens do not spell the answer"
    pos = len(cat) - len(tail)
    value_end = pos + (end - start)
    cursor = 0
    for tok in logprobs:
        nxt = cursor + len(tok.token)
        if cursor <= pos < nxt:
            if value_end > nxt:
                return "the score value spans several tokens"
            return tok, tok.token[: pos - cursor], tok.token[value_end - cursor :]
        cursor = nxt
    return "the score token was not found"


def _squash(text: str) -> str:
    """``text`` without its whitespace: ``re.sub(r"\\s+", "", text)``, as ``str.split`` with no
    separator splits on the same characters (``str.isspace``, which ``\\s`` matches in a
    ``str`` pattern), at a fraction of the cost."""
    return "".join(text.split())


def _copies(core: str, response: str) -> bool:
    """Whether the verdict text occurs verbatim (whitespace aside) in the graded response.

    A response without the verdict's first character (``{`` nearly always) holds no copy of it,
    squashed or not: the long response is squashed only when it might."""
    squashed = _squash(core)
    return bool(squashed) and squashed[0] in response and squashed in _squash(response)


def _label_token(result: ChatResult) -> tuple[TokenLogprob, str] | str:
    """The token where a label answer starts, with its text before the answer, or why there is
    none: the first non-blank token, or, after a reasoning block, the token at the first
    non-blank character that follows the block (found by :func:`_token_at`), so the
    probabilities read are never those of a draft inside the block. A block that never closes
    has nothing after it: its opening token is read, as any first token that is no label is."""
    assert result.logprobs
    try:
        start = _answer_start(result.text)
    except VerdictError:
        start = 0
    if start == 0:
        first = next((t for t in result.logprobs if t.token.strip()), None)
        return "no non-blank token in the logprobs" if first is None else (first, "")
    rest = result.text[start:]
    pos = start + len(rest) - len(rest.lstrip())
    if pos == len(result.text):
        return "nothing follows the reasoning block"
    found = _token_at(result.logprobs, result.text, pos, pos + 1)
    return found if isinstance(found, str) else found[:2]


def label_distribution_verdict(
    result: ChatResult, labels: Mapping[str, int], min_mass: float
) -> _Verdict | str:
    """A label verdict from the labels' probabilities where the answer starts (label mode with
    expected scoring, when the sampled answer is no label: see :func:`_label_token`), or a note
    (appended to the error) saying why there is none: the labels carry under ``min_mass``, the
    position cannot tell them apart (:func:`ambiguous_value`), or there is no such position."""
    if not result.logprobs:
        return ""
    found = _label_token(result)
    if isinstance(found, str):
        return f"; no label probabilities: {found}"
    first, prefix = found
    why = ambiguous_value(first, labels, prefix=prefix)
    if why is not None:
        return f"; {why}"
    exp = expected_from_token(first, labels, prefix=prefix)
    mass = exp.mass if exp is not None else 0.0
    if exp is None or mass < min_mass:
        return f"; the labels carry {mass:.3f} of the probability (< {min_mass})"
    return _Verdict(value=exp.value, reason=f"read from the label probabilities ({mass:.2f})")


def expected_score(
    verdict: _Verdict, result: ChatResult, labels: Mapping[str, int], *, label: bool
) -> tuple[float | None, dict[str, Any]]:
    """The expected score for ``verdict`` from ``result``'s logprobs, and its metadata.

    ``label``: the answer is a label (its first non-blank token, after any reasoning block,
    carries the value); otherwise the value is the token at the verdict's ``span``. ``None``
    (with ``score_mode`` ``"sampled_fallback"`` and a ``fallback_reason``) when it cannot be
    read.
    """

    def fallback(why: str) -> tuple[None, dict[str, Any]]:
        return None, {"score_mode": "sampled_fallback", "fallback_reason": why}

    if not result.logprobs:
        return fallback("the backend returned no logprobs")
    if label:
        at = _label_token(result)
        found: tuple[TokenLogprob, str, str] | str = at if isinstance(at, str) else (*at, "")
    else:
        assert verdict.span is not None
        found = _token_at(result.logprobs, result.text, *verdict.span)
    if isinstance(found, str):
        return fallback(found)
    token, prefix, suffix = found
    unsure = ambiguous_value(token, labels, prefix=prefix, suffix=suffix)
    if unsure is not None:
        return fallback(unsure)
    exp = expected_from_token(token, labels, prefix=prefix, suffix=suffix)
    if exp is None:
        return fallback("no scale value among the top alternatives")
    info: dict[str, Any] = {
        "score_mode": "expected",
        "expected_score": round(exp.value, 6),
        "scale_mass": round(exp.mass, 6),
        "distribution": exp.distribution,
    }
    if exp.mass < LOW_SCALE_MASS:
        info["low_scale_mass"] = True
    return exp.value, info
