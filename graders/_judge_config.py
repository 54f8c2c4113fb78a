"""An LLM judge's settings, checked once at construction: the scale, the labels, and the sampling
parameters its requests carry.

Kept apart from :mod:`graders._judge` (the grader) because none of it runs per call: a bad
setting fails when the config loads, naming the setting, and never on the first record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

from rm_service._exceptions import ConfigError
from rm_service.models._base import ResponseFormat, SamplingParams

__all__ = [
    "JudgeOutput",
    "ScoreMode",
    "check_choice",
    "check_labels",
    "check_scale",
    "plain_number",
    "sampling_params",
]

JudgeOutput = Literal["json", "label"]
ScoreMode = Literal["sampled", "expected"]


def check_scale(scale: Any) -> tuple[int, int]:
    """``scale`` as two integers ``lo < hi``."""
    try:
        lo, hi = scale
    except (TypeError, ValueError):
        raise ConfigError(f"scale must be a pair (lo, hi), got {scale!r}") from None
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (lo, hi)) or lo >= hi:
        raise ConfigError(f"scale must be two integers lo < hi, got {scale!r}")
    return lo, hi


def check_choice(what: str, value: Any, choices: Any) -> None:
    """Refuse a ``value`` that is not one of the ``Literal`` ``choices``, naming ``what``."""
    allowed = get_args(choices)
    if value not in allowed:
        raise ConfigError(f"{what} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def check_labels(
    scale: tuple[int, int], output: str, labels: Mapping[str, int] | None
) -> dict[str, int]:
    """The verdict labels and their values: the scale's integers when none are given; given
    ones (``output='label'`` only) must be distinct ignoring case, on the scale, two at least."""
    lo, hi = scale
    if labels is None:
        return {str(v): v for v in range(lo, hi + 1)}
    if output != "label":
        raise ConfigError("labels= applies to output='label' only")
    out: dict[str, int] = {}
    for label, value in labels.items():
        text = str(label).strip()
        if not text or isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"label {label!r}: labels map non-empty text to an integer")
        if not lo <= value <= hi:
            raise ConfigError(f"label {label!r} = {value} is outside the scale {lo}-{hi}")
        if text.casefold() in {k.casefold() for k in out}:
            raise ConfigError(f"label {label!r} is given twice (labels ignore case)")
        out[text] = value
    if len(out) < 2:
        raise ConfigError("label mode needs at least two labels")
    return out


def sampling_params(
    *,
    output: JudgeOutput,
    expected: bool,
    allow_float: bool,
    scale: tuple[int, int],
    response_format: ResponseFormat | None,
    temperature: float,
    max_tokens: int | None,
    top_logprobs: int,
    seed: int | None,
    labels: Mapping[str, int] | None = None,
) -> SamplingParams:
    """The sampling parameters of a judge's requests. A label judge answers one bare token
    (``text``, one token); a JSON judge a ``json_object`` (or a strict ``json_schema`` of its
    scale). ``expected``: ask for logprobs, to score the expected value over the labels.

    A label judge whose ``labels`` include one that begins another (``1`` and ``10`` on a 0-10
    scale) gets, by default, as many tokens as the longest label has characters: with one token,
    a tokenizer that splits digits cuts ``10`` to ``1``, a plausible and wrong verdict."""
    if response_format is None:
        response_format = "text" if output == "label" else "json_object"
    check_choice("response_format", response_format, ResponseFormat)
    if output == "label" and response_format != "text":
        raise ConfigError("output='label' answers a bare token: use response_format='text'")
    if max_tokens is None:
        max_tokens = 512 if output != "label" else _label_tokens(labels or {})
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be at least 1, got {max_tokens}")
    if expected and not 1 <= top_logprobs <= 100:
        raise ConfigError(f"top_logprobs must be in 1-100, got {top_logprobs}")
    lo, hi = scale
    schema = None
    if response_format == "json_schema":
        schema = {
            "name": "verdict",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "reason": {"type": "string"},
                    "score": {
                        "type": "number" if allow_float else "integer",
                        "minimum": lo,
                        "maximum": hi,
                    },
                },
                "required": ["reason", "score"],
                "additionalProperties": False,
            },
        }
    return SamplingParams(
        temperature=float(temperature),
        max_tokens=int(max_tokens),
        logprobs=expected,
        top_logprobs=int(top_logprobs) if expected else 0,
        response_format=response_format,
        json_schema=schema,
        seed=seed,
    )


def _label_tokens(labels: Mapping[str, int]) -> int:
    """1, or the longest label's length when a label is the start of another (see above)."""
    keys = [k.casefold() for k in labels]
    if any(a != b and b.startswith(a) for a in keys for b in keys):
        return max(len(k) for k in keys)
    return 1


def plain_number(value: float) -> int | float:
    """``value`` as an int when it is whole (a verdict's ``4.0`` reads ``4`` in metadata)."""
    return int(value) if float(value).is_integer() else value
