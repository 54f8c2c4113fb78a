"""Resolve ``"package.module:attribute"`` strings, so configs can name user code.

One place for it, as in uvicorn's ``importer.py``: the error says what format was expected.
"""

from __future__ import annotations

import importlib
from typing import Any

from rm_service._exceptions import ConfigError

__all__ = ["import_from_string"]


def import_from_string(spec: str, what: str = "object") -> Any:
    """Import ``spec`` (``"package.module:attr"`` or ``"package.module:Class.attr"``).

    Raises:
        ConfigError: malformed string, missing module or attribute; names ``what`` was wanted.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"bad {what} import string {spec!r}; expected 'package.module:attr'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"cannot import {what} {spec!r} (expected 'package.module:attr'): {exc}"
        ) from exc
    return obj
