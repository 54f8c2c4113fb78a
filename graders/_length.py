"""``LengthPenalty``: a reward in [0, 1] that falls off outside a length window.

GRPO policies drift long (every extra token is another chance to stumble onto the answer) and,
under some rewards, collapse short. A length term kept in [0, 1] combines with the other rewards in
a weighted sum or a gate instead of being a negative number bolted on.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from graders._base import BaseGrader, grader
from graders._text import as_text, without_invisible
from rm_service._exceptions import ConfigError
from rm_service._result import GraderScore

__all__ = ["LengthPenalty", "LengthUnit", "length_of", "length_score"]

LengthUnit = Literal["chars", "words"]


def length_of(text: str, unit: LengthUnit) -> int:
    """``chars``: Unicode code points; ``words``: tokens separated by whitespace or by invisible
    characters (5,000 words joined by zero-width spaces are 5,000 words, not one)."""
    return len(text) if unit == "chars" else len(without_invisible(text, " ").split())


def length_score(
    length: int, *, max_len: int | None, buffer: int = 0, min_len: int | None = None
) -> float:
    """The length reward, piecewise linear (see :class:`LengthPenalty` for the formula)."""
    if min_len is not None and length < min_len:
        return length / min_len
    if max_len is None or length <= max_len:
        return 1.0
    if length >= max_len + buffer:
        return 0.0
    return 1.0 - (length - max_len) / buffer


def _check_count(value: Any, what: str, *, positive: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (1 if positive else 0):
        raise ConfigError(f"{what} must be an integer ≥ {1 if positive else 0}, got {value!r}")
    return value


@grader
class LengthPenalty(BaseGrader):
    """1.0 inside a length window, falling linearly to 0.0 outside it.

    With ``L`` the response length in ``unit``::

        score(L) = L / min_len                     if min_len is set and L < min_len
                 = 1                               if L ≤ max_len (or max_len is None)
                 = 1 − (L − max_len) / buffer      if max_len < L < max_len + buffer
                 = 0                               if L ≥ max_len + buffer

    With ``buffer=0`` the upper edge is a hard cut-off (1 up to ``max_len``, 0 beyond). This is
    DAPO's soft overlong punishment (eq. 13) shifted from [-1, 0] into [0, 1]: DAPO's
    ``L_max`` and ``L_cache`` are ``max_len + buffer`` and ``buffer`` here, so
    ``LengthPenalty(max_len=L_max - L_cache, buffer=L_cache)`` gives ``1 + R_length``. DAPO counts
    tokens; this grader sees text, so pick ``chars`` or ``words`` and scale the limits to match.

    The lower ramp is proportional (an empty response scores 0, half of ``min_len`` scores 0.5),
    because a too-short answer has no natural "buffer" length to fall over. An empty response
    with no ``min_len`` scores 1.0: it is not too long. Metadata: ``length`` and ``unit``.

    Args:
        max_len: the longest length that still scores 1.0; ``None`` for no upper limit.
        buffer: the length over ``max_len`` across which the score falls to 0.
        min_len: the shortest length that scores 1.0; ``None`` for no lower limit.
        unit: ``"chars"`` (default) or ``"words"``.
        name: the result name.

    Raises:
        ConfigError: neither limit set, a negative or non-integer limit, ``min_len > max_len``,
            ``buffer`` without ``max_len``, or an unknown unit.
    """

    required_fields = ("response",)
    default_name = "length_penalty"
    inline = True  # pure CPU, never awaits
    thread_safe = True  # a pure function of its input

    def __init__(
        self,
        *,
        max_len: int | None = None,
        buffer: int = 0,
        min_len: int | None = None,
        unit: LengthUnit = "chars",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if max_len is None and min_len is None:
            raise ConfigError("length_penalty needs max_len, min_len or both")
        if unit not in get_args(LengthUnit):
            raise ConfigError(f"unit must be one of {get_args(LengthUnit)}, got {unit!r}")
        self.max_len = None if max_len is None else _check_count(max_len, "max_len")
        self.buffer = _check_count(buffer, "buffer")
        self.min_len = None if min_len is None else _check_count(min_len, "min_len", positive=True)
        if self.buffer and self.max_len is None:
            raise ConfigError("buffer applies above max_len; set max_len too")
        if self.min_len is not None and self.max_len is not None and self.min_len > self.max_len:
            raise ConfigError(f"min_len ({self.min_len}) must not exceed max_len ({self.max_len})")
        self.unit: LengthUnit = unit

    def __repr__(self) -> str:
        return (
            f"LengthPenalty(name={self.name!r}, min_len={self.min_len}, max_len={self.max_len}, "
            f"buffer={self.buffer}, unit={self.unit!r})"
        )

    async def _aevaluate(self, response: Any) -> GraderScore:
        length = length_of(as_text(response, "response"), self.unit)
        score = length_score(length, max_len=self.max_len, buffer=self.buffer, min_len=self.min_len)
        if self.min_len is not None and length < self.min_len:
            reason = f"{length} {self.unit} is under min_len {self.min_len}"
        elif self.max_len is not None and length > self.max_len:
            reason = f"{length} {self.unit} is over max_len {self.max_len} (buffer {self.buffer})"
        else:
            reason = f"{length} {self.unit} is within limits"
        return GraderScore(
            name=self.name,
            score=score,
            reason=reason,
            metadata={"length": length, "unit": self.unit},
        )
