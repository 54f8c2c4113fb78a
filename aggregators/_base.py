"""The aggregator contract: ``aggregator(results_by_name) -> GraderScore | GraderError``.

An aggregator combines some components of one record into one result. Every aggregator has an
explicit failure policy, ``on_error``, for components that came back unscored:

* ``"unscored"`` (default): the aggregate is unscored too, and says which components failed.
* ``"skip"``: drop the failed components, combine the survivors (a weighted sum renormalises its
  weights over them), and list the skipped names in ``metadata["skipped"]``. If every component
  failed, the aggregate is unscored: never a made-up 0.
* a float in ``[0, 1]``: use that value for each failed component, listed in
  ``metadata["substituted"]``. An explicit, visible choice.

Under every policy, a record whose components *all* failed is unscored: with no real score left
there is nothing to reward, and a substitute alone would be a made-up number.

Aggregators run after the graders, in order, and each sees the graders' results plus those of the
aggregators before it, so a gate can wrap a weighted sum.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Literal

from rm_service._exceptions import ConfigError
from rm_service._result import (
    GraderError,
    GraderResult,
    GraderScore,
    assembled,
    plain_reward,
    renamed,
)

__all__ = ["BaseAggregator", "FunctionAggregator", "OnError", "as_aggregator", "reads_as_base"]

OnError = Literal["unscored", "skip"] | float


def _check_on_error(on_error: OnError) -> OnError:
    if on_error in ("unscored", "skip"):
        return on_error
    if (
        isinstance(on_error, int | float)
        and not isinstance(on_error, bool)
        and math.isfinite(on_error)
        and 0.0 <= on_error <= 1.0
    ):
        return float(on_error)
    raise ConfigError(f"on_error must be 'unscored', 'skip' or a float in [0, 1], got {on_error!r}")


class BaseAggregator:
    """Base for aggregators: component selection and the ``on_error`` policy in one place.

    Subclasses implement :meth:`combine`, which receives only scored values (after the policy has
    dropped or substituted failures) and returns a float in ``[0, 1]`` or a ``(score, reason)``
    pair, or raises ``ValueError`` for "cannot combine these".

    Args:
        name: the result name, e.g. ``"reward"``.
        components: the names this aggregator reads; ``None`` means every grader.
        on_error: the failure policy (see the module docstring).
    """

    def __init__(
        self,
        name: str,
        *,
        components: Sequence[str] | None = None,
        on_error: OnError = "unscored",
    ) -> None:
        if not name:
            raise ConfigError(f"{type(self).__name__} needs a name")
        if isinstance(components, str):
            raise ConfigError(f"{name}: components must be a list of names, not a string")
        self.name = name
        self.components: tuple[str, ...] | None = (
            tuple(components) if components is not None else None
        )
        if self.components == ():
            raise ConfigError(f"{name}: components is empty")
        self.on_error = _check_on_error(on_error)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, on_error={self.on_error!r})"

    @property
    def __name__(self) -> str:  # OpenJudge keys aggregate results by ``__name__``
        return self.name

    def bind(self, available: Sequence[str]) -> None:
        """Resolve ``components=None`` and check names against what will exist; raise early."""
        if self.components is None:
            if not available:
                raise ConfigError(f"aggregator {self.name!r} has no components to read")
            self.components = tuple(available)
            return
        unknown = [c for c in self.components if c not in available]
        if unknown:
            raise ConfigError(
                f"aggregator {self.name!r} reads unknown component(s) {unknown}; "
                f"available: {list(available)}"
            )

    def __call__(self, results: Mapping[str, GraderResult]) -> GraderResult:
        names = self.components if self.components is not None else tuple(results)
        values: dict[str, float] = {}
        for n in names:
            r = results.get(n)
            if type(r) is not GraderScore:  # a failure, a subclass, a missing one: the policy
                return self._with_policy(results, names)
            values[n] = r.score
        if not values:  # nothing to combine (an unbound aggregator given no results)
            return self._with_policy(results, names)
        # Every component a score (by exact type; ``isinstance`` would take it too): no policy
        # applies, and from here this is the general path's work with no metadata.
        out, error = self._combined(values)
        return error if error is not None else self._scored(out, {})

    def _with_policy(
        self, results: Mapping[str, GraderResult], names: Sequence[str]
    ) -> GraderResult:
        """:meth:`__call__` when a component is not a score by exact type: ``on_error`` says
        what a failure means."""
        values: dict[str, float] = {}
        failed: dict[str, GraderError] = {}
        for n in names:
            r = results.get(n)
            if isinstance(r, GraderScore):
                values[n] = r.score
            elif isinstance(r, GraderError):
                failed[n] = r
            else:
                failed[n] = GraderError(name=n, error="component missing", kind="internal")
        metadata: dict[str, Any] = {}
        if failed:
            if self.on_error == "unscored" or not values:
                return self._unscored(failed)
            if self.on_error == "skip":
                metadata["skipped"] = sorted(failed)
            else:
                values.update(dict.fromkeys(failed, self.on_error))
                metadata["substituted"] = sorted(failed)
        if not values:
            return GraderError(name=self.name, error="no components to combine", kind="internal")
        out, error = self._combined(values)
        return error if error is not None else self._scored(out, metadata)

    def _combined(self, values: Mapping[str, float]) -> tuple[Any, GraderError | None]:
        """What :meth:`combine` returned, or the error it is reported as when it raised."""
        try:
            return self.combine(values), None
        except (ValueError, ArithmeticError) as exc:
            return None, GraderError(
                name=self.name, error=f"cannot combine: {exc}", kind="internal"
            )
        except Exception as exc:  # a bug in a subclass: unscored and named, never a number
            return None, GraderError(name=self.name, error=f"{type(exc).__name__}: {exc}")

    def _scored(self, out: Any, metadata: dict[str, Any]) -> GraderResult:
        """The result of what :meth:`combine` returned (``metadata``: the policy's so far).

        A ``(float in [0, 1], str)`` pair, what the built-in aggregators return, is built as it
        is: the general reading below would give the same (``plain_reward`` gives such a float
        back as itself), at several times the cost, for every record."""
        reason: Any = ""
        if type(out) is tuple and len(out) == 2:
            value, reason = out
            if (
                type(value) is float
                and 0.0 <= value <= 1.0  # NaN fails here, as in plain_reward
                and type(reason) is str
                and type(self.name) is str
            ):
                fields = {"name": self.name, "score": value, "reason": reason, "metadata": metadata}
                return assembled(GraderScore, fields)
        extra: list[Any] = []
        if isinstance(out, tuple):
            if len(out) == 2:
                out, reason = out
            else:
                out, reason, *extra = out
                if extra:
                    metadata.update(extra[0])
        # Read as a function aggregator's return is: a subclass's True or np.float32(0.5) raised
        # pydantic's strict-float error out of here, and a string a TypeError, not a result.
        out, score = plain_reward(out)
        if score is None:
            return GraderError(
                name=self.name, error=f"aggregate {out!r} is {_no_reward(out)}", kind="internal"
            )
        if not extra and type(reason) is str and type(self.name) is str:
            # Every field already what the model checks (the score a float in [0, 1] from
            # plain_reward, the metadata this method's own list of names): not validated again.
            fields = {"name": self.name, "score": score, "reason": reason, "metadata": metadata}
            return assembled(GraderScore, fields)
        return GraderScore(name=self.name, score=score, reason=reason, metadata=metadata)

    def combine(
        self, values: Mapping[str, float]
    ) -> float | tuple[float, str] | tuple[float, str, dict[str, Any]]:
        """Return a float, ``(score, reason)`` or ``(score, reason, metadata)``."""
        raise NotImplementedError

    def _unscored(self, failed: Mapping[str, GraderError]) -> GraderError:
        kinds = {n: e.kind for n, e in failed.items()}
        first = next(iter(failed.values()))
        detail = "; ".join(f"{n}: {e.kind}: {e.error}" for n, e in failed.items())
        return GraderError(
            name=self.name,
            error=f"unscored component(s): {detail}",
            kind=first.kind,
            metadata={"unscored_components": kinds},
        )


def reads_as_base(aggregator: object) -> bool:
    """Whether calling ``aggregator`` only reads the results it is given: its class reads them
    with :class:`BaseAggregator`'s own code (a subclass that writes only ``combine`` does), and
    nothing on the instance replaces it. The runner then hands it a record's results as they
    are, not a read-only copy. Asked at each call, of the class as it is then: a ``__call__``
    replaced after the class was made (a decorator, a patch) gets the copy again."""
    cls = type(aggregator)
    return (
        cls.__call__ is BaseAggregator.__call__
        and getattr(cls, "_with_policy", None) is BaseAggregator._with_policy
        and "_with_policy" not in getattr(aggregator, "__dict__", ())
    )


class FunctionAggregator:
    """Wrap ``f(results_by_name) -> GraderScore | GraderError | float`` as an aggregator.

    The function sees every result (errors included) and owns its failure handling; an exception
    or an out-of-range value becomes an unscored ``internal`` error, never a number.

    Raises:
        ConfigError: ``func`` is ``async``. Aggregators run synchronously once a record's graders
            are done, so it would return a coroutine, never awaited, for every record: that
            config would pass ``check`` and leave every reward unscored.
    """

    def __init__(self, func: Callable[[Mapping[str, GraderResult]], Any], name: str | None = None):
        base = func.func if isinstance(func, partial) else func  # params bound by the registry
        if inspect.iscoroutinefunction(base) or inspect.iscoroutinefunction(
            getattr(base, "__call__", None)  # noqa: B004  (async __call__ on an instance)
        ):
            raise ConfigError(
                f"aggregator function {getattr(base, '__qualname__', None) or base!r} is async; "
                "an aggregator combines finished results and must be a plain (def) function"
            )
        self.func = func
        self.name = name or getattr(func, "__name__", None) or "aggregate"

    @property
    def __name__(self) -> str:
        return self.name

    def bind(self, available: Sequence[str]) -> None:
        return None

    def __call__(self, results: Mapping[str, GraderResult]) -> GraderResult:
        try:
            out = self.func(results)
        except Exception as exc:
            return GraderError(name=self.name, error=f"{type(exc).__name__}: {exc}")
        if isinstance(out, GraderScore | GraderError):
            return renamed(out, self.name)
        out, score = plain_reward(out)  # np.float64(0.5) is 0.5 and True 1.0, as from a grader
        if score is not None:
            return GraderScore(name=self.name, score=score)
        return GraderError(name=self.name, error=f"aggregator returned {out!r}, {_no_reward(out)}")


def _no_reward(out: Any) -> str:
    """Why ``out`` (read by :func:`plain_reward`, which gave no score) is no reward."""
    return "not in [0, 1]" if isinstance(out, int | float) else "not a number"


def as_aggregator(obj: Any) -> BaseAggregator | FunctionAggregator:
    """Accept an aggregator instance or a plain callable; reject anything else early."""
    if isinstance(obj, BaseAggregator | FunctionAggregator):
        return obj
    if callable(obj):
        return FunctionAggregator(obj)
    raise ConfigError(f"not an aggregator: {obj!r}")
