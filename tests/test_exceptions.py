"""One exception tree: every exception the packages define lives in ``rm_service._exceptions``
and is drawn in its docstring, except the internal signals that docstring names."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import rm_service._exceptions as tree

# Signals no caller catches as an error (see the _exceptions docstring for why each is outside).
SIGNALS = {
    "graders._unscored.Unscored",
    "graders._verdict.VerdictError",
    "rm_service._admission.Overloaded",
}


def _defined_exceptions() -> set[str]:
    found: set[str] = set()
    for package in ("rm_service", "graders", "aggregators"):  # trainer defines none, and is heavy
        pkg = importlib.import_module(package)
        names = [package] + [
            m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}.")
        ]
        for name in names:
            module = importlib.import_module(name)
            for attr, obj in vars(module).items():
                if (
                    inspect.isclass(obj)
                    and issubclass(obj, BaseException)
                    and obj.__module__ == name
                    and not attr.startswith("_")
                ):
                    found.add(f"{name}.{attr}")
    return found


def test_every_exception_is_in_the_one_tree() -> None:
    outside = _defined_exceptions() - SIGNALS
    assert sorted(m for m in outside if not m.startswith("rm_service._exceptions.")) == []


def test_the_docstring_draws_every_exception() -> None:
    doc = tree.__doc__ or ""
    for name in tree.__all__:
        assert f"── {name} " in doc or f"    {name}\n" in doc, name
        assert issubclass(getattr(tree, name), tree.RMServiceError)
    for signal in SIGNALS:
        assert signal.rpartition(".")[2] in doc, signal
