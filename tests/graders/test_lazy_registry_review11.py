"""Review of 5884a21 (lazy built-in graders): what the registry does when a built-in's module is
imported on first use by one thread while another thread names the same type.

Before 5884a21 ``import graders`` imported every grader module under the package's import lock,
so no thread could look a built-in up before its module had finished. Now the registry imports a
module when a config first names one of its types (``Registry._load``), and skips the import when
the name is already registered: a name is registered by its class's ``@grader`` decorator, in the
middle of the module's execution, so a second thread can take a class whose module has not
finished (its later helpers not yet defined).

Each check runs in a fresh interpreter: this test process has imported every grader already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.cli_support import ROOT


def fresh(code: str, timeout: float = 120) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr
    parsed: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return parsed


# Thread A names ``format`` first and so imports graders._format. The hook below holds A just
# after FormatGrader's ``@grader`` has registered ``format`` (module still executing; its helper
# ``_only_for``, defined after the class and called by ``__init__``, not yet), for at most 3 s or
# until B is done. B names ``format`` meanwhile. Python's own import lock would make B wait for
# the module to finish; the registry hands B the class at once. The hook only widens a window
# that exists without it (between a class's registration and the end of its module).
RACE = """
import json, threading
from rm_service._registry import Registry

registered = threading.Event()
b_done = threading.Event()
original = Registry.register

def register(self, name, factory):
    original(self, name, factory)
    if name == "format" and threading.current_thread().name == "A":
        registered.set()
        b_done.wait(3)

Registry.register = register
from graders._base import get_grader

out = {}

def a():
    try:
        out["a"] = type(get_grader("format", mode="think_answer")).__name__
    except Exception as exc:
        out["a"] = f"{type(exc).__name__}: {exc}"

def b():
    registered.wait(5)
    try:
        out["b"] = type(get_grader("format", mode="think_answer")).__name__
    except Exception as exc:
        out["b"] = f"{type(exc).__name__}: {exc}"
    b_done.set()

ta = threading.Thread(target=a, name="A")
tb = threading.Thread(target=b, name="B")
tb.start(); ta.start(); ta.join(); tb.join()
print(json.dumps(out))
"""


def test_a_second_thread_naming_a_builtin_mid_import_gets_a_working_grader() -> None:
    got = fresh(RACE)
    assert got == {"a": "FormatGrader", "b": "FormatGrader"}


POP = """
import json
from graders._base import _REGISTRY, list_graders
from rm_service import ConfigError
popped = _REGISTRY.pop("similarity")
try:
    _REGISTRY.resolve("similarity")
    resolved = True
except ConfigError:
    resolved = False
print(json.dumps({"popped": getattr(popped, "__name__", None), "in": "similarity" in _REGISTRY,
                  "listed": "similarity" in list_graders(), "resolved": resolved}))
"""


def test_pop_unregisters_a_builtin_as_it_did() -> None:
    """``Registry.pop`` ("unregister ``name``") on a built-in whose module is not imported yet:
    before 5884a21 it returned the class and the name was gone; now it returns ``None`` and the
    name still resolves and is still listed (``names()`` lists the whole built-in table)."""
    got = fresh(POP)
    assert got == {"popped": "SimilarityGrader", "in": False, "listed": False, "resolved": False}


POP_AFTER_IMPORT = """
import json
from graders._base import _REGISTRY, list_graders
from graders import SimilarityGrader  # the module is imported: pop really unregisters
_REGISTRY.pop("similarity")
print(json.dumps({"in": "similarity" in _REGISTRY, "listed": "similarity" in list_graders()}))
"""


def test_a_popped_builtin_is_not_listed_as_registered() -> None:
    """After a pop, ``"similarity" in registry`` is False but ``list_graders()`` (and so an
    unknown-type error's "registered: ..." list) still names it."""
    got = fresh(POP_AFTER_IMPORT)
    assert got == {"in": False, "listed": False}
