"""``Unscored``: how grader code says "this record cannot be scored", with a kind and a reason.

Its own module so that helpers deep inside a grader (text checks, parsers, backends) can raise it
without importing the grader machinery of :mod:`graders._base`, which re-exports it.
"""

from __future__ import annotations

from typing import Any

from rm_service._result import ErrorKind
from rm_service.models._base import JudgeTimeout

__all__ = ["Unscored"]


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
