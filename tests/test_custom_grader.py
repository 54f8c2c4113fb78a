"""The README's custom grader, as a user writes it: a file in the current directory, named in a
YAML config by ``module:attr``, with a parameter set from the YAML."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graders import FunctionGrader, get_grader, grader, list_graders
from graders._base import _REGISTRY
from rm_service import ConfigError, GraderError, GraderScore

README = Path(__file__).resolve().parents[1] / "README.md"
RM_SERVICE = Path(sys.executable).with_name("rm-service")  # the console script a user runs

# Of the context's six words, the response reuses two ("tower", "in"). Its own min_overlap key
# must not change the config's parameter.
RECORD = {
    "id": "r1",
    "response": "A tower in fog.",
    "context": "The Eiffel tower stands in Paris",
    "min_overlap": 1,
}


def readme_snippet(needle: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    found = [b for b in blocks if needle in b]
    assert len(found) == 1, f"expected one README snippet with {needle!r}, found {len(found)}"
    return found[0]


@pytest.fixture(autouse=True)
def _forget_test_graders() -> Iterator[None]:
    """Graders these tests define leave the process-wide registry as they found it, so a later
    test that lists the registered graders sees the built-ins only."""
    before = set(list_graders())
    yield
    for name in set(list_graders()) - before:
        _REGISTRY.pop(name)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's directory: ``mygraders/cites.py`` (the README's snippet, verbatim) and data."""
    (tmp_path / "mygraders").mkdir()
    (tmp_path / "mygraders" / "cites.py").write_text(readme_snippet("def cites_context("))
    (tmp_path / "data.jsonl").write_text(json.dumps(RECORD) + "\n")
    return tmp_path


def rm_service(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``rm-service ARGS`` as a user runs it: the console script, in ``cwd``, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env = {k: v for k, v in env.items() if not k.startswith("RM_SERVICE_")}
    return subprocess.run(
        [str(RM_SERVICE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def write_config(project: Path, **params: Any) -> Path:
    spec = {"type": "mygraders.cites:cites_context", **params}
    path = project / "reward.yaml"
    path.write_text(json.dumps({"graders": {"cites": spec}}))  # JSON is YAML
    return path


def test_readme_grader_takes_a_yaml_param_from_the_cli(project: Path) -> None:
    write_config(project, min_overlap=4)
    checked = rm_service("check", "-c", "reward.yaml", "data.jsonl", cwd=project)
    assert checked.returncode == 0, checked.stderr
    graded = rm_service(
        "grade", "data.jsonl", "-c", "reward.yaml", "-o", "out.jsonl", "--no-progress", cwd=project
    )
    assert graded.returncode == 0, graded.stderr
    (out,) = [json.loads(line) for line in (project / "out.jsonl").read_text().splitlines()]
    # 2 hits over the config's min_overlap of 4 (2/5 with the default, 1.0 with the record's).
    assert out["reward"] == pytest.approx(0.5), out


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"min_overlap": "four"}, r"min_overlap.*int"),
        ({"min_overlap": True}, r"min_overlap.*int"),
        (
            {"min_ovrlap": 4},
            r"min_ovrlap: .*min_overlap: int = 5",
        ),  # unknown: the message lists the real ones
        ({"response": "fixed"}, r"response: a record field"),
    ],
)
def test_bad_yaml_params_are_config_errors_naming_file_and_field(
    project: Path, params: dict[str, Any], message: str
) -> None:
    write_config(project, **params)
    checked = rm_service("check", "-c", "reward.yaml", cwd=project)
    assert checked.returncode == 1, checked.stderr
    assert "Traceback" not in checked.stderr
    assert re.search(
        rf"^rm-service: error: reward\.yaml: graders\.cites: {message}", checked.stderr
    )


async def test_a_bound_param_is_not_read_from_the_record() -> None:
    @grader(name="overlap_probe")
    def probe(response: str, min_overlap: int = 5, label: str = "x") -> tuple[float, str]:
        return 1.0, f"{min_overlap} {label}"

    built = get_grader("overlap_probe", min_overlap=2)
    assert isinstance(built, FunctionGrader)
    assert built.required_fields == ("response",)
    assert built.optional_fields == ("label",)  # min_overlap is a param now, not a field
    got = await built.aevaluate(response="r", min_overlap=9, label="y")
    assert isinstance(got, GraderScore)
    assert got.reason == "2 y"
    # The decorated function itself is unchanged: still 5, still read from the record.
    assert probe.optional_fields == ("min_overlap", "label")


async def test_params_bind_on_a_plain_function_named_by_import_string() -> None:
    built = get_grader("tests.test_custom_grader:plain_len", cap="10")
    got = await built.aevaluate(response="12345", cap=1)
    assert isinstance(got, GraderScore)
    assert got.score == 0.5  # cap came from the config (coerced to int), not the record
    with pytest.raises(ConfigError, match=r"capp: plain_len\(\) has no such parameter"):
        get_grader("tests.test_custom_grader:plain_len", capp=10)


def plain_len(response: str, cap: int = 20) -> float:
    return min(1.0, len(response) / cap)


def test_running_a_grader_cell_again_redefines_it() -> None:
    """A notebook cell (or an ``importlib.reload``) that defines a ``@grader`` again replaces
    it; another function that takes a registered name is still refused."""
    code = "@grader\ndef cell_probe(response: str, k: int = 1) -> float:\n    return {score}\n"
    scope: dict[str, Any] = {"grader": grader, "__name__": "notebook_cell"}
    exec(code.format(score=0.25), scope)
    exec(code.format(score=0.75), scope)  # the same cell, edited and run again
    assert get_grader("cell_probe", k=2).func(response="r") == 0.75
    with pytest.raises(ConfigError, match="'cell_probe' is already registered"):
        exec(code.format(score=0.5), {"grader": grader, "__name__": "other_module"})


async def test_a_numpy_score_from_a_function_is_a_score() -> None:
    """``np.float32(0.5)`` was refused as "not a score in [0, 1]" (internal), though it is one;
    an array is still no score."""
    import numpy as np

    from graders._base import FunctionGrader

    half = FunctionGrader(lambda response: np.float32(0.5), name="half")
    result = await half.aevaluate(response="x")
    assert isinstance(result, GraderScore) and result.score == 0.5
    assert isinstance(result.score, float) and type(result.score) is float
    yes = await FunctionGrader(lambda response: np.bool_(True), name="yes").aevaluate(response="x")
    assert isinstance(yes, GraderScore) and yes.score == 1.0
    many = await FunctionGrader(lambda response: np.array([0.5]), name="many").aevaluate(
        response="x"
    )
    assert isinstance(many, GraderError) and many.kind == "internal"
