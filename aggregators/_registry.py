"""Build aggregators by name, so a YAML config can say ``type: weighted_sum``.

The same registry as the graders' (:class:`rm_service._registry.Registry`): ``@aggregator``
registers a class or function as ``@grader`` does, and a ``type`` is resolved, and its parameters
checked, the same way. The built-ins (``weighted_sum``, ``min``, ``max``, ``gate``, ``formula``)
register themselves with the decorator where they are defined.

``get_aggregator(type, **params)`` takes either a registered name or a
``"package.module:attr"`` import string for a user's own aggregator:

* a class (a :class:`BaseAggregator` subclass, or any class whose instances are callables on the
  results) is called with ``params``;
* a plain function ``f(results, **params) -> GraderScore | GraderError | float`` is wrapped in a
  :class:`FunctionAggregator`, with ``params`` bound to its keyword arguments and ``name`` used as
  the result name;
* an aggregator instance is used as is (a ``name`` renames a shallow copy; nothing else is allowed).

A registered *factory*, unlike an imported function, is called with ``params`` and must return an
aggregator: use :func:`register_aggregator` for factories. ``@aggregator`` on a plain function
``f(results, **params)`` returns it wrapped in a :class:`FunctionAggregator` and registers it with
its keyword arguments as params. Every mistake (unknown type, failed
import, unknown or missing parameter) is a :class:`ConfigError` naming the type and the parameter,
raised when the config is built, before any record is graded.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from aggregators._base import BaseAggregator, FunctionAggregator
from rm_service._exceptions import ConfigError
from rm_service._registry import Registry, check_params

__all__ = ["aggregator", "get_aggregator", "list_aggregators", "register_aggregator"]

Aggregator = BaseAggregator | FunctionAggregator

_REGISTRY = Registry("aggregator", noun="aggregator type")
_T = TypeVar("_T")


def register_aggregator(name: str, factory: Callable[..., Any]) -> None:
    """Register ``factory`` (an aggregator class, or a callable returning one) under ``name``.

    Registering the same factory twice is a no-op, so a module imported twice does no harm;
    registering a *different* factory under a taken name is an error rather than a silent
    replacement, because two configs would then mean different rewards by the same word.

    Raises:
        ConfigError: an empty name, a name containing ``":"`` (reserved for import strings), a
            non-callable factory, or a name already taken by another factory.
    """
    _REGISTRY.register(name, factory)


def aggregator(obj: _T | None = None, *, name: str | None = None) -> Any:
    """Register an aggregator class or function by name, so configs can say ``type: <name>``.

    On a class, it registers the class (under ``name``, else the class name) and returns it
    unchanged. On a function ``f(results, **params)``, it returns a :class:`FunctionAggregator`
    wrapping it (usable directly) and registers a factory that binds ``params`` to the function's
    keyword arguments. Usable bare (``@aggregator``) or with a name (``@aggregator(name="x")``),
    like :func:`graders.grader`.
    """

    def decorate(target: Any) -> Any:
        if isinstance(target, type):
            register_aggregator(name or target.__name__, target)
            return target
        registered = name or target.__name__

        def factory(**params: Any) -> Aggregator:
            return _from_function(
                registered, target, {**params, "name": params.get("name") or registered}
            )

        factory._registered_target = target  # type: ignore[attr-defined]  # for origin()
        register_aggregator(registered, factory)
        return FunctionAggregator(target, name=registered)

    return decorate if obj is None else decorate(obj)


def list_aggregators() -> list[str]:
    """Registered aggregator type names, sorted."""
    return _REGISTRY.names()


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
    target = _REGISTRY.resolve(type)

    if isinstance(target, BaseAggregator | FunctionAggregator):
        return _from_instance(type, target, params)
    if not callable(target):
        raise ConfigError(f"aggregator {type!r} is neither an aggregator nor a factory: {target!r}")
    if type not in _REGISTRY and not inspect.isclass(target):
        return _from_function(type, target, params)

    check_params("aggregator", type, target, params)
    try:
        built = target(**params)
    except ConfigError as exc:
        raise ConfigError(f"aggregator {type!r}: {exc}") from None
    except TypeError as exc:  # a signature inspect could not see (C callables, *args wrappers)
        raise ConfigError(f"aggregator {type!r}: bad params {sorted(params)}: {exc}") from None
    except (OverflowError, ValueError) as exc:  # a number too large for a float (10**400)
        raise ConfigError(f"aggregator {type!r}: a parameter out of range: {exc}") from None
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
