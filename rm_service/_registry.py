"""One registry for the components a config names by ``type``: graders and aggregators.

A config's ``type:`` is either a registered name (``@grader`` / ``@aggregator`` put it there) or a
``"package.module:attr"`` import string, and both kinds resolve it the same way, check parameters
the same way and refuse the same mistakes. What a resolved target *is* (a class, a factory, a plain
function, a ready-made instance) and how it is built stays with each kind (``graders._base``,
``aggregators._registry``): a grader function takes record fields, an aggregator function results.
This module sits beside the result types at the bottom of the layering, so both can import it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from rm_service._exceptions import ConfigError
from rm_service._importer import import_from_string

__all__ = ["Registry", "check_params", "origin"]


def origin(factory: Any) -> str:
    """Where a registered factory was defined: ``module.qualname`` of the class or function (a
    decorator's generated factory names its target in ``_registered_target``)."""
    target = getattr(factory, "_registered_target", factory)
    module = getattr(target, "__module__", None) or "?"
    return f"{module}.{getattr(target, '__qualname__', None) or type(target).__qualname__}"


class Registry:
    """Names to factories for one kind of component.

    Args:
        kind: ``"grader"`` or ``"aggregator"``, as messages and the decorator are named.
        noun: how a config's unknown ``type`` is reported (default ``kind``).
        builtins: the built-in names and the module registering each, imported when a name is
            first looked up (or taken by another component), not before.
    """

    def __init__(
        self, kind: str, *, noun: str | None = None, builtins: Mapping[str, str] | None = None
    ) -> None:
        self.kind = kind
        self.noun = noun or kind
        self._factories: dict[str, Callable[..., Any]] = {}
        self._builtins = dict(builtins or {})

    def _load(self, name: object) -> None:
        """Import the module that registers the built-in ``name``, if it is one not yet
        imported. Why: a package that imported all its components to register them paid every
        one's import (the judges' pre-gates compile hundreds of regexes) in every process that
        names one of them, math workers included; the table says where each name is defined."""
        if isinstance(name, str) and name in self._builtins:
            # Even when the name is registered: a module registers its names as it runs, and
            # another thread must wait for it to finish (the import's module lock) before it
            # builds one of its types.
            importlib.import_module(self._builtins[name])

    def register(self, name: str, factory: Callable[..., Any]) -> None:
        """Register ``factory`` under ``name``.

        The same definition again (a module imported twice, a notebook cell run twice,
        ``importlib.reload``) replaces the old one; a *different* definition under a taken name
        is an error rather than a silent replacement, because two configs would then mean
        different rewards by the same word.

        Raises:
            ConfigError: an empty name, a name containing ``":"`` (reserved for import strings),
                a non-callable factory, or a name already taken by another definition.
        """
        if not isinstance(name, str) or not name or ":" in name:
            raise ConfigError(
                f"{self.kind} name must be a non-empty string without ':', got {name!r}"
            )
        if not callable(factory):
            raise ConfigError(f"{self.kind} factory for {name!r} is not callable: {factory!r}")
        self._load(name)  # a user's component under a built-in's name meets the built-in
        existing = self._factories.get(name)
        if existing is not None and existing is not factory and origin(existing) != origin(factory):
            raise ConfigError(
                f"a {self.kind} named {name!r} is already registered (by {origin(existing)}); "
                f"register this one under another name: @{self.kind}(name=...)"
            )
        self._factories[name] = factory

    def names(self) -> list[str]:
        """Registered names, the built-in ones included whether imported yet or not, sorted."""
        return sorted(self._factories.keys() | self._builtins.keys())

    def __contains__(self, name: object) -> bool:
        self._load(name)
        return name in self._factories

    def pop(self, name: str, default: Any = None) -> Any:
        """Unregister ``name`` (tests that register a throwaway name clean up with this); a
        built-in one is no longer listed or found either."""
        self._load(name)
        self._builtins.pop(name, None)
        return self._factories.pop(name, default)

    def find(self, spec: str) -> Any:
        """The registered factory ``spec`` names, the object a ``"module:attr"`` spec imports,
        or ``None`` for an unknown name.

        Raises:
            ConfigError: a ``"module:attr"`` that does not import.
        """
        self._load(spec)
        if spec in self._factories:
            return self._factories[spec]
        if isinstance(spec, str) and ":" in spec:
            return import_from_string(spec, self.kind)
        return None

    def resolve(self, spec: str) -> Any:
        """Like :meth:`find`, but an unknown or empty ``spec`` is a :class:`ConfigError` that
        lists the registered names."""
        if not isinstance(spec, str) or not spec:
            raise ConfigError(f"{self.noun} must be a non-empty string, got {spec!r}")
        found = self.find(spec)
        if found is None:
            raise ConfigError(
                f"unknown {self.noun} {spec!r}; registered: {', '.join(self.names()) or 'none'}; "
                "or use 'package.module:attr'"
            )
        return found


def check_params(
    kind: str, spec: str, factory: Callable[..., Any], params: Mapping[str, Any]
) -> None:
    """Name the offending parameter before a factory is called, rather than relay a bare
    ``TypeError`` from inside it: an unknown name (unless the factory takes ``**kwargs``) or a
    missing required one. A factory whose signature cannot be read is left to the call.

    Raises:
        ConfigError: naming the parameter and listing those accepted.
    """
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
            f"{kind} {spec!r} does not take parameter(s) {unknown}; accepted: {accepted}"
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
            f"{kind} {spec!r} is missing required parameter(s) {missing}; accepted: {accepted}"
        )
