"""Regressions of c76712b, 541a368 and 1af06be (review).

* 541a368 read the answer's unit as that of the number math-verify reads, but the gold's stayed
  its first unit: the gold written out again ("3 hours 20 minutes", "5 km = 5000 m", "5 feet 3
  inches") scored 0, "the units differ: h and min". Both sides are read one way now.
* A unit math-verify keeps as letters ("2 L" read as ``2*l``, "12 in" as ``12*i*n``) gave no
  number to match, so the answer's unit fell back to its first one: "2000 mL = 2 L" scored 0
  against a gold of ``2 L`` (1.0 before c76712b). The number of such a product is read.
* 1af06be refused a report its folder would not let it create even where the report exists and
  may be written over in place (``--report /dev/null`` for a user other than root, a file made
  for it in a shared folder): that run worked before.
* 1af06be grades no exploit when no honest response can be compared, but the progress bar's
  total still counted them: it stopped at ``3/33`` (9 %) beside the error.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from graders._base import FunctionGrader, Unscored
from graders._math import MathGrader
from graders._math_worker import check_equivalence, check_golds
from rm_service import GraderScore, GradingRunner
from rm_service._audit import aaudit
from rm_service._exceptions import InputError
from rm_service._run_files import writable_report

# --- the gold's unit is read as the answer's ----------------------------------------------------

GOLD_WRITTEN_AGAIN = [
    ("3 hours 20 minutes", "<answer>3 hours 20 minutes</answer>"),
    ("2 hours and 30 minutes", "<answer>2 hours and 30 minutes</answer>"),
    ("5 feet 3 inches", "<answer>5 feet 3 inches</answer>"),
    ("5 km = 5000 m", "<answer>5 km = 5000 m</answer>"),
    ("2 kg = 2000 g", "\\boxed{2 kg = 2000 g}"),
    ("500 cm = 5 m", "The answer is \\boxed{500 cm = 5 m}."),
]


@pytest.mark.parametrize(("gold", "response"), GOLD_WRITTEN_AGAIN)
def test_the_gold_written_out_again_scores_1(gold: str, response: str) -> None:
    assert check_equivalence(gold, response)["status"] == "equal", check_equivalence(gold, response)
    assert check_golds([gold], response, 5.0)["status"] == "equal"


@pytest.mark.parametrize(
    ("gold", "response"),
    [
        ("5 feet 3 inches", "<answer>3 hours</answer>"),
        ("3 hours 20 minutes", "<answer>3 years</answer>"),
        ("5 km = 5000 m", "<answer>5000 g</answer>"),
    ],
)
def test_a_wrong_unit_against_a_gold_in_two_units_still_scores_0(gold: str, response: str) -> None:
    assert check_equivalence(gold, response)["status"] == "not_equal"
    assert check_golds([gold], response, 5.0)["status"] == "not_equal"


# --- a unit math-verify keeps as letters ----------------------------------------------------------


@pytest.mark.parametrize(
    ("gold", "response"),
    [
        ("2 L", "<answer>2000 mL = 2 L</answer>"),
        ("2000 mL", "<answer>2 L = 2000 mL</answer>"),
        ("12 in", "<answer>1 ft = 12 in</answer>"),
        ("12 in", "\\boxed{1 ft = 12 in}"),
    ],
)
def test_a_unit_read_as_letters_is_that_of_its_number(gold: str, response: str) -> None:
    assert check_equivalence(gold, response)["status"] == "equal"
    assert check_golds([gold], response, 5.0)["status"] == "equal"


def test_a_wrong_unit_read_as_letters_still_scores_0() -> None:
    assert check_equivalence("12 in", "<answer>1 m = 12 ft</answer>")["status"] == "not_equal"
    assert check_equivalence("2 L", "<answer>2000 g = 2 kg</answer>")["status"] == "not_equal"


async def test_the_math_grader_scores_a_gold_in_two_units_written_again_1() -> None:
    """Through the grader: its shared check's key and a worker."""
    grader = MathGrader()
    for gold, response in [*GOLD_WRITTEN_AGAIN, ("2 L", "<answer>2000 mL = 2 L</answer>")]:
        result = await grader.aevaluate(response=response, reference_response=gold)
        assert isinstance(result, GraderScore) and result.score == 1.0, (gold, result)


# --- audit: the report path and the progress bar --------------------------------------------------


def test_a_report_that_exists_needs_its_own_permission_not_its_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a user other than root: /dev is not writable, /dev/null is; the folder of a report made
    for the run may be read-only. Tests run as root, where os.access grants everything."""
    folder = tmp_path / "shared"
    folder.mkdir()
    made = folder / "report.html"
    made.write_text("")
    real = os.access

    def access(path: str | os.PathLike[str], mode: int) -> bool:
        return False if Path(path) == folder else real(path, mode)

    monkeypatch.setattr(os, "access", access)
    writable_report(made)  # written over in place
    with pytest.raises(InputError, match="permission denied"):
        writable_report(folder / "new.html")  # would be created in the folder


def test_an_audit_that_grades_no_exploit_ends_its_progress(tmp_path: Path) -> None:
    def down(response: str) -> float:
        raise Unscored("judge failed: connection refused", kind="judge_error")

    rows = [
        {"id": i, "query": f"What is {i} + {i}?", "response": f"It is {2 * i}."} for i in range(3)
    ]
    calls: list[tuple[int, int]] = []
    result = asyncio.run(
        aaudit(
            GradingRunner({"judge": FunctionGrader(down)}),
            list(enumerate(rows, start=1)),
            progress=lambda done, total: calls.append((done, total)),
        )
    )
    assert not result.measured
    assert calls[-1] == (3, 3), calls
