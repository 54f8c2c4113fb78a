"""The one result vocabulary every face speaks: a score, or an honest *unscored*.

A grader returns exactly one of two things for a record:

* :class:`GraderScore`: a reward in ``[0, 1]``, higher is better, with a reason;
* :class:`GraderError`: the record could not be scored, with the kind of failure and why.

There is no third way to fail. A judge that times out or a verdict that cannot be parsed is a
``GraderError``, never a ``GraderScore(score=0.0)``: in RL a fake 0 is indistinguishable from a
genuinely bad answer and trains the policy on noise. The range check lives on the model itself, so
a score outside ``[0, 1]`` (or NaN) cannot be constructed anywhere in the code base.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ErrorKind",
    "GraderError",
    "GraderResult",
    "GraderScore",
    "RecordResult",
]

ErrorKind = Literal["invalid_input", "timeout", "judge_error", "unparseable", "internal"]
"""Why a component is unscored.

* ``invalid_input``: the record lacks a field, a mapper path does not resolve, a gold answer is
  unparseable: the data's fault, retrying will not help.
* ``timeout``: a deadline passed (grader call, math verification, judge request).
* ``judge_error``: the judge endpoint failed (HTTP error, rate limit after retries, refusal).
* ``unparseable``: the judge answered but no valid verdict could be read from it.
* ``internal``: a bug or an unexpected exception in a grader or aggregator.
"""


class GraderScore(BaseModel):
    """A scored component: ``score`` is a reward in ``[0, 1]``, higher is better."""

    model_config = ConfigDict(frozen=True)

    name: str
    score: float
    reason: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("score")
    @classmethod
    def _in_unit_interval(cls, v: float) -> float:
        if not (math.isfinite(v) and 0.0 <= v <= 1.0):
            raise ValueError(f"score must be a finite float in [0, 1], got {v!r}")
        return float(v)


class GraderError(BaseModel):
    """An unscored component: the record could not be graded, and ``error`` says why."""

    model_config = ConfigDict(frozen=True)

    name: str
    error: str
    kind: ErrorKind = "internal"
    metadata: dict[str, Any] = Field(default_factory=dict)


GraderResult = GraderScore | GraderError


class RecordResult(BaseModel):
    """Everything known about one record once all its graders and aggregators have run.

    ``components`` holds every grader's and every aggregator's result by name. ``reward`` is the
    result named ``reward_name`` (see ``GradingRunner``'s ``reward``) as a float, or ``None`` when
    that result is unscored.
    """

    model_config = ConfigDict(frozen=True)

    index: int
    id: str | int | None = None
    reward_name: str | None = None
    components: dict[str, GraderScore | GraderError]

    @property
    def reward(self) -> float | None:
        """The record's reward, or ``None`` when it is unscored (or nothing names a reward)."""
        if self.reward_name is None:
            return None
        result = self.components.get(self.reward_name)
        return result.score if isinstance(result, GraderScore) else None

    @property
    def errors(self) -> dict[str, GraderError]:
        """Every unscored component, by name."""
        return {k: v for k, v in self.components.items() if isinstance(v, GraderError)}

    @property
    def status(self) -> Literal["ok", "unscored"]:
        """``ok`` when the reward is a number, ``unscored`` otherwise."""
        return "ok" if self.reward is not None else "unscored"

    def scores(self) -> dict[str, float | None]:
        """Each component's score, ``None`` where unscored."""
        return {
            k: v.score if isinstance(v, GraderScore) else None for k, v in self.components.items()
        }

    def to_json_dict(self, line: int | None = None) -> dict[str, Any]:
        """The flat, stable JSON shape written by the offline grader (one line per record).

        ``line``: the record's 1-based input line, for a record read from a file. It is added
        as ``"line"``, stands in for a missing ``id``, and replaces the runner's "record
        <index>: " in error texts: the index restarts at 0 on resume, so it means nothing next
        to a line number.
        """
        out: dict[str, Any] = {
            "id": self.id,
            "index": self.index,
            "reward": self.reward,
            "status": self.status,
            "scores": self.scores(),
            "reasons": {
                k: v.reason for k, v in self.components.items() if isinstance(v, GraderScore)
            },
            "errors": {k: {"kind": v.kind, "error": v.error} for k, v in self.errors.items()},
        }
        metadata = {k: v.metadata for k, v in self.components.items() if v.metadata}
        if metadata:
            out["metadata"] = metadata
        if line is not None:
            out["line"] = line
            if out["id"] is None:
                out["id"] = line
            old, new = f"record {self.index}: ", f"line {line}: "
            for err in out["errors"].values():
                err["error"] = err["error"].replace(old, new)
        return out
