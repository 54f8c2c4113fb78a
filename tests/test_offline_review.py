"""The offline command line as a user meets it: `check` agrees with `grade` on a null field, a
malformed line fixed and resumed resumes again, the errors file lists what is still invalid, a
resume of nothing but invalid lines still fails, and inputs that are not JSONL say what they are."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_support import RULES, cli, one_error_line, read_jsonl, record, write_jsonl

# RULES with a gold answer read from ``ground_truth``: a null there is the record's data.
GOLD = """
graders:
  format: {type: format, mode: think_answer}
  correct: {type: number, mapper: {reference_response: ground_truth}}
aggregators:
  - type: weighted_sum
    name: reward
    weights: {correct: 0.8, format: 0.2}
"""


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(RULES)
    return p


def test_check_takes_a_null_field_in_the_first_record_as_grade_does(tmp_path: Path) -> None:
    """`grade` scores a first record with a null gold as that record's unscored row; `check`
    refused the same file (exit 1), so a user who checked first never graded it."""
    cfg = tmp_path / "gold.yaml"
    cfg.write_text(GOLD)
    src = write_jsonl(
        tmp_path / "in.jsonl", [record(0, ground_truth=None), record(1, ground_truth="1")]
    )
    r = cli("check", cfg, src, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "first record (line 1) fits every grader" in r.stdout
    assert "in.jsonl line 1" in r.stderr and "unscored (invalid_input)" in r.stderr
    g = cli("grade", src, "-c", cfg, "-o", tmp_path / "o.jsonl", "--no-progress", cwd=tmp_path)
    assert g.returncode == 0, g.stderr
    assert [row["status"] for row in read_jsonl(tmp_path / "o.jsonl")] == ["error", "ok"]
    # A field the record lacks is still the config's mismatch, for both.
    lacks = write_jsonl(tmp_path / "lacks.jsonl", [record(0)])
    r = cli("check", cfg, lacks, cwd=tmp_path)
    assert r.returncode == 1
    assert "lacks.jsonl line 1" in one_error_line(r.stderr)


def test_calibrate_refuses_an_empty_label_field(tmp_path: Path, rules: Path) -> None:
    """`--label-field ''` was taken as no labels: a quantile fit, or an error blaming the map,
    after grading the whole reference."""
    ref = write_jsonl(tmp_path / "ref.jsonl", [record(0, ok=1)])
    for empty in ("", "  "):
        r = cli("calibrate", ref, "-c", rules, "--label-field", empty, cwd=tmp_path)
        assert r.returncode == 1
        assert "--label-field must name a record field" in one_error_line(r.stderr)


def test_a_malformed_line_fixed_and_resumed_resumes_again(tmp_path: Path, rules: Path) -> None:
    """The run record kept the digest of the malformed line: the resume that graded the fixed
    line passed (it was not graded before), and every resume after it was refused as "the input
    changed"."""
    src = write_jsonl(tmp_path / "in.jsonl", [record(0), "not json", record(2)])
    out = tmp_path / "out.jsonl"
    args = ("grade", src, "-c", rules, "-o", out, "--no-progress")
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 1 and "in.jsonl line 2" in one_error_line(r.stderr)
    write_jsonl(src, [record(0), record(1), record(2)])  # line 2 fixed
    r = cli(*args, "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    write_jsonl(src, [record(0), record(1), record(2), record(3)])  # a line added at the end
    r = cli(*args, "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(row["line"] for row in read_jsonl(out)) == [1, 2, 3, 4]
    # A line that really changed is still refused.
    write_jsonl(src, [record(0), record(9), record(2), record(3)])
    r = cli(*args, "--resume", cwd=tmp_path)
    assert r.returncode == 1 and "line 2 of" in one_error_line(r.stderr)


def test_the_errors_file_drops_a_line_fixed_and_graded(tmp_path: Path, rules: Path) -> None:
    """After `--resume --skip-invalid` graded a fixed line, the errors file still listed it as
    invalid, next to its row in the output."""
    src = write_jsonl(tmp_path / "in.jsonl", [record(0), "not json", record(2), "[1]"])
    out, errs = tmp_path / "out.jsonl", tmp_path / "out.jsonl.errors.jsonl"
    args = ("grade", src, "-c", rules, "-o", out, "--skip-invalid", "--no-progress")
    assert cli(*args, cwd=tmp_path).returncode == 0
    assert [row["line"] for row in read_jsonl(errs)] == [2, 4]
    write_jsonl(src, [record(0), record(1), record(2), "[1]"])  # line 2 fixed, line 4 still bad
    r = cli(*args, "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(row["line"] for row in read_jsonl(out)) == [1, 2, 3]
    assert [row["line"] for row in read_jsonl(errs)] == [4]  # listed once, and only what is bad
    assert "1 of them still invalid" in r.stdout
    r = cli(*args, "--resume", cwd=tmp_path)  # nothing left to do: nothing changes
    assert r.returncode == 0, r.stderr
    assert [row["line"] for row in read_jsonl(errs)] == [4]
    assert len(read_jsonl(out)) == 3


def test_a_plain_resume_drops_a_fixed_line_from_the_errors_file(
    tmp_path: Path, rules: Path
) -> None:
    """The line fixed and graded by `--resume` alone stayed in the errors file too."""
    src = write_jsonl(tmp_path / "in.jsonl", [record(0), "not json", record(2)])
    out, errs = tmp_path / "out.jsonl", tmp_path / "out.jsonl.errors.jsonl"
    args = ("grade", src, "-c", rules, "-o", out, "--no-progress")
    assert cli(*args, "--skip-invalid", cwd=tmp_path).returncode == 0
    write_jsonl(src, [record(0), record(1), record(2)])
    r = cli(*args, "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(row["line"] for row in read_jsonl(out)) == [1, 2, 3]
    assert read_jsonl(errs) == []
    errs.write_text("garbled\n")  # an errors file this run does not use never stops it
    assert cli(*args, "--resume", cwd=tmp_path).returncode == 0
    assert errs.read_text() == "garbled\n"


def test_a_resume_of_only_invalid_lines_still_exits_4(tmp_path: Path, rules: Path) -> None:
    """Every line invalid exits 4, but the same input resumed with `--skip-invalid` exited 0
    ("2 already done"), so `grade --resume ... && train` went on with no reward at all."""
    src = write_jsonl(tmp_path / "in.jsonl", ["not json", "[1]"])
    args = ("grade", src, "-c", rules, "-o", tmp_path / "o.jsonl", "--skip-invalid")
    r = cli(*args, "--no-progress", cwd=tmp_path)
    assert r.returncode == 4 and "every line is invalid" in r.stderr
    r = cli(*args, "--no-progress", "--resume", cwd=tmp_path)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "every line is invalid" in r.stderr
    assert "2 of them still invalid" in r.stdout


def test_a_compressed_input_says_it_is_compressed(tmp_path: Path, rules: Path) -> None:
    """A gzip file was read as JSONL: "line 1: invalid record: 'utf-8' codec can't decode byte
    0x8b", for `grade` and `check` alike."""
    src = tmp_path / "in.jsonl.gz"
    src.write_bytes(gzip.compress((json.dumps(record(0)) + "\n").encode()))
    for args in (("grade", src, "-c", rules, "-o", tmp_path / "o.jsonl"), ("check", rules, src)):
        r = cli(*args, cwd=tmp_path)
        assert r.returncode == 1
        err = one_error_line(r.stderr)
        assert "in.jsonl.gz: a gzip-compressed file is not read" in err and "codec" not in err
    assert not (tmp_path / "o.jsonl").exists()


def test_a_json_array_file_says_jsonl_wants_one_object_a_line(tmp_path: Path, rules: Path) -> None:
    """A JSON array (on one line, or pretty-printed) failed with "expected a JSON object, got
    list" or "Expecting value at the end of the line", never naming what JSONL is."""
    one = tmp_path / "one.json"
    one.write_text(json.dumps([record(0), record(1)]) + "\n")
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps([record(0), record(1)], indent=2) + "\n")
    for src in (one, pretty):
        r = cli("grade", src, "-c", rules, "-o", tmp_path / f"{src.stem}.out", cwd=tmp_path)
        err = one_error_line(r.stderr)
        assert f"{src.name} line 1" in err and "a JSON array is not read" in err


def test_the_errors_file_rewrite_keeps_its_mode_and_a_users_tmp_file(
    tmp_path: Path, rules: Path
) -> None:
    """The rewrite went through a fixed ``ERRORS.tmp``: a user's file of that name was
    overwritten and moved over the list, and the list (input text) kept 0600 came back 0644."""
    src = write_jsonl(tmp_path / "in.jsonl", [record(0), "not json", record(2), "[1]"])
    out, errs = tmp_path / "out.jsonl", tmp_path / "out.jsonl.errors.jsonl"
    args = ("grade", src, "-c", rules, "-o", out, "--skip-invalid", "--no-progress")
    assert cli(*args, cwd=tmp_path).returncode == 0
    errs.chmod(0o600)
    mine = tmp_path / "out.jsonl.errors.jsonl.tmp"
    mine.write_text("mine\n")
    write_jsonl(src, [record(0), record(1), record(2), "[1]"])  # line 2 fixed
    r = cli(*args, "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [row["line"] for row in read_jsonl(errs)] == [4]
    assert errs.stat().st_mode & 0o777 == 0o600
    assert mine.read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == [mine.name]


_WRITE_WITH_A_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from rm_service._run_record import write_run_record
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))
try:
    write_run_record(Path(sys.argv[1]), None, "f" * 64)
except Exception as exc:
    print(type(exc).__name__)
"""


def test_a_run_record_that_cannot_be_written_leaves_the_old_one_whole(tmp_path: Path) -> None:
    """Every resume now rewrites the run record; written over in place, a full disk (here a file
    size limit) left it cut short, and the next resume refused the output."""
    run = tmp_path / "out.jsonl.run.json"
    run.write_text('{"reward": "r", "fingerprint": 2, "input": null}\n', encoding="utf-8")
    before = run.read_text(encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-c", _WRITE_WITH_A_FULL_DISK, str(run)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.stdout.strip() == "RMServiceError", out.stderr
    assert run.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [run.name]  # no temporary file left


_WRITE_UNDER_UMASK_077 = """
import os, sys
from pathlib import Path
from rm_service._run_record import write_run_record
os.umask(0o077)
write_run_record(Path(sys.argv[1]), None, "f" * 64)
"""


def test_a_new_run_record_takes_its_mode_from_the_umask(tmp_path: Path) -> None:
    """Its replacement was made 0644 whatever the umask: under umask 077 the output, the
    report and the errors file were 0600 and the run record beside them world-readable."""
    run = tmp_path / "out.jsonl.run.json"
    out = subprocess.run(
        [sys.executable, "-c", _WRITE_UNDER_UMASK_077, str(run)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert run.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [run.name]


def test_a_byte_order_mark_on_a_blank_first_line_is_no_invalid_record(
    tmp_path: Path, rules: Path
) -> None:
    """A file saved with a UTF-8 byte order mark and a blank first line (or files concatenated,
    each with its mark) stopped `grade`, `check` and `audit` at line 1: "invalid record:
    Expecting value at the end of the line". A mark alone is a blank line."""
    bom = "\ufeff"
    src = tmp_path / "in.jsonl"
    src.write_text(
        f"{bom}\n{json.dumps(record(0))}\n{bom}\n{json.dumps(record(1))}\n", encoding="utf-8"
    )
    out = tmp_path / "o.jsonl"
    r = cli("grade", src, "-c", rules, "-o", out, "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [row["line"] for row in read_jsonl(out)] == [2, 4]
    assert cli("check", rules, src, cwd=tmp_path).returncode == 0
    r = cli("audit", src, "-c", rules, "--no-progress", "--exploits", "empty", cwd=tmp_path)
    assert r.returncode == 0 and "invalid record" not in r.stderr, r.stderr


def test_an_overwrite_that_stops_at_line_1_does_not_call_the_old_output_its_own(
    tmp_path: Path, rules: Path
) -> None:
    """``--overwrite`` keeps the earlier output until it writes. A first line that is invalid
    said "Records graded so far are saved in o.jsonl; fix the line and rerun with --resume":
    those were the earlier run's records, and that resume was refused as another input."""
    out = tmp_path / "o.jsonl"
    first = write_jsonl(tmp_path / "first.jsonl", [record(0), record(1)])
    assert cli("grade", first, "-c", rules, "-o", out, cwd=tmp_path).returncode == 0
    kept = out.read_bytes()
    bad = write_jsonl(tmp_path / "bad.jsonl", ["not json", record(2)])
    r = cli("grade", bad, "-c", rules, "-o", out, "--overwrite", cwd=tmp_path)
    err = one_error_line(r.stderr)
    assert "bad.jsonl line 1: invalid record" in err
    assert f"{out} still holds the earlier output" in err and "rerun with --overwrite" in err
    assert "--resume" not in err and "saved in" not in err
    assert out.read_bytes() == kept
