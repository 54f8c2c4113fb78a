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
from collections.abc import Iterable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

_M = TypeVar("_M", bound=BaseModel)

__all__ = [
    "RESULT_TYPES",
    "ErrorKind",
    "GraderError",
    "GraderResult",
    "GraderScore",
    "RecordResult",
    "Status",
    "assembled",
    "plain_reward",
    "plain_value",
    "renamed",
    "scored",
    "unscored_record",
]

ErrorKind = Literal["invalid_input", "timeout", "judge_error", "unparseable", "internal"]
"""Why a component is unscored.

* ``invalid_input``: the record lacks a field, a mapper path does not resolve, a gold answer is
  unparseable: the data's fault, retrying will not help.
* ``timeout``: a deadline passed (grader call, math verification, judge request).
* ``judge_error``: the judge endpoint failed (HTTP error, rate limit after retries, refusal).
* ``unparseable``: the judge answered but no valid verdict could be read from it, or a rule
  cannot read the response's answer as what it compares (an expression, ``\\sqrt{16}``, where
  the number rule wants a number).
* ``internal``: a bug or an unexpected exception in a grader or aggregator.
"""


class GraderScore(BaseModel):
    """A scored component: ``score`` is a reward in ``[0, 1]``, higher is better."""

    model_config = ConfigDict(frozen=True)

    name: str
    score: float = Field(strict=True)
    """Strict: ``True`` or ``"0.9"`` is not a score (a remote answer's ``"1"`` either)."""
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

RESULT_TYPES = (GraderScore, GraderError)
"""``GraderResult`` as a tuple, for ``isinstance`` on a per-component path: a check against a
``X | Y`` union costs several times more than one against a tuple."""

_new = object.__new__
# The four slots every model instance has (``BaseModel.__slots__``), set through their own
# descriptors: what ``object.__setattr__`` finds for these names, less its lookup by name on
# the model's MRO, which was most of :func:`assembled`'s cost.
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def assembled(model: type[_M], fields: dict[str, Any], fields_set: set[str] | None = None) -> _M:
    """A ``model`` holding ``fields`` as given, with no validation: what a validated
    construction from these same keyword arguments would hold, at about half its cost.

    Why: the engine builds a record's :class:`RecordResult` and an aggregate's
    :class:`GraderScore` from values it has already checked (every component a result by type,
    a score a float in ``[0, 1]`` from :func:`plain_reward`), and validating them again was a
    large share of a cheap grader's per-record cost. Only for that: ``fields`` must hold every
    field (each value of its field's type, a score already in range), and becomes the model's
    ``__dict__``. ``model_construct`` skips validation too but, walking the fields in Python,
    costs more than validating. The attributes set here are those ``model_construct`` sets, so
    equality, copies, pickles and dumps behave as for a validated model. ``fields_set``: the
    fields the validated construction was given (default: all), when some took their default,
    so ``model_fields_set`` and ``exclude_unset`` dumps say the same as for that construction."""
    obj = _new(model)
    _set_dict(obj, fields)
    _set_fields_set(obj, set(fields) if fields_set is None else fields_set)
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


def scored(name: str, score: float, reason: str, metadata: dict[str, Any]) -> GraderScore:
    """``GraderScore(name=name, score=score, reason=reason, metadata=metadata)``, its check of
    ``score`` made here, by exact type and range, and the model built with no second check
    (:func:`assembled`) when the values pass; anything else takes the validated construction,
    which gives the same model or raises its error.

    Why: a judge builds one score per call from values it made itself (a ``float`` clamped to
    ``[0, 1]``, its own reason and metadata), and pydantic's validation of them was a share of
    the call's own CPU. ``metadata`` becomes the model's, not a copy: pass a dict no one else
    holds."""
    if (
        type(score) is float
        and 0.0 <= score <= 1.0  # NaN fails here, as it fails the model's check
        and type(name) is str
        and type(reason) is str
        and type(metadata) is dict
    ):
        fields = {"name": name, "score": score, "reason": reason, "metadata": metadata}
        return assembled(GraderScore, fields)
    return GraderScore(name=name, score=score, reason=reason, metadata=metadata)


def checked(result: GraderResult) -> GraderResult:
    """``result``, unless it is a score that is not a reward in ``[0, 1]``: then an
    ``internal`` error that names it.

    Why again: the model checks a score where one is built, but ``model_copy(update=...)`` (a
    natural "bonus" idiom: ``score.model_copy(update={"score": s + 0.25})``) and
    ``model_construct`` skip that check. So a result object handed over by a grader or a custom
    aggregator is checked once more where the engine takes it."""
    if isinstance(result, GraderScore):
        s = result.score
        if not ((isinstance(s, float) or type(s) is int) and 0.0 <= s <= 1.0):
            return GraderError(
                name=result.name,
                error=f"score {s!r} is not a reward in [0, 1] (a score object built without "
                "its check, e.g. by model_copy or model_construct)",
                kind="internal",
            )
    return result


def renamed(result: GraderResult, name: str) -> GraderResult:
    """``result`` (:func:`checked`) under ``name``: how a result object a grader's or a custom
    aggregator's code handed back is taken, wherever the engine takes one. The name is the one
    the config gives, whatever name the object was built with."""
    result = checked(result)
    return result if result.name == name else result.model_copy(update={"name": name})


_NUMBER_TYPES = (bool, int, float)


def plain_value(value: Any) -> Any:
    """A numpy scalar or array as the Python value it holds (``tolist()``); anything else as is.

    verl reads its parquet through pandas/datasets, so a ``ground_truth`` arrives as
    ``numpy.int64``, ``numpy.float64`` (whose ``repr`` is ``np.float64(0.5)`` in numpy 2) or a
    ``numpy.ndarray`` of answers, and a reward function may return ``np.float32(0.5)``.
    Recognised by the type's module, so numpy is never imported here, and an unrelated object
    that happens to have a ``tolist`` method is left alone.
    """
    if type(value).__module__ == "numpy":
        tolist = getattr(value, "tolist", None)
        if callable(tolist):
            return tolist()
    return value


def plain_reward(out: Any) -> tuple[Any, float | None]:
    """What a grader's or a custom aggregator's function returned, read the same way in both
    places: ``(out as a plain value, its score)``. A numpy scalar is its Python value
    (``np.float32(0.5)`` is 0.5; an array stays a list, which is no score). The score is ``None``
    unless the value is a number (``True`` is 1.0) in [0, 1]; NaN and the infinities fail the
    range comparison."""
    if not isinstance(out, _NUMBER_TYPES):
        out = plain_value(out)
    if isinstance(out, _NUMBER_TYPES) and 0.0 <= out <= 1.0:
        return out, float(out)
    return out, None


Status = Literal["ok", "unscored", "error"]
"""A record's status, the same word on every face.

* ``ok``: the reward is a number.
* ``error``: no reward, because the record itself is invalid (a component's error is
  ``invalid_input``: a missing field, a mapper path that does not resolve). Fix the data. Where
  the reward is an aggregate that names the components it failed on, only those count: a
  monitor grader it does not read, failing on a missing field, leaves a judge's timeout
  ``unscored``.
* ``unscored``: no reward for any other reason (a timeout, a judge failure). Retrying may help.
"""


class RecordResult(BaseModel):
    """Everything known about one record once all its graders and aggregators have run.

    ``components`` holds every grader's and every aggregator's result by name. ``reward`` is the
    result named ``reward_name`` (see ``GradingRunner``'s ``reward``) as a float, or ``None`` when
    that result is unscored.
    """

    model_config = ConfigDict(frozen=True)

    index: int
    id: Any = None
    """The record's id (its ``id_field``) as given: any JSON value (a float, ``true``, an
    object), so results join back to their inputs."""
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
    def status(self) -> Status:
        """``ok``, ``error`` or ``unscored``: see :data:`Status`."""
        if self.reward is not None:
            return "ok"
        reward = self.components.get(self.reward_name) if self.reward_name is not None else None
        if isinstance(reward, GraderError):
            # An aggregate names the components it failed on: those decide, so a monitor grader
            # with a missing field does not make a judge's timeout "fix the data".
            read = reward.metadata.get("unscored_components")
            if isinstance(read, dict):
                return "error" if "invalid_input" in {reward.kind, *read.values()} else "unscored"
            if reward.kind == "invalid_input":
                return "error"
        errors = self.components.values()
        if any(isinstance(e, GraderError) and e.kind == "invalid_input" for e in errors):
            return "error"
        return "unscored"

    def scores(self) -> dict[str, float | None]:
        """Each component's score, ``None`` where unscored."""
        return {
            k: v.score if isinstance(v, GraderScore) else None for k, v in self.components.items()
        }


def unscored_record(
    index: int,
    names: Iterable[str],
    reward_name: str,
    error: str,
    kind: ErrorKind,
    id: Any = None,
) -> RecordResult:
    """A record nothing graded: every component in ``names`` unscored with one ``error`` and
    ``kind``. What a face answers for records a failure kept from the graders (a deadline
    passed before admission, a batch that raised)."""
    return RecordResult(
        index=index,
        id=id,
        reward_name=reward_name,
        components={n: GraderError(name=n, error=error, kind=kind) for n in names},
    )
