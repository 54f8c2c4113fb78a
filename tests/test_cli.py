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


def test_a_bad_first_line_does_not_claim_an_output_was_saved(tmp_path: Path, rules: Path) -> None:
    """It said "Records graded so far are saved in OUT" of a file never created."""
    src = tmp_path / "in.jsonl"
    src.write_text("{oops\n" + json.dumps(record(1)) + "\n")
    out = tmp_path / "out.jsonl"
    r = cli("grade", src, "-c", rules, "-o", out, "--no-progress", cwd=tmp_path)
    assert r.returncode == 1
    err = one_error_line(r.stderr)
    assert "in.jsonl line 1" in err and "Nothing was graded and no output was written" in err
    assert "saved in" not in err and not out.exists()


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


# --- found by the CLI review ----------------------------------------------------------------------


def _main(*args: str | Path) -> int:
    from rm_service.cli import main

    return main([str(a) for a in args])


def test_a_bad_max_concurrency_variable_is_named_not_a_traceback(
    tmp_path: Path, rules: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``RM_SERVICE_MAX_CONCURRENCY=abc`` was parsed while the parser was built: a traceback
    for every command, --version included. Out-of-range values were blamed on a flag never
    passed, or on the config file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RM_SERVICE_MAX_CONCURRENCY", "abc")
    assert _main("graders") == 0  # a command that grades nothing does not read it
    assert _main("check", rules) == 1
    assert "RM_SERVICE_MAX_CONCURRENCY must be an integer, got 'abc'" in capsys.readouterr().err
    monkeypatch.setenv("RM_SERVICE_MAX_CONCURRENCY", "0")
    assert _main("check", rules) == 1
    assert "RM_SERVICE_MAX_CONCURRENCY must be from 1 to 65536, got 0" in capsys.readouterr().err
    monkeypatch.delenv("RM_SERVICE_MAX_CONCURRENCY")
    data = write_jsonl(tmp_path / "in.jsonl", [record(1)])
    assert _main("grade", data, "-c", rules, "--max-concurrency", "100000", "--no-progress") == 1
    err = capsys.readouterr().err
    assert "--max-concurrency must be from 1 to 65536, got 100000" in err
    assert "rules.yaml" not in err  # the config says nothing about it


def test_check_takes_a_config_and_a_data_file_of_any_input_format(
    tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's ``rm-service check reward.yaml data.jsonl`` was "unrecognized arguments",
    and a Parquet input that ``grade`` reads was "invalid JSON"."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = write_jsonl(tmp_path / "in.jsonl", [record(1)])
    assert _main("check", rules, data) == 0
    assert "first record (line 1) fits every grader" in capsys.readouterr().out
    pq.write_table(pa.Table.from_pylist([record(1), record(2)]), tmp_path / "in.parquet")
    assert _main("check", "-c", rules, tmp_path / "in.parquet") == 0
    assert "first record (row 1) fits every grader" in capsys.readouterr().out
    bad = [{"id": 1, "query": "q"}]  # no response: the error names the row, not a "line"
    pq.write_table(pa.Table.from_pylist(bad), tmp_path / "bad.parquet")
    assert _main("check", rules, tmp_path / "bad.parquet") == 1
    assert "bad.parquet row 1:" in capsys.readouterr().err
    (tmp_path / "empty.jsonl").write_text("\n")
    assert _main("check", rules, tmp_path / "empty.jsonl") == 0
    assert "holds no record to check" in capsys.readouterr().err


def test_an_audit_report_over_the_config_is_refused(
    tmp_path: Path, rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", [record(1)])
    before = rules.read_text()
    assert _main("audit", data, "-c", rules, "--report", rules, "--no-progress") == 1
    assert "is the same file as the config" in capsys.readouterr().err
    assert rules.read_text() == before


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--max-queue", "-5"], "max_queue must be >= 0"),
        (["--max-body-bytes", "0"], "max_body_bytes must be >= 1"),
        (["--port", "99999"], "--port must be from 0 to 65535"),
        (["--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_bad_serve_settings_are_errors_before_anything_starts(
    rules: Path, capsys: pytest.CaptureFixture[str], flags: list[str], says: str
) -> None:
    """A negative --max-queue was a traceback (and, with workers, a crash loop); --port 99999
    listened on a random port; --workers 0 ran one; --max-body-bytes 0 answered 413 to all."""
    assert _main("serve", "-c", rules, *flags) == 1
    assert says in capsys.readouterr().err


def test_an_unknown_serve_log_level_is_a_usage_error(rules: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        _main("serve", "-c", rules, "--log-level", "bogus")
    assert exc.value.code == 2


def test_a_parquet_map_column_is_an_object_to_the_mapper(tmp_path: Path) -> None:
    """A MAP column came back as a list of pairs, so ``reward_model.ground_truth`` (verl's
    layout) did not resolve."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rm_service._readers import iter_parquet

    table = pa.table(
        {
            "response": ["56"],
            "reward_model": pa.array(
                [[("ground_truth", "56")]], type=pa.map_(pa.string(), pa.string())
            ),
        }
    )
    pq.write_table(table, tmp_path / "map.parquet")
    [(_, rec)] = list(iter_parquet(tmp_path / "map.parquet"))
    assert rec["reward_model"] == {"ground_truth": "56"}
