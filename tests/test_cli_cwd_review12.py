"""Review of d606f3d (the cwd goes LAST on sys.path for a config's import string).

README: "`rm-service` imports `module:attr` from the current directory". Since d606f3d a user's
package in the current directory whose top-level name an installed distribution also uses is
silently replaced by the installed one: verl (an integration this project supports) installs a
top-level ``scripts`` package, so ``type: scripts.my_grader:fn`` beside the config, which
imported at 9a8fcf4, fails with a bare "No module named 'scripts.my_grader'". The docstring of
``_put_cwd_on_path`` says "the error says so"; it does not.

Fix (either passes these tests): import the module a config names from the cwd when its
top-level name is a file or package there (the cwd first for that import only, the library
order kept for everything else); or keep the refusal but have the ConfigError name the
installed module that was found instead (its location).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest

from rm_service._exceptions import ConfigError
from rm_service._importer import import_from_string


def _user_package(cwd: Path, name: str) -> None:
    (cwd / name).mkdir(parents=True)
    (cwd / name / "__init__.py").write_text("")
    (cwd / name / "my_grader_r12.py").write_text(
        "def fn(response: str) -> float:\n    return 1.0\n"
    )


def _check(name: str, installed_at: str) -> None:
    try:
        fn = import_from_string(f"{name}.my_grader_r12:fn", "grader")
    except ConfigError as exc:
        assert installed_at in str(exc), (
            f"the user's {name}/my_grader_r12.py in the cwd is not imported, and the error does "
            f"not say an installed {name!r} ({installed_at}) was found instead: {exc}"
        )
    else:
        assert fn("x") == 1.0


def _clean(name: str) -> None:
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]
    importlib.invalidate_caches()


def test_a_users_package_named_like_an_installed_one_is_imported_or_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "rmpkg_r12").mkdir(parents=True)
    (site / "rmpkg_r12" / "__init__.py").write_text("")  # an installed package of that name
    cwd = tmp_path / "project"
    _user_package(cwd, "rmpkg_r12")
    monkeypatch.chdir(cwd)
    # as the rm-service console script runs: its bin/ first, no '' or cwd on the path
    monkeypatch.setattr(
        sys, "path", [str(site)] + [p for p in sys.path if p not in ("", os.getcwd())]
    )
    _clean("rmpkg_r12")
    try:
        _check("rmpkg_r12", str(site))
    finally:
        _clean("rmpkg_r12")


@pytest.mark.skipif(
    importlib.util.find_spec("scripts") is None, reason="no installed top-level 'scripts' (verl)"
)
def test_a_scripts_package_beside_the_config_with_verl_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.find_spec("scripts")
    assert spec is not None
    installed = str(Path(next(iter(spec.submodule_search_locations or [spec.origin]))).parent)
    _user_package(tmp_path, "scripts")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    saved = {k: v for k, v in sys.modules.items() if k == "scripts" or k.startswith("scripts.")}
    _clean("scripts")
    try:
        _check("scripts", installed)
    finally:
        _clean("scripts")
        sys.modules.update(saved)
