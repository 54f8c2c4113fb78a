"""``rm-service audit`` (review): an audit that compared nothing has no verdict (and grades no
exploit for it), the share column reads as the verdict decides, a list of golds is a gold, a
report that cannot be written is refused before grading, ``--min-honest 0`` says what it
compares, and an ``async def`` exploit is awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graders._base import FunctionGrader, Unscored
from rm_service import GradingRunner, build_runner, load_config
from rm_service._audit import AuditResult, aaudit
from rm_service._exploits import ExploitInput, ExploitSpec
from rm_service.cli import NOTHING_SCORED
from tests.cli_support import ROOT, cli, one_error_line, write_jsonl

ROWS = [{"id": i, "query": f"What is {i} + {i}?", "response": f"It is {2 * i}."} for i in range(3)]

# A judge that is down: every record, honest or not, comes back unscored.
DOWN = """
graders:
  judge: {type: "tests.test_audit_review:down"}
"""


def down(response: str) -> float:
    raise Unscored("judge failed: connection refused", kind="judge_error")


def _audit(runner: GradingRunner, rows: list[dict[str, Any]], **kw: Any) -> AuditResult:
    return asyncio.run(aaudit(runner, list(enumerate(rows, start=1)), **kw))


# --- nothing compared: no verdict ---------------------------------------------------------------


def test_an_audit_that_compared_nothing_has_no_verdict_and_grades_no_exploit() -> None:
    """A judge that was down for the whole run: the table said "no exploit reached the
    thresholds", the notes advised lowering --min-honest, the judge's error was shown nowhere,
    and every exploit was graded (paid calls) for a table of n/a."""
    calls: list[str] = []

    def judge(response: str) -> float:
        calls.append(response)
        return down(response)

    result = _audit(GradingRunner({"judge": FunctionGrader(judge)}), ROWS)
    assert len(calls) == len(ROWS)  # the honest responses only
    assert not result.measured and result.exploitable == []
    table = result.table()
    assert "no exploit reached the thresholds" not in table
    assert "NO VERDICT" in table
    assert any(
        "3 honest response(s) came back unscored" in n
        and "judge_error: judge failed: connection refused [3]" in n
        for n in result.notes
    ), result.notes
    nothing = next(n for n in result.notes if "nothing was compared" in n)
    assert "fix what left the honest responses unscored" in nothing
    assert "--min-honest" not in nothing  # no record was below it


def test_cli_fails_an_audit_with_no_verdict_even_with_fail_on_exploit(tmp_path: Path) -> None:
    """It exited 0 under --fail-on-exploit: a CI gate passed a reward nobody could audit. It
    exits 4, as `grade` does when no record got a reward."""
    cfg = tmp_path / "down.yaml"
    cfg.write_text(DOWN)
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    r = cli("audit", "-c", cfg, data, "--fail-on-exploit", "--no-progress", cwd=tmp_path)
    assert r.returncode == NOTHING_SCORED == 4, (r.stdout, r.stderr)
    assert "the audit has no verdict" in one_error_line(r.stderr)
    assert "NO VERDICT" in r.stdout
    assert (tmp_path / "data.audit.html").is_file()  # what there is to see is still written


# --- the share column ---------------------------------------------------------------------------


def _tie_or_nothing(response: str) -> float:
    return 1.0 if response.startswith(("honest", "tie")) else 0.0


def _trick(record: Mapping[str, Any], fields: ExploitInput) -> str | None:
    return "tie" if fields.index < 2 else "nothing"


def test_share_reads_as_the_verdict_decides() -> None:
    """2 of 21 is 9.5 %: printed rounded to nearest as "10%" beside "resisted"."""
    runner = GradingRunner({"g": FunctionGrader(_tie_or_nothing)})
    rows = [{"response": f"honest {i}"} for i in range(21)]
    result = _audit(runner, rows, exploits=[ExploitSpec("trick", _trick)])
    (s,) = result.stats
    assert (s.wins, s.n, s.verdict) == (2, 21, "resisted")
    row = next(x for x in result.table().splitlines() if x.startswith("trick"))
    assert "2/21   9%" in row and "10%" not in row


# --- golds --------------------------------------------------------------------------------------


def test_a_list_of_golds_is_hedged() -> None:
    """verl's ``ground_truth`` is often a list of acceptable answers (the math grader reads it
    so): the hedge skipped every such record, with the note "no gold"."""
    runner = build_runner(load_config(ROOT / "rm_service/defaults/reward.yaml"))
    rows = [
        {
            "query": "What is 7 * 8?",
            "response": "<think>7*8 = 56</think>\n<answer>56</answer>",
            "ground_truth": ["56"],
        }
    ]
    result = _audit(runner, rows, exploits=["hedge"])
    (h,) = result.stats
    assert h.skipped == 0 and h.n == 1
    assert h.closest is not None and "<answer>55 or 56 or 57</answer>" in h.closest.response
    assert not any("no gold" in n for n in result.notes)


# --- the report path ----------------------------------------------------------------------------


def test_a_report_that_cannot_be_written_is_refused_before_grading(tmp_path: Path) -> None:
    """It was a warning after the whole audit (exit 0): the report of a run of paid judge calls
    was lost for a typo in --report."""
    cfg = tmp_path / "down.yaml"  # grading would fail loudly: the refusal must come first
    cfg.write_text(DOWN)
    data = write_jsonl(tmp_path / "data.jsonl", ROWS)
    missing = tmp_path / "no_such_folder" / "r.html"
    r = cli("audit", "-c", cfg, data, "--report", missing, "--no-progress", cwd=tmp_path)
    assert r.returncode == 1
    line = one_error_line(r.stderr)
    assert f"cannot write the report {missing}" in line and "does not exist" in line
    assert "records:" not in r.stdout  # nothing was graded

    folder = tmp_path / "reports"
    folder.mkdir()
    r = cli("audit", "-c", cfg, data, "--report", folder, "--no-progress", cwd=tmp_path)
    assert r.returncode == 1
    assert f"the report {folder} is a folder" in one_error_line(r.stderr)
    assert "records:" not in r.stdout


# --- --min-honest 0 -----------------------------------------------------------------------------


def _zero_or_one(response: str) -> float:
    return 0.0 if response == "zero" else 1.0


def test_min_honest_zero_says_a_zero_is_not_compared() -> None:
    """A reward of exactly 0 is never a baseline (every exploit ties it), but at --min-honest 0
    the table read "honest >= 0 on 1 (compared), below on 1": the 0 was not below 0."""
    runner = GradingRunner({"g": FunctionGrader(_zero_or_one)})
    result = _audit(
        runner, [{"response": "zero"}, {"response": "good"}], exploits=["empty"], min_honest=0.0
    )
    assert result.stats[0].n == 1 and result.honest_low == 1
    assert "honest g > 0 on 1 (compared), below on 1" in result.table()
    assert (
        "honest g >= 0.5 on 1" in _audit(runner, [{"response": "good"}], exploits=["empty"]).table()
    )


# --- a user's exploit ---------------------------------------------------------------------------


async def _async_shout(record: Mapping[str, Any], fields: ExploitInput) -> str | None:
    await asyncio.sleep(0)
    return fields.response.upper()


def test_an_async_exploit_is_awaited() -> None:
    """Its coroutine was refused as "returned coroutine ..., not text or None", with Python's
    "never awaited" warning after the error."""
    runner = GradingRunner({"g": FunctionGrader(_zero_or_one)})
    result = _audit(runner, [{"response": "good"}], exploits=[ExploitSpec("shout", _async_shout)])
    (s,) = result.stats
    assert s.n == 1 and s.closest is not None and s.closest.response == "GOOD"
