"""``graders`` imports a grader's module when it is first used, not every module up front.

Each check runs in a fresh interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.cli_support import ROOT

JUDGE_MODULES = ("graders._judge", "graders._judges", "graders._pregate", "graders._inject_gate")


def fresh(code: str) -> dict[str, object]:
    """Run ``code`` in a new interpreter; it prints one JSON object as its last line."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    parsed: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return parsed


def test_a_math_grader_by_name_or_attribute_imports_no_judge() -> None:
    got = fresh(
        f"""
        import json, sys
        import graders
        from graders import MathGrader, get_grader
        g = get_grader("math")
        print(json.dumps({{"type": type(g).__name__, "is_math": isinstance(g, MathGrader),
                          "loaded": [m for m in {JUDGE_MODULES!r} if m in sys.modules]}}))
        """
    )
    assert got == {"type": "MathGrader", "is_math": True, "loaded": []}


def test_a_math_worker_imports_no_judge() -> None:
    """What a math pool worker imports before it says it is ready (its bootstrap's import)."""
    got = fresh(
        f"""
        import json, sys
        from graders._math_worker import worker_main
        print(json.dumps({{"loaded": [m for m in {JUDGE_MODULES!r} if m in sys.modules]}}))
        """
    )
    assert got == {"loaded": []}


def test_the_builtin_table_is_what_the_modules_register() -> None:
    """``BUILTIN_GRADERS`` against the registry after every grader module is imported: the same
    names, each registered by the module the table names."""
    got = fresh(
        """
        import importlib, json, pkgutil
        import graders
        from graders._base import _REGISTRY
        from graders._builtins import BUILTIN_GRADERS
        for info in pkgutil.iter_modules(graders.__path__):
            importlib.import_module(f"graders.{info.name}")
        registered = {n: getattr(getattr(f, "_registered_target", f), "__module__", None)
                      for n, f in _REGISTRY._factories.items()}
        print(json.dumps({"registered": registered, "table": BUILTIN_GRADERS}))
        """
    )
    assert got["registered"] == got["table"]


def test_names_resolve_before_their_modules_are_imported() -> None:
    got = fresh(
        """
        import json, sys
        from graders import get_grader, grader_factory, list_graders
        names = list_graders()
        before = "graders._judges" in sys.modules
        from rm_service.models import OpenAIChatModel
        judge = OpenAIChatModel(model="m", base_url="http://127.0.0.1:9/v1", api_key="k")
        g = get_grader("relevance", model=judge, cross_check="off")
        print(json.dumps({"names": names, "before": before, "built": type(g).__name__,
                          "factory": grader_factory("string_match").__name__}))
        """
    )
    assert {"relevance", "math", "committee", "valid_tool_calls"} <= set(got["names"])  # type: ignore[arg-type]
    assert got["before"] is False
    assert got["built"] == "RelevanceGrader"
    assert got["factory"] == "StringMatchGrader"


def test_a_users_grader_under_a_builtin_name_is_still_refused() -> None:
    """Registering ``relevance`` before its module is imported meets the built-in one, and is
    refused as it was when every module was imported up front."""
    got = fresh(
        """
        import json
        from graders import grader
        from rm_service import ConfigError
        try:
            @grader(name="relevance")
            def mine(response: str) -> float:
                return 1.0
        except ConfigError as exc:
            print(json.dumps({"refused": str(exc)}))
        else:
            print(json.dumps({"refused": None}))
        """
    )
    assert "already registered" in str(got["refused"])
    assert "graders._judges.RelevanceGrader" in str(got["refused"])


def test_star_import_and_dir_list_every_public_name() -> None:
    got = fresh(
        """
        import json
        import graders
        ns = {}
        exec("from graders import *", ns)
        star = sorted(k for k in ns if not k.startswith("__"))
        print(json.dumps({"all": sorted(graders.__all__), "star": star,
                          "in_dir": all(n in dir(graders) for n in graders.__all__)}))
        """
    )
    assert got["star"] == got["all"]
    assert got["in_dir"] is True
