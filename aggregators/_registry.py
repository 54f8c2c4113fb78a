"""Build aggregators by name, so a YAML config can say ``type: weighted_sum``.

``get_aggregator(type, **params)`` takes either a registered name (the built-ins ``weighted_sum``,
``min``, ``max``, ``gate``, ``formula``, plus whatever :func:`register_aggregator` added) or a
``"package.module:attr"`` import string for a user's own aggregator:

* a class (a :class:`BaseAggregator` subclass, or any class whose instances are callables on the
  results) is called with ``params``;
* a plain function ``f(results, **params) -> GraderScore | GraderError | float`` is wrapped in a
  :class:`FunctionAggregator`, with ``params`` bound to its keyword arguments and ``name`` used as
  the result name;
* an aggregator instance is used as is (a ``name`` renames a shallow copy; nothing else is allowed).

A registered *factory*, unlike an imported function, is called with ``params`` and must return an
aggregator: use :func:`register_aggregator` for factories. Every mistake (unknown type, failed
import, unknown or missing parameter) is a :class:`ConfigError` naming the type and the parameter,
raised when the config is built, before any record is graded.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

from aggregators._base import BaseAggregator, FunctionAggregator
from aggregators._formula import FormulaAggregator
from aggregators._gate import GateAggregator
from aggregators._weighted import MaxAggregator, MinAggregator, WeightedSumAggregator
from rm_service._exceptions import ConfigError
from rm_service._importer import import_from_string

__all__ = ["get_aggregator", "list_aggregators", "register_aggregator"]

Aggregator = BaseAggregator | FunctionAggregator

_REGISTRY: dict[str, Callable[..., Any]] = {
    "weighted_sum": WeightedSumAggregator,
    "min": MinAggregator,
    "max": MaxAggregator,
    "gate": GateAggregator,
    "formula": FormulaAggregator,
}


def register_aggregator(name: str, factory: Callable[..., Any]) -> None:
    """Register ``factory`` (an aggregator class, or a callable returning one) under ``name``.

    Registering the same factory twice is a no-op, so a module imported twice does no harm;
    registering a *different* factory under a taken name is an error rather than a silent
    replacement, because two configs would then mean different rewards by the same word.

    Raises:
        ConfigError: an empty name, a name containing ``":"`` (reserved for import strings), a
            non-callable factory, or a name already taken by another factory.
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ConfigError(f"aggregator name must be a non-empty string without ':', got {name!r}")
    if not callable(factory):
        raise ConfigError(f"aggregator factory for {name!r} is not callable: {factory!r}")
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not factory:
        raise ConfigError(f"an aggregator named {name!r} is already registered ({existing!r})")
    _REGISTRY[name] = factory


def list_aggregators() -> list[str]:
    """Registered aggregator type names, sorted."""
    return sorted(_REGISTRY)


def get_aggregator(type: str, /, **params: Any) -> Aggregator:
    """Build an aggregator from a registered type name or a ``"module:attr"`` import string.

    Args:
        type: ``"weighted_sum"``, ``"min"``, ``"max"``, ``"gate"``, ``"formula"``, another
            registered name, or ``"package.module:attr"``.
        **params: the aggregator's parameters, ``name`` included (e.g. ``name="reward"``,
            ``weights={...}``, ``on_error="skip"``).

    Raises:
        ConfigError: unknown type, failed import, parameters the aggregator does not take or
            lacks, or invalid values (the aggregator's own message, prefixed with the type).
    """
    if not isinstance(type, str) or not type:
        raise ConfigError(f"aggregator type must be a non-empty string, got {type!r}")
    if type in _REGISTRY:
        target = _REGISTRY[type]
    elif ":" in type:
        target = _import(type)
    else:
        raise ConfigError(
            f"unknown aggregator type {type!r}; registered: {', '.join(list_aggregators())}; "
            "or use 'package.module:attr'"
        )

    if isinstance(target, BaseAggregator | FunctionAggregator):
        return _from_instance(type, target, params)
    if not callable(target):
        raise ConfigError(f"aggregator {type!r} is neither an aggregator nor a factory: {target!r}")
    if type not in _REGISTRY and not inspect.isclass(target):
        return _from_function(type, target, params)

    _check_params(type, target, params)
    try:
        built = target(**params)
    except ConfigError as exc:
        raise ConfigError(f"aggregator {type!r}: {exc}") from None
    except TypeError as exc:  # a signature inspect could not see (C callables, *args wrappers)
        raise ConfigError(f"aggregator {type!r}: bad params {sorted(params)}: {exc}") from None
    if isinstance(built, BaseAggregator | FunctionAggregator):
        return built
    if callable(built) and not inspect.isclass(built):  # a callable object: f(results)
        name = params.get("name") or getattr(built, "name", None) or type.rpartition(":")[2]
        return FunctionAggregator(built, name=name)
    raise ConfigError(f"aggregator {type!r} built {built!r}, not an aggregator")


def _from_instance(spec: str, agg: Aggregator, params: dict[str, Any]) -> Aggregator:
    extra = sorted(set(params) - {"name"})
    if extra:
        raise ConfigError(
            f"aggregator {spec!r} is an instance; it takes no params except name, got {extra}"
        )
    name = params.get("name")
    if name is None or name == agg.name:
        return agg
    renamed = copy.copy(agg)  # aggregators are stateless after construction: a shallow copy is safe
    renamed.name = name
    return renamed


def _from_function(spec: str, func: Callable[..., Any], params: dict[str, Any]) -> Aggregator:
    params = dict(params)
    name = params.pop("name", None)
    try:
        inspect.signature(func).bind({}, **params)
    except TypeError as exc:
        raise ConfigError(
            f"aggregator {spec!r}: a function aggregator is called as f(results, **params); "
            f"params {sorted(params)} do not fit: {exc}"
        ) from None
    except ValueError:  # no signature available (some builtins): let the call decide
        pass
    default = getattr(func, "__name__", None) or spec.rpartition(":")[2]
    return FunctionAggregator(partial(func, **params) if params else func, name=name or default)


def _check_params(spec: str, factory: Callable[..., Any], params: dict[str, Any]) -> None:
    """Name the offending parameter before calling, rather than relay a bare ``TypeError``."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    accepted = [
        p.name
        for p in sig.parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY)
    ]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    unknown = [] if takes_any else sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(
            f"aggregator {spec!r} does not take parameter(s) {unknown}; accepted: {accepted}"
        )
    missing = [
        p.name
        for p in sig.parameters.values()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in params
    ]
    if missing:
        raise ConfigError(
            f"aggregator {spec!r} is missing required parameter(s) {missing}; accepted: {accepted}"
        )


def _import(spec: str) -> Any:
    return import_from_string(spec, "aggregator")
