"""``GraderConfig``: a grader plus how to find its fields in a record.

A mapper is either a dict ``{grader_field: "dotted.path[0].in.record"}`` or a callable
``record -> {grader_field: value}``. Mapped fields are laid *over* the record, so unmapped fields
pass through unchanged: a mapper that replaced the record would drop every field it forgot.

A path that does not resolve raises :class:`MappingError` naming the record, the field and the
exact step that failed. It is never a silent ``None``, which a judge would then grade as the
literal string "None".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graders._base import FunctionGrader, Grader
from rm_service._exceptions import ConfigError, MappingError

__all__ = ["GraderConfig", "Mapper", "compile_path", "resolve_path"]

Mapper = Mapping[str, str] | Callable[[Mapping[str, Any]], Mapping[str, Any]] | None

_STEP = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+)\]")

Step = str | int


def compile_path(path: str) -> tuple[Step, ...]:
    """Split ``"a.b[0].c"`` into ``("a", "b", 0, "c")``; raise ConfigError if malformed."""
    steps: list[Step] = []
    pos = 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None or (m.group(1) is not None and pos > 0 and path[pos] != "."):
            raise ConfigError(f"malformed mapper path {path!r} at character {pos}")
        steps.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not steps:
        raise ConfigError("empty mapper path")
    return tuple(steps)


def resolve_path(record: Any, steps: tuple[Step, ...]) -> Any:
    """Follow ``steps`` into ``record``; raise ``LookupError`` naming the step that failed."""
    obj = record
    for i, step in enumerate(steps):
        where = _render(steps[:i]) or "the record"
        if isinstance(step, int):
            if not isinstance(obj, list | tuple):
                raise LookupError(f"{where} is a {type(obj).__name__}, not a list")
            if not -len(obj) <= step < len(obj):
                raise LookupError(f"index [{step}] out of range: {where} has {len(obj)} item(s)")
            obj = obj[step]
        else:
            if not isinstance(obj, Mapping):
                raise LookupError(f"{where} is a {type(obj).__name__}, not an object")
            if step not in obj:
                keys = ", ".join(sorted(map(str, obj))[:10]) or "no keys"
                raise LookupError(f"key {step!r} not found in {where} (has: {keys})")
            obj = obj[step]
    return obj


def _render(steps: tuple[Step, ...]) -> str:
    out = ""
    for s in steps:
        out += f"[{s}]" if isinstance(s, int) else (f".{s}" if out else s)
    return out


@dataclass(frozen=True)
class GraderConfig:
    """A grader, the mapper that feeds it, and an optional per-call deadline.

    Args:
        grader: any object with ``name`` and ``async aevaluate(**fields)``, or a plain function
            (wrapped in :class:`FunctionGrader`).
        mapper: dict of ``grader_field -> dotted path`` or a callable; ``None`` passes the record.
        call_timeout: seconds one call may take before it is unscored with ``kind="timeout"``.
    """

    grader: Grader
    mapper: Mapper = None
    call_timeout: float | None = None
    _paths: tuple[tuple[str, str, tuple[Step, ...]], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.grader, Grader):
            if not callable(self.grader):
                raise ConfigError(f"not a grader: {self.grader!r}")
            object.__setattr__(self, "grader", FunctionGrader(self.grader))
        if self.call_timeout is not None and not self.call_timeout > 0:
            raise ConfigError(f"call_timeout must be > 0 seconds, got {self.call_timeout!r}")
        if isinstance(self.mapper, Mapping):
            paths = []
            for fld, path in self.mapper.items():
                if not isinstance(path, str):
                    raise ConfigError(f"mapper for field {fld!r}: path must be a string")
                paths.append((fld, path, compile_path(path)))
            object.__setattr__(self, "_paths", tuple(paths))
        elif self.mapper is not None and not callable(self.mapper):
            raise ConfigError(f"mapper must be a dict or a callable, got {self.mapper!r}")

    @classmethod
    def create(cls, obj: Any) -> GraderConfig:
        """Accept the shapes OpenJudge users write: a config, a grader, a function,
        a ``(grader, mapper)`` pair or a ``{"grader": ..., "mapper": ...}`` dict."""
        if isinstance(obj, GraderConfig):
            return obj
        if isinstance(obj, tuple) and len(obj) == 2:
            return cls(grader=obj[0], mapper=obj[1])
        if isinstance(obj, Mapping):
            try:
                return cls(**obj)
            except TypeError as exc:
                raise ConfigError(f"bad grader config {dict(obj)!r}: {exc}") from exc
        return cls(grader=obj)

    def fields(self, record: Any, index: int | None = None) -> dict[str, Any]:
        """The keyword arguments this grader gets for ``record``.

        Raises:
            MappingError: the record is not an object, a path does not resolve, or the callable
                mapper failed; the message names the record index and the path.
        """
        # A plain dict first, by exact type: ``isinstance`` against the ``Mapping`` ABC costs
        # several times more, on every grader's call.
        if type(record) is dict:
            if self.mapper is None:
                # The record itself, not a copy: graders read fields by keyword (``**fields``,
                # or a selection into a new dict), so none can change the caller's record.
                return record
        elif not isinstance(record, Mapping):
            raise MappingError(
                f"record is a {type(record).__name__}, not a JSON object",
                index=index,
                path="",
                field="",
            )
        elif self.mapper is None:
            return dict(record)
        out = dict(record)
        if isinstance(self.mapper, Mapping):  # its compiled paths, possibly none
            for fld, path, steps in self._paths:
                try:
                    out[fld] = resolve_path(record, steps)
                except LookupError as exc:
                    raise MappingError(
                        f"mapper path {path!r} for field {fld!r} does not resolve: {exc.args[0]}",
                        index=index,
                        path=path,
                        field=fld,
                    ) from None
            return out
        try:
            mapped = self.mapper(record)
        except Exception as exc:
            raise MappingError(
                f"mapper raised {type(exc).__name__}: {exc}", index=index, path="", field=""
            ) from exc
        if not isinstance(mapped, Mapping):
            raise MappingError(
                f"mapper returned {type(mapped).__name__}, not a dict",
                index=index,
                path="",
                field="",
            )
        out.update(mapped)
        return out
