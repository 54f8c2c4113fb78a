"""Resolve ``"package.module:attribute"`` strings, so configs can name user code.

One place for it, as in uvicorn's ``importer.py``: the error says what format was expected.
"""

from __future__ import annotations

import importlib
import os
import sys
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
    _put_cwd_on_path()
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"cannot import {what} {spec!r} (expected 'package.module:attr'): {exc}"
        ) from exc
    return obj


def _put_cwd_on_path() -> None:
    """Make modules in the current directory importable, as ``python -m`` and uvicorn do.

    A user's grader file sits beside their config (``type: mygraders.cites:cites_context``), but
    a console script such as ``rm-service`` has its own ``bin/`` directory, not the cwd, on
    ``sys.path``. Like uvicorn's ``--app-dir`` (default ``.``), the cwd goes first, so the user's
    module is the one found; nothing changes when it is already on the path.
    """
    try:
        cwd = os.getcwd()
    except OSError:  # the cwd was deleted: nothing there to import
        return
    if not any(isinstance(p, str) and os.path.abspath(p) == cwd for p in sys.path):
        sys.path.insert(0, cwd)
