"""``Unscored``: how grader code says "this record cannot be scored", with a kind and a reason.

Its own module so that helpers deep inside a grader (text checks, parsers, backends) can raise it
without importing the grader machinery of :mod:`graders._base`, which re-exports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rm_service._result import ErrorKind
from rm_service.models._base import JudgeTimeout

__all__ = ["Unscored", "unusable_fields"]


class Unscored(Exception):
    """Raise inside a grader to return ``GraderError(kind=kind, error=reason)``.

    It lets deep helper code say "this record cannot be scored" without threading a result type
    back up. It never escapes ``aevaluate``.
    """

    def __init__(self, reason: str, *, kind: ErrorKind = "invalid_input", **metadata: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind: ErrorKind = kind
        self.metadata = metadata

    @classmethod
    def backend_failed(cls, exc: Exception, what: str, **metadata: Any) -> Unscored:
        """The unscored result of a backend call that raised (a judge, a reward-model server):
        ``timeout`` when a deadline passed, ``judge_error`` for anything else the backend
        raised; ``what`` names the backend in the reason."""
        if isinstance(exc, JudgeTimeout | TimeoutError):
            reason = f"{what} timed out: {exc}" if str(exc) else f"{what} timed out"
            return cls(reason, kind="timeout", **metadata)
        return cls(f"{what} failed: {type(exc).__name__}: {exc}", kind="judge_error", **metadata)


def unusable_fields(required: tuple[str, ...], fields: Mapping[str, Any]) -> str:
    """Why ``fields`` cannot feed a grader needing ``required``: the fields it lacks and those it
    holds as null, said apart (a null one reported as "missing" while listed among the record's
    fields read as a contradiction), then the record's other fields."""
    absent = [f for f in required if f not in fields]
    null = [f for f in required if f in fields and fields[f] is None]
    parts = []
    if absent:
        parts.append(f"missing required field(s) {', '.join(map(repr, absent))}")
    if null:
        parts.append(
            f"required field(s) {', '.join(map(repr, null))}, which are null in the record"
        )
    others = ", ".join(sorted(f for f in fields if f not in null)) or "nothing"
    return f"{'; '.join(parts)} (record has: {others})"
