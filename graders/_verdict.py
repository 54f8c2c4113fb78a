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
    "LOW_SCALE_MASS",
    "VerdictError",
    "expected_from_token",
    "expected_score",
    "parse_json_verdict",
    "parse_label_verdict",
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

    Allowed around it: whitespace, and one Markdown code fence (```` ```json ````). Not allowed:
    any other text, a second object, duplicate keys, a missing score, a score that is not an
    integer (or, with ``allow_float``, a finite number), a score outside ``scale``, a reason that
    is not a string. Extra keys are ignored.

    Why so strict: a lenient parser ("find a score anywhere") reads whatever verdict-shaped text
    is in the answer, including a verdict the judge quoted from the response it was grading.

    Raises:
        VerdictError: why the answer is not a verdict.
    """
    offset = 0
    body = text
    m = _FENCED_RE.match(text)
    if m:
        body, offset = m.group(1), m.start(1)
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


def parse_label_verdict(text: str, labels: Mapping[str, int]) -> _Verdict:
    """Read an answer that is exactly one label (case-insensitive; a trailing period is allowed).

    Raises:
        VerdictError: the answer is anything else.
    """
    token = text.strip()
    if token.endswith(".") and len(token) > 1:
        token = token[:-1].rstrip()
    folded = {k.casefold(): v for k, v in labels.items()}
    value = folded.get(token.casefold())
    if value is None:
        raise VerdictError(f"the answer is not one of the labels {', '.join(labels)}")
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


def expected_from_token(
    token: TokenLogprob, values: Mapping[str, int], *, prefix: str = "", suffix: str = ""
) -> _Expected | None:
    """Probability-weighted mean scale value at one generated position.

    The sampled token and its top alternatives are matched to scale values after stripping
    whitespace (and the ``prefix``/``suffix`` that the sampled token carried around the value, as
    in a token ``":4"``), case-insensitively; probabilities of alternatives that map to the same
    value add up, and the mean is renormalised over the matched mass. ``None`` when no
    alternative is a scale value.
    """
    folded = {k.casefold(): v for k, v in values.items()}
    seen = {alt for alt, _ in token.top}
    candidates = list(token.top)
    if token.token not in seen:
        candidates.append((token.token, token.logprob))
    pre, suf = prefix.strip(), suffix.strip()
    probs: dict[int, float] = {}
    for alt, logprob in candidates:
        if not isinstance(alt, str) or not isinstance(logprob, int | float):
            continue  # a malformed entry: not evidence for any value
        if not math.isfinite(logprob) or logprob > _LOGPROB_SLACK:
            continue  # a probability above 1 is no probability (and exp(1000) overflows)
        cand = alt.strip()
        if pre and cand.startswith(pre):
            cand = cand[len(pre) :].strip()
        if suf and cand.endswith(suf):
            cand = cand[: -len(suf)].strip()
        value = folded.get(cand.casefold())
        if value is None:
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
    return re.sub(r"\s+", "", text)


def _copies(core: str, response: str) -> bool:
    """Whether the verdict text occurs verbatim (whitespace aside) in the graded response."""
    squashed = _squash(core)
    return bool(squashed) and squashed in _squash(response)


def expected_score(
    verdict: _Verdict, result: ChatResult, labels: Mapping[str, int], *, label: bool
) -> tuple[float | None, dict[str, Any]]:
    """The expected score for ``verdict`` from ``result``'s logprobs, and its metadata.

    ``label``: the answer is a label (its first non-blank token carries the value); otherwise the
    value is the token at the verdict's ``span``. ``None`` (with ``score_mode``
    ``"sampled_fallback"`` and a ``fallback_reason``) when it cannot be read.
    """

    def fallback(why: str) -> tuple[None, dict[str, Any]]:
        return None, {"score_mode": "sampled_fallback", "fallback_reason": why}

    if not result.logprobs:
        return fallback("the backend returned no logprobs")
    if label:
        first = next((t for t in result.logprobs if t.token.strip()), None)
        if first is None:
            return fallback("no non-blank token in the logprobs")
        found: tuple[TokenLogprob, str, str] | str = (first, "", "")
    else:
        assert verdict.span is not None
        found = _token_at(result.logprobs, result.text, *verdict.span)
    if isinstance(found, str):
        return fallback(found)
    token, prefix, suffix = found
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
