"""Review of 5884a21: a user's own module in the current directory must not shadow a module the
built-in graders import.

``type: mygraders.cites:cites`` puts the current directory first on ``sys.path``
(``rm_service._importer._put_cwd_on_path``, as uvicorn's ``--app-dir``). Before 5884a21 every
grader module, and what each imports (``regex``, ``unicodedata``, ``multiprocessing``, ...), was
imported with ``graders`` before any config was read; now a built-in's module is imported when
the config names it, after the cwd went first on the path, so a user's ``regex.py`` beside their
config replaces the real ``regex`` for ``string_match`` (and the judges' pre-gates).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.cli_support import ROOT

# The console script as a user runs it: the package from the install, not the cwd, on sys.path
# (``python -c`` would put the cwd first itself).
CONSOLE = (
    f"import sys; sys.path[0] = {str(ROOT)!r}; from rm_service.cli import main; sys.exit(main())"
)


def test_a_users_regex_py_does_not_replace_the_regex_package(tmp_path: Path) -> None:
    (tmp_path / "mygraders").mkdir()
    (tmp_path / "mygraders" / "cites.py").write_text(
        "def cites(response: str) -> float:\n    return 1.0\n"
    )
    (tmp_path / "regex.py").write_text('raise ImportError("the user\'s own regex.py")\n')
    (tmp_path / "reward.yaml").write_text(
        'graders:\n  c: {type: "mygraders.cites:cites"}\n  s: {type: string_match}\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", CONSOLE, "check", "-c", "reward.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "config ok" in done.stdout
