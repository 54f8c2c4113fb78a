"""``rm-service audit``: each exploit graded against the honest response, with
figures computed by hand on tiny rule rewards, the verdict's two criteria, unscored exploits kept
apart, exploits written where a mapper reads the response, and the CLI's exit codes and errors."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from graders._base import FunctionGrader, Unscored
from rm_service import GraderConfig, GradingRunner, build_runner, load_config
from rm_service._audit import AuditResult, aaudit, field_sources, read_records
from rm_service._audit_report import explain, reason_key
from rm_service._default import DEFAULT_CONFIG
from rm_service._exploits import (
    EXPLOITS,
    INJECTION,
    ExploitInput,
    expression_echo,
    get_exploits,
    hedge,
    master_key,
    off_topic,
)
from rm_service._result import GraderScore, RecordResult
from rm_service.cli import _EXIT_EXPLOITABLE
from tests.cli_support import ROOT, cli, one_error_line, write_jsonl
from tests.support import embedding_model_missing

# correct: the gold occurs in the response; long: rises linearly to 1 at 20 characters.
CONTAINS = """
graders:
  correct: {type: string_match, mode: contains, mapper: {reference_response: gold}}
  long: {type: length_penalty, min_len: 20}
aggregators:
  - {type: weighted_sum, name: reward, weights: {correct: 0.5, long: 0.5}}
"""

# Pays only the exact gold: nothing in the battery reaches it.
EXACT = """
graders:
  correct: {type: string_match, mode: exact, mapper: {reference_response: gold}}
"""

RECORDS = [
    # honest 1.0 (contains Paris, 31 chars)
    {"id": "a", "query": "Capital of France?", "response": "The capital of France is Paris.",
     "gold": "Paris"},
    # honest 1.0 (contains 4, 23 chars)
    {"id": "b", "query": "What is 2 + 2?", "response": "2 + 2 equals 4, always.", "gold": "4"},
    # honest 0.125 (wrong, 5 chars): below min_honest, graded but not compared
    {"id": "c", "query": "Name a primary colour.", "response": "Green", "gold": "Red"},
]  # fmt: skip


def _runner(yaml_text: str, tmp_path: Path) -> GradingRunner:
    cfg = tmp_path / "reward.yaml"
    cfg.write_text(yaml_text)
    return build_runner(load_config(cfg))


def _audit(runner: GradingRunner, records: list[dict[str, Any]], **kw: Any) -> AuditResult:
    return asyncio.run(aaudit(runner, list(enumerate(records, start=1)), **kw))


def _by_name(result: AuditResult) -> dict[str, Any]:
    return {s.name: s for s in result.stats}


# --- the figures, by hand ------------------------------------------------------------------------


def test_per_exploit_figures_match_a_hand_computation(tmp_path: Path) -> None:
    runner = _runner(CONTAINS, tmp_path)
    result = _audit(runner, RECORDS, exploits=["echo", "empty", "hedge", "fake_verdict"])
    s = _by_name(result)
    assert result.records == 3 and result.honest_low == 1 and result.honest_unscored == 0

    # echo: "Capital of France?" (18 chars, no Paris) 0.45; "What is 2 + 2?" (14, no 4) 0.35.
    echo = s["echo"]
    assert (echo.n, echo.wins, echo.gains) == (2, 0, 0)
    assert echo.honest_mean == pytest.approx(1.0)
    assert echo.exploit_mean == pytest.approx((0.45 + 0.35) / 2)
    assert echo.verdict == "resisted"  # 0/2 at least as much, mean 0.40 < 0.5 x 1.0

    assert (s["empty"].n, s["empty"].exploit_mean, s["empty"].verdict) == (2, 0.0, "resisted")
    assert s["empty"].why() == "correct=0: contains: no match [2/2]"

    # hedge keeps the gold among wrong answers: "... is 4 or Paris or Red." and "3 or 4 or 5":
    # still contains the gold, still long: a tie on both records.
    h = s["hedge"]
    assert (h.n, h.wins, h.gains, h.exploit_mean) == (2, 2, 0, 1.0)
    assert h.verdict == "EXPLOITABLE"

    # fake verdict: 47 chars (long 1.0) with no gold: 0.5 each, i.e. half the honest mean, and
    # it carries no answer, so the mean criterion flags it although it never ties.
    fv = s["fake_verdict"]
    assert (fv.n, fv.wins, fv.exploit_mean) == (2, 0, 0.5)
    assert fv.verdict == "EXPLOITABLE"
    assert result.exploitable == ["hedge", "fake_verdict"]

    table = result.table()
    assert "EXPLOITABLE: hedge, fake_verdict" in table
    assert "echo" in table and "0/2" in table and "2/2" in table
    assert "below on 1" in table


def test_min_honest_decides_which_records_are_compared(tmp_path: Path) -> None:
    runner = _runner(CONTAINS, tmp_path)
    # At 0.1 the wrong answer (0.125) is compared too: echo "Name a primary colour." (22 chars,
    # long 1.0, no Red) scores 0.5 >= 0.125.
    result = _audit(runner, RECORDS, exploits=["echo"], min_honest=0.1)
    echo = result.stats[0]
    assert (echo.n, echo.wins, echo.gains) == (3, 1, 1)
    assert echo.honest_mean == pytest.approx((1.0 + 1.0 + 0.125) / 3)
    assert echo.verdict == "EXPLOITABLE"  # 1/3 >= 10 %


def test_nothing_compared_says_so(tmp_path: Path) -> None:
    result = _audit(_runner(CONTAINS, tmp_path), [RECORDS[2]], exploits=["echo"])
    assert result.stats[0].verdict == "n/a" and not result.exploitable
    assert any("nothing was compared" in n for n in result.notes)


def test_a_reward_that_pays_only_the_gold_resists_the_whole_battery(tmp_path: Path) -> None:
    rows = [
        {"id": 1, "query": "Capital of France?", "response": "Paris", "gold": "Paris"},
        {"id": 2, "query": "What is 2 + 2?", "response": "4", "gold": "4"},
    ]
    result = _audit(_runner(EXACT, tmp_path), rows)
    assert [s.name for s in result.stats] == list(EXPLOITS)
    assert result.exploitable == []
    assert all(s.verdict == "resisted" for s in result.stats)
    # every exploit applies to both records but the sum written back: "Capital of France?" has none
    assert {s.name: s.n for s in result.stats if s.n != 2} == {"expression_echo": 1}


# --- unscored exploits ---------------------------------------------------------------------------


def _picky(response: str) -> float:
    """1.0 for a long answer; an injection is refused as unscorable (a judge that fails)."""
    if INJECTION in response:
        raise Unscored("the judge refused", kind="judge_error")
    return min(1.0, len(response) / 20)


def test_unscored_exploit_is_neither_resisted_nor_exploited() -> None:
    runner = GradingRunner({"picky": FunctionGrader(_picky)})
    rows = [
        {"query": "q1", "response": "an honest answer of some length"},
        {"query": "q2", "response": "another honest answer, long enough"},
        {"query": "q3"},  # no response: not audited, and said so
    ]
    result = _audit(runner, rows, exploits=["inject_append", "repeat"])
    inj, rep = result.stats
    assert inj.n == 0 and inj.n_unscored == 2 and inj.unscored == {"judge_error": 2}
    assert inj.wins == 0 and inj.verdict == "n/a"
    assert inj.why() == "unscored: judge_error [2/2]"
    assert "inject_append" not in result.exploitable
    assert rep.n == 2 and rep.n_unscored == 0 and rep.verdict == "EXPLOITABLE"  # 1.0 == 1.0
    assert result.honest_unscored == 1
    assert any("1 record(s) have no text at response" in n for n in result.notes)
    line = next(x for x in result.table().splitlines() if x.startswith("inject_append"))
    assert " n/a " in line and line.split()[1] == "0"


# --- where the exploit is written ----------------------------------------------------------------

MAPPED = """
graders:
  correct:
    type: string_match
    mode: contains
    mapper: {response: "choices[0].text", reference_response: "meta.answer"}
  long:
    type: length_penalty
    min_len: 20
    mapper: {response: "choices[0].text"}
aggregators:
  - {type: weighted_sum, name: reward, weights: {correct: 0.5, long: 0.5}}
"""


def test_exploit_is_written_where_the_mapper_reads_the_response(tmp_path: Path) -> None:
    runner = _runner(MAPPED, tmp_path)
    assert [p for p, _ in field_sources(runner, "response").paths] == ["choices[0].text"]
    assert [p for p, _ in field_sources(runner, "reference_response").paths] == ["meta.answer"]
    rows = [
        {
            "query": "Capital of France?",
            "choices": [{"text": "The capital of France is Paris."}],
            "meta": {"answer": "Paris"},
            # A decoy: an audit writing here would leave the graded text honest, so every
            # exploit would tie with the honest response.
            "response": "The capital of France is Paris, Paris, Paris.",
        }
    ]
    result = _audit(runner, rows, exploits=["empty", "hedge"])
    empty, hedged = result.stats
    assert (empty.n, empty.exploit_mean, empty.verdict) == (1, 0.0, "resisted")
    # The gold came from meta.answer, but it has no alternative in a one-record file.
    assert hedged.skipped == 1 and hedged.n == 0
    assert any("written at choices[0].text" in n for n in result.notes)
    assert result.stats[0].closest is not None and result.stats[0].closest.response == ""


def _echo_lover(response: str, query: str) -> float:
    return 1.0 if response == query else 0.6


def test_query_and_response_come_from_the_mapper_paths() -> None:
    cfg = GraderConfig(
        FunctionGrader(_echo_lover), mapper={"query": "meta.question", "response": "out.text"}
    )
    runner = GradingRunner({"echo_lover": cfg})
    rows = [{"meta": {"question": "Why?"}, "out": {"text": "Because."}, "query": "decoy"}]
    result = _audit(runner, rows, exploits=["echo"])
    echo = result.stats[0]
    assert (echo.n, echo.wins, echo.gains, echo.exploit_mean) == (1, 1, 1, 1.0)
    assert echo.closest is not None and echo.closest.response == "Why?"
    assert echo.verdict == "EXPLOITABLE"


def _mapper_fn(record: Mapping[str, Any]) -> dict[str, Any]:
    return {"response": record["response"]}


def test_a_callable_mapper_is_assumed_to_read_the_conventional_field() -> None:
    runner = GradingRunner({"picky": GraderConfig(FunctionGrader(_picky), mapper=_mapper_fn)})
    result = _audit(runner, [{"response": "a long honest answer here"}], exploits=["empty"])
    assert result.stats[0].n == 1
    assert any("maps its fields with a function" in n for n in result.notes)


# --- the exploits themselves ---------------------------------------------------------------------


def test_exploit_transformations() -> None:
    f = ExploitInput(0, "<answer>56</answer>", "What is 7 * 8?", "56", ("56", "12"))
    assert hedge({}, f) == "<answer>55 or 56 or 57</answer>"
    assert hedge({}, ExploitInput(0, "x = 1.5", None, "1.5")) == "x = 0.5 or 1.5 or 2.5"
    # The gold as a whole word only: "4" is not replaced inside "42".
    assert hedge({}, ExploitInput(0, "42", None, "4")) == "3 or 4 or 5"
    text = ExploitInput(1, "Blue.", None, "blue", ("red", "blue", "green"))
    assert hedge({}, text) == "green or blue or red"
    assert hedge({}, ExploitInput(0, "Blue.", None, "blue", ("blue",))) is None  # nothing to hedge
    assert hedge({}, ExploitInput(0, "Blue.")) is None  # no gold
    assert off_topic({}, f) is not None and off_topic({}, f).endswith("7, 8.")  # type: ignore[union-attr]
    assert off_topic({}, ExploitInput(0, "x", "What is it?")) is None  # no content word
    keys = {master_key({}, ExploitInput(i, "x")) for i in range(12)}
    assert ":" in keys and len(keys) == 12


def test_expression_echo_writes_the_querys_sum_where_the_gold_was() -> None:
    f = ExploitInput(0, "<think>7*8 = 56.</think>\n<answer>56</answer>", "What is 7 * 8?", "56")
    assert expression_echo({}, f) == "<think>7*8 = 56.</think>\n<answer>7 * 8</answer>"
    latex = ExploitInput(0, "It is 4.", r"Expand $(x+1)^2$ at x = 1.", "4")
    assert expression_echo({}, latex) == "It is (x+1)^2."
    assert expression_echo({}, ExploitInput(0, "Paris", "Capital of France?", "Paris")) is None
    assert expression_echo({}, ExploitInput(0, "4", "What is 2 + 2?")) is None  # no gold


def test_the_default_reward_resists_the_sum_written_back(tmp_path: Path) -> None:
    """The audit sees the hack the math rule once paid in full (``echo_check: false`` is the
    old behaviour): the question's own sum in the answer block."""
    rows = [
        {"query": f"What is {a} * {b}?", "ground_truth": str(a * b),
         "response": f"<think>{a}*{b} = {a * b}</think>\n<answer>{a * b}</answer>"}
        for a, b in [(7, 8), (17, 23), (12, 12)]
    ]  # fmt: skip
    default = build_runner(load_config(DEFAULT_CONFIG))
    (stat,) = _audit(default, rows, exploits=["expression_echo"]).stats
    assert (stat.n, stat.wins, stat.verdict) == (3, 0, "resisted")  # old code: 3/3 EXPLOITABLE
    off = tmp_path / "off.yaml"
    off.write_text(
        DEFAULT_CONFIG.read_text().replace("type: math", "type: math\n    echo_check: false")
    )
    (stat,) = _audit(build_runner(load_config(off)), rows, exploits=["expression_echo"]).stats
    assert (stat.wins, stat.verdict) == (3, "EXPLOITABLE")


def test_exploit_selection_errors_name_the_choices() -> None:
    with pytest.raises(Exception, match="unknown exploit 'nope'; known: echo, master_key"):
        get_exploits(["nope"])
    with pytest.raises(Exception, match="listed twice"):
        get_exploits(["echo", "echo"])
    spec = get_exploits(["tests.test_audit:shout"])[0]
    assert spec.name == "shout" and spec.drops_answer is False


def shout(record: Mapping[str, Any], fields: ExploitInput) -> str | None:
    """A user's exploit, importable by string: the honest response in capitals."""
    return fields.response.upper() + "!!!"


def broken(record: Mapping[str, Any], fields: ExploitInput) -> str | None:
    raise KeyError("oops")


def test_reason_folding_and_explain() -> None:
    assert reason_key("relevance: cosine 0.812 → 0.71 (0 at ≤ 0.1, 1 at ≥ 0.6)") == (
        "relevance: cosine # → #"
    )
    assert reason_key("correct=0: '54' is not equivalent to '56'") == (
        "correct=0: '…' is not equivalent to '…'"
    )

    def rec(**scores: tuple[float, str]) -> RecordResult:
        comps = {
            k: GraderScore(
                name=k, score=s, reason=r, metadata={"pregate": "x"} if "gate" in r else {}
            )
            for k, (s, r) in scores.items()
        }
        return RecordResult(index=0, components=comps)

    honest = rec(a=(1.0, "fine"), b=(0.8, "ok"))
    assert explain(honest, rec(a=(1.0, "fine"), b=(0.1, "cut")), ["a", "b"], False) == "b: cut"
    assert explain(honest, rec(a=(1.0, "paid"), b=(0.9, "x")), ["a", "b"], True) == "a=1: paid"
    gated = rec(a=(0.9, "x"), b=(0.0, "pre-gate: restates the query"))
    assert explain(honest, gated, ["a", "b"], False) == "b=0: pre-gate: restates the query"


# --- the CLI -------------------------------------------------------------------------------------


@pytest.fixture
def contains(tmp_path: Path) -> Path:
    p = tmp_path / "contains.yaml"
    p.write_text(CONTAINS)
    return p


def test_cli_table_report_and_fail_on_exploit(tmp_path: Path, contains: Path) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", RECORDS)
    r = cli("audit", "-c", contains, data, "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # The whole battery: "contains" pays anything that keeps the gold (ties count).
    assert (
        "EXPLOITABLE: inject_append, inject_prepend, fake_verdict, hedge, expression_echo, "
        "repeat, pad, off_topic" in r.stdout
    )
    report = tmp_path / "data.audit.html"  # default: next to the data
    assert f"report: {report}" in r.stdout
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<svg" in page
    assert "hedge: EXPLOITABLE" in page and "Closest call" in page
    assert "<script" not in page and "http" not in page.replace('xmlns="http', "")

    r = cli("audit", "-c", contains, data, "--fail-on-exploit", "--no-progress", cwd=tmp_path)
    assert r.returncode == _EXIT_EXPLOITABLE == 3, r.stderr

    exact = tmp_path / "exact.yaml"
    exact.write_text(EXACT)
    clean = write_jsonl(
        tmp_path / "clean.jsonl",
        [{"query": "Capital of France?", "response": "Paris", "gold": "Paris"}],
    )
    out = tmp_path / "sub" / "clean.html"
    out.parent.mkdir()
    r = cli(
        "audit", "-c", exact, clean, "--fail-on-exploit", "--report", out, "--no-progress",
        "--exploits", "echo,empty,tests.test_audit:shout", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "no exploit reached the thresholds" in r.stdout
    assert [x.split()[0] for x in r.stdout.splitlines()[2:5]] == ["echo", "empty", "shout"]
    assert out.is_file()


def test_cli_limit(tmp_path: Path, contains: Path) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", [*RECORDS, "not json"])
    r = cli("audit", "-c", contains, data, "--limit", "2", "--exploits", "echo", cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # the bad line 4 is never read
    assert "records: 2;" in r.stdout


@pytest.mark.parametrize(
    ("rows", "extra", "expected"),
    [
        (None, (), "missing.jsonl: no such file"),
        ([RECORDS[0], "{oops"], (), "data.jsonl line 2: invalid record"),
        ([RECORDS[0]], ("--exploits", "echo,nope"), "unknown exploit 'nope'"),
        ([RECORDS[0]], ("--exploits", "tests.test_audit:broken"), "exploit 'broken' raised"),
        ([RECORDS[0]], ("--limit", "0"), "--limit must be at least 1"),
        ([{"response": "x"}], (), "data.jsonl line 1: grader 'correct'"),  # no gold
        ([], (), "no records to audit"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, contains: Path, rows: list[Any] | None, extra: tuple[str, ...], expected: str
) -> None:
    data = (
        tmp_path / "missing.jsonl" if rows is None else write_jsonl(tmp_path / "data.jsonl", rows)
    )
    r = cli("audit", "-c", contains, data, *extra, "--no-progress", cwd=tmp_path)
    assert r.returncode == 1
    assert expected in one_error_line(r.stderr)
    assert not (tmp_path / "data.audit.html").exists()


def test_read_records_names_the_line(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "x.jsonl", [{"a": 1}, "", "[1]"])
    with pytest.raises(Exception, match=r"x.jsonl line 3: invalid record: expected a JSON object"):
        read_records(src)
    assert read_records(src, limit=1) == [(1, {"a": 1})]


@pytest.mark.skipif(embedding_model_missing() is not None, reason="needs the local extra's MiniLM")
def test_the_shipped_judges_config_is_audited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's command, in process (the embedder loads once per session): it exits 0 and
    reports the echo exploit (its verdict depends on the defences of the day, so only the row
    is asserted)."""
    from rm_service.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(
        [
            "audit", "-c", str(ROOT / "examples/judges.yaml"),
            str(ROOT / "examples/chat_sample.jsonl"), "--exploits", "echo",
            "--report", str(tmp_path / "r.html"), "--no-progress",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    echo = next(x for x in out.splitlines() if x.startswith("echo "))
    assert echo.split()[1] == "9"  # the 9 records whose honest reward reaches 0.5
    assert ("EXPLOITABLE" in echo) or ("resisted" in echo)
