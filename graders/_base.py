"""The grader contract: ``await grader.aevaluate(**fields) -> GraderScore | GraderError``.

A grader declares the record fields it needs (``query``, ``response``, ``reference_response``,
``instruction``, ``context``, or any other key of the record) and is handed only those. It is
stateless: configuration is fixed at construction and nothing is bound to an event loop, so one
instance is safe to share between tasks, threads and loops.

``aevaluate`` never raises for a grading failure. A missing field, an exception inside the grader,
or a score outside ``[0, 1]`` all come back as :class:`GraderError` with a kind. Subclasses write
only ``_aevaluate`` and may return a float, a ``(score, reason)`` pair, a ``GraderScore`` or a
``GraderError``, or raise :class:`Unscored` from anywhere to say "cannot score this, because".

The engine and the service read more than ``name`` and ``aevaluate``: every attribute they read
is declared once, in :class:`GraderContract`, with its default in :class:`BaseGrader`. A grader
that only satisfies the minimal :class:`Grader` protocol is read through :func:`contract`, which
supplies those defaults.

Writing a grader takes a few lines::

    @grader
    def mentions_source(response: str, context: str) -> float:
        return float(context[:40] in response)
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from pydantic import ValidationError

from graders._builtins import BUILTIN_GRADERS
from graders._signature import check_fixed_params, fields_of
from graders._threads import in_thread
from graders._unscored import Unscored, unusable_fields
from rm_service._exceptions import ConfigError
from rm_service._registry import Registry, check_params
from rm_service._result import (
    GraderError,
    GraderResult,
    GraderScore,
    assembled,
    plain_reward,
    renamed,
)

__all__ = [
    "BaseGrader",
    "FunctionGrader",
    "Grader",
    "GraderContract",
    "Unscored",
    "contract",
    "get_grader",
    "grader",
    "grader_factory",
    "list_graders",
    "load_all",
    "register_grader",
    "reward",
    "takes_judge",
]

GraderOutput = GraderResult | float | int | bool | tuple[float, str]


@runtime_checkable
class Grader(Protocol):
    """Anything with a ``name`` and an async ``aevaluate(**fields)`` can be run as a grader."""

    name: str

    async def aevaluate(self, **fields: Any) -> GraderResult: ...


class GraderContract(Grader, Protocol):
    """Everything the engine, the config loader and the service read from a grader.

    :class:`BaseGrader` implements all of it; :func:`contract` gives the same view of a grader
    that implements only :class:`Grader`.
    """

    inline: bool
    """``aevaluate`` never awaits (pure CPU): the runner calls :meth:`evaluate` instead, one
    grader after another in a single job per record, with no timer."""
    thread_safe: bool
    """An inline grader that may run in a worker thread (see :class:`BaseGrader`)."""
    required_fields: tuple[str, ...]
    """Fields that must be present and not ``None``; ``check`` and ``/graders`` report them."""
    optional_fields: tuple[str, ...]
    """Fields passed through when present."""
    takes_all: bool
    """It reads every field of the record, not only those declared (a function with
    ``**fields``, or a grader that declares none); ``rm-service audit`` writes its exploits where
    such a grader reads them."""
    members: tuple[Grader, ...]
    """Graders this one asks in turn (a committee's): closed, probed and warmed with it."""

    def evaluate(self, fields: Mapping[str, Any]) -> GraderResult:
        """``aevaluate(**fields)`` run to completion without an event loop turn, for an
        ``inline`` grader: a rule grader's whole cost is a few microseconds, and creating and
        awaiting its coroutines was a large share of it.

        Raises:
            RuntimeError: the grader awaited after all (it is not inline).
        """
        ...

    async def aload(self) -> None:
        """Start now what the first call would wait for (a judge or embedding model loaded, the
        math worker pool started); members' too. Raises if that fails."""
        ...

    async def aclose(self) -> None:
        """Close what serving opened (judge clients, cache files); they reopen on next use."""
        ...

    def judges(self) -> Iterator[Any]:
        """The judge backends (``ChatModel``) this grader holds that are already built; never
        builds one (a local backend would load a model no request has needed yet)."""
        ...

    def prepare_ahead(self, batch: Sequence[Mapping[str, Any]]) -> None:
        """Compute now, together, what the calls on a few upcoming records will ask for (a
        judge's pre-gate verdicts); members' too. A cache fill only: it never changes a result,
        and a record it cannot read is left for its own call to report. The runner calls it on
        a few records at a time, before their calls start."""
        ...


class BaseGrader:
    """Base for built-in graders: field selection, failure capture and range checks in one place.

    Class attributes:
        required_fields: fields that must be present and not ``None``; else ``invalid_input``.
        optional_fields: fields passed through when present.
        default_name: the result name when none is given at construction.
    """

    # Class defaults, not ClassVars: a grader may set its own per instance (from a signature or a
    # template), and GraderContract reads them as instance attributes.
    required_fields: tuple[str, ...] = ("response",)
    optional_fields: tuple[str, ...] = ()
    default_name: ClassVar[str] = ""
    takes_judge: ClassVar[bool] = False
    """The constructor's ``model`` is a judge backend: a reward config hands it the shared one."""
    members: tuple[Grader, ...] = ()
    takes_all: bool = False
    """True when it reads every record field, not only the declared ones (see the contract)."""
    inline: bool = False
    """True for a grader whose ``aevaluate`` never awaits anything (pure CPU, microseconds). The
    runner then runs a record's inline graders one after another in a single job: no per-call
    scheduling, and no per-call timer, which could not interrupt code that never awaits anyway."""
    thread_safe: bool = False
    """An inline grader that may run in a worker thread (the built-in rule graders: pure
    functions). Long records go off the loop only when every inline grader is. Not inherited:
    a subclass may override the work with code that is not (a ``signal.alarm``, a connection)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "thread_safe" not in cls.__dict__:
            cls.thread_safe = False

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or self.default_name or type(self).__name__

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    async def aevaluate(self, **fields: Any) -> GraderResult:
        """Grade one record. Never raises for a grading failure (only on cancellation)."""
        try:
            out = await self._aevaluate(**self._select(fields))
        except Exception as exc:
            return self._failed(exc)
        return self._coerce(out)

    def evaluate(self, fields: Mapping[str, Any]) -> GraderResult:
        """See :meth:`GraderContract.evaluate`."""
        return run_now(self.aevaluate(**fields), self.name)

    def _failed(self, exc: Exception) -> GraderError:
        """What a grader's exception means: ``Unscored`` says its kind and reason; anything else
        is a bug in the grader (``internal``), named, never a number."""
        if isinstance(exc, Unscored):
            try:
                return GraderError(
                    name=self.name, error=exc.reason, kind=exc.kind, metadata=exc.metadata
                )
            except ValidationError:  # a kind that is none of the five, a reason not a str
                bad = f"Unscored({exc.reason!r}, kind={exc.kind!r}): not a valid reason and kind"
                return GraderError(name=self.name, error=bad)
        return GraderError(name=self.name, error=f"{type(exc).__name__}: {exc}")

    # *args makes this signature gradual for mypy: a subclass names the fields it takes as its own
    # parameters; the engine passes exactly those, by keyword (see _select).
    async def _aevaluate(self, *args: Any, **fields: Any) -> GraderOutput:
        raise NotImplementedError(f"{type(self).__name__} must implement _aevaluate")

    async def aload(self) -> None:
        """Load the members, together; a grader with something of its own to load overrides
        this."""
        await asyncio.gather(*(contract(m).aload() for m in self.members))

    async def aclose(self) -> None:
        """Close the members' resources; a grader holding its own overrides this too."""
        for member in self.members:
            await contract(member).aclose()

    def judges(self) -> Iterator[Any]:
        """The members' built judge backends; a judge grader adds its own."""
        for member in self.members:
            yield from contract(member).judges()

    def prepare_ahead(self, batch: Sequence[Mapping[str, Any]]) -> None:
        """The members' (see :meth:`GraderContract.prepare_ahead`); a grader with work of its own to
        do ahead overrides this."""
        for member in self.members:
            contract(member).prepare_ahead(batch)

    def _select(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for f in self.required_fields:
            value = fields.get(f)
            if value is None:
                raise Unscored(unusable_fields(self.required_fields, fields), kind="invalid_input")
            kwargs[f] = value
        for f in self.optional_fields:
            if f in fields:
                kwargs[f] = fields[f]
        return kwargs

    def _coerce(self, out: GraderOutput) -> GraderResult:
        """Turn whatever ``_aevaluate`` returned into a validated result; reject bad scores.

        The common returns, a plain ``float`` (or ``int``) in ``[0, 1]`` alone or with a ``str``
        reason, are checked here, by exact type and range, for all that
        ``GraderScore(name=..., score=..., reason=...)`` would check, and that score is built
        with no second check (:func:`~rm_service._result.assembled`): its metadata a new empty
        dict, as the default factory gives, and the three fields given marked as set, as for
        that construction. Everything else takes :meth:`_coerce_other`. Why: this runs for
        every component a grader scores, and that path's ``isinstance`` tests against the
        result models (through the model metaclass's ``__instancecheck__`` for anything not a
        model) and the model's validation cost more than the grader itself when it is a cheap
        rule. So the range is checked once, here, where the score is made."""
        value, reason = out if type(out) is tuple and len(out) == 2 else (out, "")
        name = self.name
        if (
            (type(value) is float or type(value) is int)
            and 0.0 <= value <= 1.0  # NaN fails here, as it fails the model's check
            and type(reason) is str
            and type(name) is str
        ):
            fields = {"name": name, "score": float(value), "reason": reason, "metadata": {}}
            return assembled(GraderScore, fields, set(_SCORE_FIELDS_GIVEN))
        return self._coerce_other(out)

    def _coerce_other(self, out: GraderOutput) -> GraderResult:
        """:meth:`_coerce` for any return: a result object (checked and renamed), a number of any
        kind (``True``, a numpy scalar) or a pair with a reason to make a ``str``; anything else
        is an ``internal`` error that quotes it.

        Tuples of types, not ``X | Y`` unions, in the ``isinstance`` checks: a union check
        costs several times more."""
        if isinstance(out, _RESULT_TYPES):
            return renamed(out, self.name)
        reason: Any = ""
        if isinstance(out, tuple) and len(out) == 2:
            out, reason = out
        out, score = plain_reward(out)  # np.float32(0.5) is 0.5
        if score is not None:
            text = reason if type(reason) is str else str(reason)
            return GraderScore(name=self.name, score=score, reason=text)
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

    ``params`` fix some parameters that have a default, as a config's extra keys do
    (``min_overlap: 4``): each is checked against the signature and the parameter's annotation,
    and stops being a field, so a record key of the same name cannot change it.

    Args:
        func: the scoring function.
        name: the result name (default: the function's ``__name__``).
        run_in_thread: run a sync function in a worker thread. Leave off for cheap pure checks
            (the common case: a thread hop costs more than such a check); turn on for blocking
            I/O.
        params: values for parameters with a default; see :meth:`with_params`.

    Raises:
        ConfigError: a param the function has no parameter for, one without a default (a field),
            or a value its annotation rejects.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        run_in_thread: bool = False,
        params: Mapping[str, Any] | None = None,
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
        self.params = check_fixed_params(func, params or {})
        required, optional, self.takes_all = fields_of(func)
        # Per-instance field lists shadow the class defaults.
        self.required_fields = tuple(required)
        self.optional_fields = tuple(f for f in optional if f not in self.params)

    def with_params(self, params: Mapping[str, Any], *, name: str | None = None) -> FunctionGrader:
        """A copy with more parameters fixed (a config's extra keys); this grader is unchanged.

        Raises:
            ConfigError: as the constructor, for a param the function cannot take.
        """
        return FunctionGrader(
            self.func,
            name=name or self.name,
            run_in_thread=self.run_in_thread,
            params={**self.params, **params},
        )

    def _select(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        kwargs = super()._select(fields)
        if self.takes_all:
            kwargs = {**fields, **kwargs}
        if self.params:
            kwargs.update(self.params)  # a fixed param wins over a record key of its name
        return kwargs

    def evaluate(self, fields: Mapping[str, Any]) -> GraderResult:
        """The function called directly: what :meth:`aevaluate` does, less its coroutines."""
        if not self.inline:
            return super().evaluate(fields)
        try:
            out = self.func(**self._select(fields))
        except Exception as exc:
            return self._failed(exc)
        return self._coerce(out)

    async def _aevaluate(self, **fields: Any) -> GraderOutput:
        if self.is_async:
            return await self.func(**fields)
        if self.run_in_thread:
            return await in_thread(self.func, **fields)
        return self.func(**fields)


class _Minimal:
    """:class:`GraderContract`'s view of a grader that implements only :class:`Grader`: what it
    declares, else :class:`BaseGrader`'s defaults (an unknown grader is awaited, closes nothing
    and holds no judge)."""

    def __init__(self, grader: Grader) -> None:
        self._grader = grader
        self.name = grader.name
        self.inline = bool(getattr(grader, "inline", False))
        self.thread_safe = bool(getattr(grader, "thread_safe", False))
        self.required_fields = tuple(getattr(grader, "required_fields", ()))
        self.optional_fields = tuple(getattr(grader, "optional_fields", ()))
        self.takes_all = bool(getattr(grader, "takes_all", False)) or not hasattr(
            grader, "required_fields"
        )
        self.members = tuple(getattr(grader, "members", ()))

    async def aevaluate(self, **fields: Any) -> GraderResult:
        return await self._grader.aevaluate(**fields)

    def evaluate(self, fields: Mapping[str, Any]) -> GraderResult:
        return run_now(self._grader.aevaluate(**fields), self.name)

    async def aload(self) -> None:
        load = getattr(self._grader, "aload", None)
        if load is not None:
            await load()
        else:
            await asyncio.gather(*(contract(m).aload() for m in self.members))

    async def aclose(self) -> None:
        close = getattr(self._grader, "aclose", None)
        if close is not None:
            await close()

    def judges(self) -> Iterator[Any]:
        for member in self.members:
            yield from contract(member).judges()

    def prepare_ahead(self, batch: Sequence[Mapping[str, Any]]) -> None:
        prepare = getattr(self._grader, "prepare_ahead", None)
        if prepare is not None:
            prepare(batch)
        else:
            for member in self.members:
                contract(member).prepare_ahead(batch)


_RESULT_TYPES = (GraderScore, GraderError)
_SCORE_FIELDS_GIVEN = frozenset(("name", "score", "reason"))
"""The fields ``BaseGrader._coerce`` gives a score it builds (metadata takes its default)."""


async def load_all(graders: Mapping[str, Grader]) -> dict[str, str]:
    """``aload()`` every grader at once (each grader object once, however many names it has);
    ``{name: error}`` of those that failed. A failure is returned, not raised: the grader's
    records come back unscored with the same error, and the others are ready."""
    jobs: dict[str, Awaitable[None]] = {}
    seen: set[int] = set()
    for name, grader in graders.items():
        if id(grader) not in seen:
            seen.add(id(grader))
            jobs[name] = contract(grader).aload()
    outcomes = await asyncio.gather(*jobs.values(), return_exceptions=True)
    return {
        name: f"{type(out).__name__}: {out}"
        for name, out in zip(jobs, outcomes, strict=True)
        if isinstance(out, BaseException)
    }


def run_now(coro: Coroutine[Any, Any, GraderResult], name: str) -> GraderResult:
    """Run a coroutine that never suspends (an inline grader's) to its result, with no event
    loop: its first step returns.

    Raises:
        RuntimeError: it suspended (awaited real I/O or a sleep); it is closed first.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        result: GraderResult = done.value
        return result
    coro.close()
    raise RuntimeError(f"grader {name!r} is marked inline but awaited")


def contract(grader: Grader) -> GraderContract:
    """``grader`` read as a :class:`GraderContract`: itself if it is a :class:`BaseGrader`."""
    return grader if isinstance(grader, BaseGrader) else _Minimal(grader)


def prepares_ahead(grader: Grader) -> bool:
    """Whether ``grader`` has work to do ahead (:meth:`GraderContract.prepare_ahead`): one of
    its own, or a member's. The runner reads records ahead only for graders that do."""
    own = getattr(type(grader), "prepare_ahead", None)
    if own is not None and own is not BaseGrader.prepare_ahead:
        return True
    return any(prepares_ahead(m) for m in getattr(grader, "members", ()))


# --- registry: lets a YAML config name a grader (the same registry as the aggregators') --------

_REGISTRY = Registry("grader", builtins=BUILTIN_GRADERS)
_T = TypeVar("_T")


def register_grader(name: str, factory: Callable[..., Grader]) -> None:
    """Register ``factory`` (a grader class, or any callable returning a grader) under ``name``.

    The same definition again (a notebook cell run twice, ``importlib.reload``) replaces the old
    one; another definition under a taken name is a :class:`ConfigError`.
    """
    _REGISTRY.register(name, factory)


def grader(obj: _T | None = None, *, name: str | None = None) -> Any:
    """Register a grader class or function by name, so configs can say ``type: <name>``.

    On a class, it registers the class and returns it unchanged. On a function, it returns a
    :class:`FunctionGrader` wrapping it (usable directly) and registers a factory whose keyword
    arguments are bound to the function's optional parameters (``params:`` in a config).
    Usable bare (``@grader``) or with a name (``@grader(name="x")``).
    """

    def decorate(target: Any) -> Any:
        if isinstance(target, type):  # inspect.isclass, in a form mypy narrows Any by
            register_grader(name or getattr(target, "default_name", "") or target.__name__, target)
            return target
        fg = FunctionGrader(target, name=name)

        def factory(*, name: str | None = None, **params: Any) -> FunctionGrader:
            return fg.with_params(params, name=name)

        factory._registered_target = target  # type: ignore[attr-defined]  # for origin()
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
    factory = _lookup(spec, strict=True)
    if isinstance(factory, FunctionGrader):  # a @grader function named by import string
        name = params.pop("name", None)
        return factory.with_params(params, name=name) if params or name else factory
    if isinstance(factory, Grader) and not inspect.isclass(factory):
        if params:
            raise ConfigError(
                f"grader {spec!r} is a ready-made {type(factory).__name__} instance and takes no "
                f"params ({', '.join(sorted(params))}); name its class or a factory function"
            )
        return factory
    if not callable(factory):
        raise ConfigError(f"{spec!r} is neither a grader nor a grader factory")
    check_params("grader", spec, factory, params)
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
    return _lookup(spec, strict=False)


def takes_judge(spec: str) -> bool:
    """Whether the grader type ``spec`` names is a :class:`BaseGrader` declaring
    ``takes_judge``, so a config hands it the shared judge backend (and cache)."""
    factory = grader_factory(spec)
    return inspect.isclass(factory) and issubclass(factory, BaseGrader) and factory.takes_judge


def list_graders() -> list[str]:
    """Registered grader names, sorted."""
    return _REGISTRY.names()


def _lookup(spec: str, *, strict: bool) -> Any:
    """The factory ``spec`` names: registered, or imported (``None`` if unknown and not
    ``strict``; a :class:`ConfigError` listing the registered names if ``strict``)."""
    if spec in _REGISTRY:
        return _REGISTRY.find(spec)
    obj = _REGISTRY.resolve(spec) if strict else _REGISTRY.find(spec)
    if not isinstance(obj, Grader) and callable(obj) and not inspect.isclass(obj):
        # A plain function named by import string: its parameters are bound like @grader's.
        return lambda *, name=None, **params: FunctionGrader(obj, name=name, params=params)
    return obj
