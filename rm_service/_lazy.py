"""Lazy package attributes: a package's public names imported on first use.

Why: ``rm_service`` must import its result types without the engine (``graders`` import them,
and an eager engine would import ``graders`` back), and ``trainer`` must import without torch.
Both keep a table of name -> defining module and hand it to :func:`lazy_attributes` for their
module ``__getattr__`` and ``__dir__`` (PEP 562).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, namespace: dict[str, Any], table: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose globals are ``namespace``.

    ``__getattr__`` imports the module ``table`` names for an attribute and caches the value in
    ``namespace``, so later lookups skip it; ``__dir__`` lists the lazy names too.
    """

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
