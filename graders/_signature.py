"""Reading a grader function's signature: which record fields it takes, and its fixed params.

A :class:`~graders._base.FunctionGrader` is configured by its function's parameters: those
without a default are required record fields, those with one optional fields or params a config
may fix (``min_overlap: 4``), checked against their annotations. That reading is apart from the
grader contract in :mod:`graders._base` because it is all ``inspect`` and pydantic validation,
run once at construction, never on a call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from pydantic import TypeAdapter, ValidationError

from rm_service._exceptions import ConfigError

__all__ = ["check_fixed_params", "fields_of"]


def fields_of(func: Callable[..., Any]) -> tuple[list[str], list[str], bool]:
    """``func``'s required fields, its optional ones, and whether it takes ``**fields`` (all)."""
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


def check_fixed_params(func: Callable[..., Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Check config values for ``func``'s parameters; returns them as the annotations read them.

    Only a parameter with a default can be fixed: one without is a record field, which a config
    points elsewhere with ``mapper:``, never replaces with a constant. A value is validated against
    the annotation by pydantic, strictly first; a YAML string or list may then convert as in the
    rest of the config (``"4"`` to an int, a list to a tuple), a bool never turns into a number.
    """
    if not params:
        return {}
    base = func.func if isinstance(func, partial) else func
    fname = f"{getattr(base, '__qualname__', None) or type(base).__name__}()"
    try:  # annotations written as strings (``from __future__ import annotations``) resolved
        sig = inspect.signature(func, eval_str=True)
    except Exception:
        sig = inspect.signature(func)
    settable = {
        p.name: p
        for p in sig.parameters.values()
        if p.default is not p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    checked: dict[str, Any] = {}
    for key, value in params.items():
        p = settable.get(key)
        if p is None:
            if key in sig.parameters and sig.parameters[key].kind not in (
                inspect.Parameter.VAR_KEYWORD,
                inspect.Parameter.VAR_POSITIONAL,
            ):
                raise ConfigError(
                    f"{key}: a record field of {fname} (a parameter without a default), not a "
                    f"param; to read it from another record key, use mapper: {{{key}: <key>}}"
                )
            known = ", ".join(_describe_param(q) for q in settable.values()) or "none"
            raise ConfigError(f"{key}: {fname} has no such parameter; the params it takes: {known}")
        checked[key] = _check_value(p, value, fname)
    return checked


def _check_value(p: inspect.Parameter, value: Any, fname: str) -> Any:
    annotation = p.annotation
    if annotation is p.empty or isinstance(annotation, str):
        return value  # nothing to check against
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    except Exception:  # a type pydantic cannot validate (an arbitrary class): take it as it is
        return value
    try:
        return adapter.validate_python(value, strict=True)
    except ValidationError as exc:
        error = exc
    if not isinstance(value, bool):
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            error = exc
    reason = error.errors()[0]["msg"] if error.errors() else str(error)
    raise ConfigError(
        f"{p.name}: {fname} declares {_describe_param(p)}; got {value!r} ({reason})"
    ) from None


def _describe_param(p: inspect.Parameter) -> str:
    """``min_overlap: int = 5``, as the signature writes it."""
    return str(p.replace(kind=p.KEYWORD_ONLY))
