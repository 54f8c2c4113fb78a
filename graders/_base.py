"""The grader contract: ``await grader.aevaluate(**fields) -> GraderScore | GraderError``.

A grader declares the record fields it needs (``query``, ``response``, ``reference_response``,
``instruction``, ``context``, or any other key of the record) and is handed only those. It is
stateless: configuration is fixed at construction and nothing is bound to an event loop, so one
instance is safe to share between tasks, threads and loops.

``aevaluate`` never raises for a grading failure. A missing field, an exception inside the grader,
or a score outside ``[0, 1]`` all come back as :class:`GraderError` with a kind. Subclasses write
only ``_aevaluate`` and may return a float, a ``(score, reason)`` pair, a ``GraderScore`` or a
``GraderError``, or raise :class:`Unscored` from anywhere to say "cannot score this, because".

Writing a grader takes a few lines::

    @grader
    def mentions_source(response: str, context: str) -> float:
        return float(context[:40] in response)
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from rm_service._exceptions import ConfigError
from rm_service._importer import import_from_string
from rm_service._result import ErrorKind, GraderError, GraderResult, GraderScore

__all__ = [
    "BaseGrader",
    "FunctionGrader",
    "Grader",
    "Unscored",
    "get_grader",
    "grader",
    "grader_factory",
    "list_graders",
    "register_grader",
    "reward",
]

GraderOutput = GraderResult | float | int | bool | tuple[float, str]


@runtime_checkable
class Grader(Protocol):
    """Anything with a ``name`` and an async ``aevaluate(**fields)`` can be run as a grader."""

    name: str

    async def aevaluate(self, **fields: Any) -> GraderResult: ...


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


class BaseGrader:
    """Base for built-in graders: field selection, failure capture and range checks in one place.

    Class attributes:
        required_fields: fields that must be present and not ``None``; else ``invalid_input``.
        optional_fields: fields passed through when present.
        default_name: the result name when none is given at construction.
    """

    required_fields: ClassVar[tuple[str, ...]] = ("response",)
    optional_fields: ClassVar[tuple[str, ...]] = ()
    default_name: ClassVar[str] = ""
    inline: bool = False
    """True for a grader whose ``aevaluate`` never awaits anything (pure CPU, microseconds). The
    runner then runs a record's inline graders one after another in a single job: no per-call
    scheduling, and no per-call timer, which could not interrupt code that never awaits anyway."""

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or self.default_name or type(self).__name__

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    async def aevaluate(self, **fields: Any) -> GraderResult:
        """Grade one record. Never raises for a grading failure (only on cancellation)."""
        try:
            kwargs = self._select(fields)
            out = await self._aevaluate(**kwargs)
        except Unscored as exc:
            return GraderError(
                name=self.name, error=exc.reason, kind=exc.kind, metadata=exc.metadata
            )
        except Exception as exc:
            return GraderError(name=self.name, error=f"{type(exc).__name__}: {exc}")
        return self._coerce(out)

    async def _aevaluate(self, **fields: Any) -> GraderOutput:
        raise NotImplementedError(f"{type(self).__name__} must implement _aevaluate")

    def _select(self, fields: dict[str, Any]) -> dict[str, Any]:
        missing = [f for f in self.required_fields if fields.get(f) is None]
        if missing:
            raise Unscored(
                f"missing required field(s) {', '.join(map(repr, missing))} "
                f"(record has: {', '.join(sorted(fields)) or 'nothing'})",
                kind="invalid_input",
            )
        kwargs = {f: fields[f] for f in self.required_fields}
        for f in self.optional_fields:
            if f in fields:
                kwargs[f] = fields[f]
        return kwargs

    def _coerce(self, out: GraderOutput) -> GraderResult:
        """Turn whatever ``_aevaluate`` returned into a validated result; reject bad scores."""
        if isinstance(out, GraderScore | GraderError):
            return out if out.name == self.name else out.model_copy(update={"name": self.name})
        reason = ""
        if isinstance(out, tuple) and len(out) == 2:
            out, reason = out
        if isinstance(out, bool | int | float) and math.isfinite(out) and 0.0 <= out <= 1.0:
            return GraderScore(name=self.name, score=float(out), reason=str(reason))
        return GraderError(
            name=self.name,
            error=f"grader returned {out!r}, not a score in [0, 1]",
            kind="internal",
        )


class FunctionGrader(BaseGrader):
    """Wrap a plain sync or async function as a grader.

    The function's parameters name the record fields it needs: parameters without a default are
    required, those with a default optional, and ``**kwargs`` receives every field. It returns a
    float in ``[0, 1]``, a ``(score, reason)`` pair, or a result object, or raises ``Unscored``.

    Args:
        func: the scoring function.
        name: the result name (default: the function's ``__name__``).
        run_in_thread: run a sync function in a worker thread. Leave off for cheap pure checks
            (the common case: a thread hop costs ~50 µs); turn on for blocking I/O.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        run_in_thread: bool = False,
    ) -> None:
        if not callable(func):
            raise ConfigError(f"FunctionGrader needs a callable, got {func!r}")
        base = func.func if isinstance(func, partial) else func
        super().__init__(name=name or getattr(base, "__name__", None) or "function")
        self.func = func
        self.is_async = inspect.iscoroutinefunction(base) or inspect.iscoroutinefunction(
            getattr(base, "__call__", None)  # noqa: B004  (async __call__ on an instance)
        )
        self.run_in_thread = run_in_thread
        self.inline = not self.is_async and not run_in_thread
        required, optional, self.takes_all = _fields_of(func)
        # Per-instance field lists shadow the class defaults.
        self.required_fields = tuple(required)  # type: ignore[misc]
        self.optional_fields = tuple(optional)  # type: ignore[misc]

    def _select(self, fields: dict[str, Any]) -> dict[str, Any]:
        kwargs = super()._select(fields)
        if self.takes_all:
            return {**fields, **kwargs}
        return kwargs

    async def _aevaluate(self, **fields: Any) -> GraderOutput:
        if self.is_async:
            return await self.func(**fields)  # type: ignore[no-any-return]
        if self.run_in_thread:
            return await asyncio.to_thread(self.func, **fields)  # type: ignore[no-any-return]
        return self.func(**fields)  # type: ignore[no-any-return]


def _fields_of(func: Callable[..., Any]) -> tuple[list[str], list[str], bool]:
    required: list[str] = []
    optional: list[str] = []
    takes_all = False
    for p in inspect.signature(func).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            takes_all = True
        elif p.kind is p.VAR_POSITIONAL:
            continue
        elif p.kind is p.POSITIONAL_ONLY:
            raise ConfigError(f"grader function parameter {p.name!r} must be passable by keyword")
        elif p.default is p.empty:
            required.append(p.name)
        else:
            optional.append(p.name)
    return required, optional, takes_all


# --- registry: lets a YAML config name a grader ------------------------------------------------

_REGISTRY: dict[str, Callable[..., Grader]] = {}
_T = TypeVar("_T")


def register_grader(name: str, factory: Callable[..., Grader]) -> None:
    """Register ``factory`` (a grader class, or any callable returning a grader) under ``name``."""
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not factory:
        raise ConfigError(f"a grader named {name!r} is already registered ({existing!r})")
    _REGISTRY[name] = factory


def grader(obj: _T | None = None, *, name: str | None = None) -> Any:
    """Register a grader class or function by name, so configs can say ``type: <name>``.

    On a class, it registers the class and returns it unchanged. On a function, it returns a
    :class:`FunctionGrader` wrapping it (usable directly) and registers a factory whose keyword
    arguments are bound to the function's optional parameters (``params:`` in a config).
    Usable bare (``@grader``) or with a name (``@grader(name="x")``).
    """

    def decorate(target: Any) -> Any:
        if inspect.isclass(target):
            register_grader(name or getattr(target, "default_name", "") or target.__name__, target)
            return target
        fg = FunctionGrader(target, name=name)

        def factory(*, name: str | None = None, **params: Any) -> FunctionGrader:
            return FunctionGrader(partial(target, **params), name=name or fg.name)

        register_grader(fg.name, factory)
        return fg

    return decorate if obj is None else decorate(obj)


reward = grader
"""Alias of :func:`grader`, for code that thinks in reward functions."""


def get_grader(spec: str, **params: Any) -> Grader:
    """Build a grader from a registered name or a ``"module:attr"`` import string.

    Raises:
        ConfigError: unknown name, failed import, or parameters the grader does not accept.
    """
    if spec in _REGISTRY:
        factory = _REGISTRY[spec]
    elif ":" in spec:
        factory = _import(spec)
    else:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ConfigError(f"unknown grader {spec!r}; registered: {known}; or use 'module:attr'")
    if isinstance(factory, Grader) and not inspect.isclass(factory):
        if params:
            raise ConfigError(f"grader {spec!r} is an instance and takes no params")
        return factory
    if not callable(factory):
        raise ConfigError(f"{spec!r} is neither a grader nor a grader factory")
    try:
        built = factory(**params)
    except TypeError as exc:
        raise ConfigError(f"grader {spec!r}: bad params {sorted(params)}: {exc}") from exc
    if not isinstance(built, Grader):
        if callable(built) and not inspect.isclass(built):
            return FunctionGrader(built)
        raise ConfigError(f"{spec!r} did not build a grader (got {type(built).__name__})")
    return built


def grader_factory(spec: str) -> Any:
    """The class or factory a config's ``type`` names (registered name or import string), or
    ``None`` if unknown. Lets a config layer see what a grader takes before building it."""
    return _REGISTRY.get(spec) or (_import(spec) if ":" in spec else None)


def list_graders() -> list[str]:
    """Registered grader names, sorted."""
    return sorted(_REGISTRY)


def _import(spec: str) -> Any:
    obj = import_from_string(spec, "grader")
    if not isinstance(obj, Grader) and callable(obj) and not inspect.isclass(obj):
        # A plain function named by import string: its parameters are bound like @grader's.
        return lambda *, name=None, **params: FunctionGrader(
            partial(obj, **params) if params else obj, name=name
        )
    return obj
