"""The README's Python API snippet, saved as a file and run as a script, runs once.

The math grader's worker processes must not import the caller's ``__main__``: a user's script
without an ``if __name__ == "__main__":`` guard used to run once per worker (and fail in each
with multiprocessing's ``freeze_support()`` error).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "SNIPPET-RAN"
# Printed once per run of the script's top level, with the reward of the README's one record.
REPORT = f'print("{MARKER}", getattr(results["reward"][0], "score", None))\n'


def readme_snippet(needle: str) -> str:
    """The README's ```python block that contains ``needle``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    found = [b for b in blocks if needle in b]
    assert len(found) == 1, f"expected one README snippet with {needle!r}, found {len(found)}"
    return found[0]


def run_script(
    args: list[str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_ran_once(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr
    assert "freeze_support" not in proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    # Once, and right: the response is correct (0.8) and well formatted (0.2).
    assert lines == [f"{MARKER} 1.0"], proc.stdout + proc.stderr


@pytest.mark.parametrize("guarded", [False, True], ids=["unguarded", "guarded"])
def test_readme_python_snippet_runs_once_as_a_script(tmp_path: Path, guarded: bool) -> None:
    code = readme_snippet("runner = GradingRunner(") + REPORT
    if guarded:
        body = "".join(f"    {line}\n" for line in code.splitlines())
        code = f'def main() -> None:\n{body}\n\nif __name__ == "__main__":\n    main()\n'
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    assert_ran_once(run_script([str(script)], tmp_path))


def test_snippet_from_an_interactive_main_without_a_file(tmp_path: Path) -> None:
    """As in a notebook or ``python -``: ``__main__`` has no importable source."""
    code = readme_snippet("runner = GradingRunner(") + REPORT
    assert_ran_once(run_script(["-"], tmp_path, stdin=code))
