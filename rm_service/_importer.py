"""Resolve ``"package.module:attribute"`` strings, so configs can name user code.

One place for it, as in uvicorn's ``importer.py``: the error says what format was expected.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import traceback
from typing import Any

from rm_service._exceptions import ConfigError

__all__ = ["import_from_string"]


def import_from_string(spec: str, what: str = "object") -> Any:
    """Import ``spec`` (``"package.module:attr"`` or ``"package.module:Class.attr"``).

    Raises:
        ConfigError: malformed string, missing module or attribute, or a module that fails as
            it runs (a syntax error, a raise at its top level); names ``what`` was wanted.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"bad {what} import string {spec!r}; expected 'package.module:attr'")
    _put_cwd_on_path()
    try:
        _top_from_cwd(module_name)
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"cannot import {what} {spec!r} (expected 'package.module:attr'): {exc}"
        ) from exc
    except ConfigError:
        raise  # the module's own refusal (an @aggregator on an async function) says it all
    except Exception as exc:
        # The module itself failed as it ran: a SyntaxError, or a raise at its top level. A bare
        # traceback out of the config loader named neither the config nor the key; this names
        # both (the caller prefixes them) and where in the user's file it went wrong (a
        # SyntaxError's own message already does).
        where = ""
        if not isinstance(exc, SyntaxError):
            last = traceback.extract_tb(exc.__traceback__)[-1]
            where = f" ({last.filename}, line {last.lineno})"
        raise ConfigError(
            f"cannot import {what} {spec!r}: {type(exc).__name__}: {exc}{where}"
        ) from exc
    return obj


def _put_cwd_on_path() -> None:
    """Make modules in the current directory importable, as ``python -m`` and uvicorn do.

    A user's grader file sits beside their config (``type: mygraders.cites:cites_context``), but
    a console script such as ``rm-service`` has its own ``bin/`` directory, not the cwd, on
    ``sys.path``. The cwd goes last, not first: modules are imported when first used (a grader
    type's module when a config names it, a model's library when it loads), and a file beside
    the config named like one of them (``regex.py``, ``queue.py``) must not replace it, as a
    script's own directory does (``PYTHONSAFEPATH`` exists for that). A user's module named like
    an installed one is still the one found, by :func:`_top_from_cwd`. Nothing changes when the
    cwd is on the path already.
    """
    try:
        cwd = os.getcwd()
    except OSError:  # the cwd was deleted: nothing there to import
        return
    if not any(isinstance(p, str) and os.path.abspath(p) == cwd for p in sys.path):
        sys.path.append(cwd)


def _top_from_cwd(module_name: str) -> None:
    """Import the top-level package (or module) of ``module_name`` from the current directory,
    when it is there and not imported yet: the config names the user's code beside it, even
    when an installed distribution has a top-level package of that name (verl installs
    ``scripts``). Only that name is looked up in the cwd first; the modules it imports are
    found in the usual order (:func:`_put_cwd_on_path`)."""
    top = module_name.partition(".")[0]
    if top in sys.modules:
        return
    try:
        cwd = os.getcwd()
    except OSError:
        return
    spec = importlib.machinery.PathFinder.find_spec(top, [cwd])
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[top] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(top, None)
        raise
