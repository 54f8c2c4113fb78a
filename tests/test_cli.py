"""The ``rm-service`` command line as a first-time user meets it: messages name
the file and its 1-based line once, a failed check leaves nothing behind, the resume bar counts
the whole input, and ``--version``, ``--help`` and ``check FILE.yaml`` do what they say."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli_support import ROOT, RULES, cli, one_error_line, read_jsonl, record, write_jsonl


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(RULES)
    return p


NEEDS_GOLD = """
graders:
  correct: {type: number, mapper: {reference_response: ground_truth}}
aggregators:
  - type: min
    name: reward
"""


def test_failed_first_record_check_names_file_and_line_and_leaves_no_output(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "gold.yaml"
    cfg.write_text(NEEDS_GOLD)
    src = write_jsonl(tmp_path / "in.jsonl", ["", record(1)])  # line 1 is blank
    out = tmp_path / "out.jsonl"
    r = cli("grade", src, "-c", cfg, "-o", out, "--no-progress", cwd=tmp_path)
    assert r.returncode == 1
    err = one_error_line(r.stderr)
    assert "in.jsonl line 2" in err and "ground_truth" in err
    assert not re.search(r"record \d", err)  # not "record 0: grader 'correct': record 0: ..."
    assert not out.exists()  # so the retry is not told "exists; pass --resume"
    write_jsonl(src, ["", record(1, ground_truth="1")])
    again = cli("grade", src, "-c", cfg, "-o", out, "--no-progress", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_output_errors_name_the_input_line_not_the_record_index(tmp_path: Path) -> None:
    cfg = tmp_path / "gold.yaml"
    cfg.write_text(NEEDS_GOLD)
    src = write_jsonl(tmp_path / "in.jsonl", [record(0, ground_truth="0"), "", record(1)])
    out = tmp_path / "out.jsonl"
    assert cli("grade", src, "-c", cfg, "-o", out, cwd=tmp_path).returncode == 0
    row = next(r for r in read_jsonl(out) if r["line"] == 3)
    error = row["errors"]["correct"]["error"]
    assert error.startswith("line 3: ") and "record 1" not in error
    assert "record 1" not in row["errors"]["reward"]["error"]


def test_check_names_the_file_and_line_once(tmp_path: Path) -> None:
    cfg = tmp_path / "gold.yaml"
    cfg.write_text(NEEDS_GOLD)
    src = write_jsonl(tmp_path / "in.jsonl", ["", record(1)])
    err = one_error_line(cli("check", "-c", cfg, src, cwd=tmp_path).stderr)
    assert "in.jsonl line 2" in err and not re.search(r"record \d", err)


def test_resume_on_a_garbled_output_line_names_the_file_and_line(
    tmp_path: Path, rules: Path
) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(4)])
    out = write_jsonl(tmp_path / "out.jsonl", [{"line": 1}, {"line": 2}, "garbage", {"line": 4}])
    before = out.read_bytes()
    r = cli("grade", src, "-c", rules, "-o", out, "--resume", cwd=tmp_path)
    assert r.returncode == 1
    err = one_error_line(r.stderr)
    assert "out.jsonl line 3" in err
    assert out.read_bytes() == before


def test_resume_progress_bar_counts_the_whole_input(tmp_path: Path, rules: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(10)])
    out = tmp_path / "out.jsonl"
    assert cli("grade", src, "-c", rules, "-o", out, cwd=tmp_path).returncode == 0
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:6]))
    r = cli("grade", src, "-c", rules, "-o", out, "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    counts = re.findall(r"(\d+)/(\d+) \[", r.stderr)
    assert counts and counts[-1] == ("10", "10"), r.stderr  # not 4/4: the ETA sees the whole run


def test_empty_input_says_so(tmp_path: Path, rules: Path) -> None:
    src = write_jsonl(tmp_path / "empty.jsonl", ["", "  "])
    out = tmp_path / "out.jsonl"
    r = cli("grade", src, "-c", rules, "-o", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no records in" in r.stderr and "empty.jsonl" in r.stderr
    assert out.exists() and out.read_text() == ""
    again = cli(
        "grade", src, "-c", rules, "-o", out, cwd=tmp_path
    )  # an empty output blocks nothing
    assert again.returncode == 0, again.stderr


def test_printed_summary_uses_fixed_decimals(tmp_path: Path, rules: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [record(1, response="no format")])
    r = cli("grade", src, "-c", rules, "-o", tmp_path / "o.jsonl", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^reward\s+0\.3333 ", r.stdout, re.M), r.stdout  # 0.1 / (0.2 + 0.1)
    assert not re.search(r"\d\.\d{5}", r.stdout), r.stdout


def test_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    r = cli("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"rm-service {version('rm-service')}"


def test_check_takes_a_yaml_positional_as_the_config(tmp_path: Path, rules: Path) -> None:
    r = cli("check", rules, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "config ok" in r.stdout and "'format'" in r.stdout


def test_top_level_help_has_no_rst_markup(tmp_path: Path) -> None:
    r = cli("--help", cwd=tmp_path)
    assert r.returncode == 0 and "rm-service" in r.stdout and "``" not in r.stdout


def test_env_file_is_git_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".env" in ignored
    assert "never" in (ROOT / ".env.example").read_text().lower()  # the promise it keeps


def test_json_dump_of_output_rows_is_plain(tmp_path: Path, rules: Path) -> None:
    """Rows without lone surrogates stay plain UTF-8 (not ``\\u`` escaped)."""
    src = write_jsonl(tmp_path / "in.jsonl", [record(1, id="é")])
    out = tmp_path / "o.jsonl"
    assert cli("grade", src, "-c", rules, "-o", out, cwd=tmp_path).returncode == 0
    assert '"id": "é"' in out.read_text(encoding="utf-8")
    assert json.loads(out.read_text(encoding="utf-8"))["id"] == "é"
