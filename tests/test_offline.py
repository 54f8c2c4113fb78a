"""Offline JSONL grading: output shape, bad lines, resume after SIGKILL, config errors, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rm_service import ConfigError, InputError, MappingError, build_runner, load_config
from rm_service._offline import agrade_file
from rm_service.cli import main

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
graders:
  length:
    type: tests.support:slow_len
    mapper: {response: output.text}
  digit:
    type: tests.support:has_digit
    mapper: {response: output.text}
aggregators:
  - type: weighted_sum
    name: reward
    weights: {length: 3, digit: 1}
max_concurrency: 8
"""


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _rows(n: int) -> list[dict]:
    return [
        {"id": f"q{i}", "output": {"text": "answer " + "x" * (i % 15) + str(i)}} for i in range(n)
    ]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RM_TEST_DELAY", "0.001")
    p = tmp_path / "reward.yaml"
    p.write_text(CONFIG)
    return p


def _read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


async def test_grades_every_line_once_with_ids_and_summary(tmp_path: Path, config: Path) -> None:
    src = _write(tmp_path / "in.jsonl", [*_rows(30), ""])  # a blank line is not a record
    out = tmp_path / "out.jsonl"
    res = await agrade_file(build_runner(load_config(config)), src, out, progress=False)
    rows = _read(out)
    assert res.graded == 30 and len(rows) == 30
    assert sorted(r["line"] for r in rows) == list(range(1, 31))
    assert {r["id"] for r in rows} == {f"q{i}" for i in range(30)}
    r0 = next(r for r in rows if r["id"] == "q0")
    length = min(1.0, len("answer 0") / 20)
    assert r0["scores"] == {
        "length": length,
        "digit": 1.0,
        "reward": pytest.approx(0.75 * length + 0.25),
    }
    assert r0["status"] == "ok" and r0["errors"] == {}
    assert res.summary.records == 30 and res.summary.components["digit"].mean == 1.0
    html = res.report.read_text()
    assert "<svg" in html and "length" in html and "digit" in html


async def test_malformed_line_names_the_line_and_keeps_what_was_graded(
    tmp_path: Path, config: Path
) -> None:
    rows = [*_rows(20), '{"id": "bad", "output": ', *_rows(5)]
    src = _write(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    runner = build_runner(load_config(config))
    with pytest.raises(InputError) as err:
        await agrade_file(runner, src, out, progress=False)
    assert err.value.line == 21 and "line 21" in str(err.value)
    assert sorted(r["line"] for r in _read(out)) == list(range(1, 21))  # nothing graded is lost
    # after fixing the line, --resume grades only the rest
    rows[20] = json.dumps({"id": "fixed", "output": {"text": "7"}})
    _write(src, rows)
    res = await agrade_file(runner, src, out, resume=True, progress=False)
    assert res.graded == 6 and res.skipped_done == 20
    assert sorted(r["line"] for r in _read(out)) == list(range(1, 27))


async def test_skip_invalid_sends_bad_lines_to_errors_file(tmp_path: Path, config: Path) -> None:
    rows = [*_rows(3), "not json", "[1, 2]", *_rows(2)]
    src = _write(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    res = await agrade_file(
        build_runner(load_config(config)), src, out, skip_invalid=True, progress=False
    )
    assert res.graded == 5 and res.invalid == 2
    errs = _read(res.errors)
    assert [e["line"] for e in errs] == [4, 5]
    assert "expected a JSON object, got list" in errs[1]["error"]


async def test_existing_output_needs_resume_or_overwrite(tmp_path: Path, config: Path) -> None:
    src = _write(tmp_path / "in.jsonl", _rows(3))
    out = _write(tmp_path / "out.jsonl", [{"line": 1}])
    runner = build_runner(load_config(config))
    with pytest.raises(InputError, match="exists; pass --resume"):
        await agrade_file(runner, src, out, progress=False)
    res = await agrade_file(runner, src, out, overwrite=True, progress=False)
    assert res.graded == 3 and len(_read(out)) == 3


async def test_first_record_is_checked_before_any_grading(tmp_path: Path, config: Path) -> None:
    src = _write(tmp_path / "in.jsonl", [{"id": 1, "output": {"txt": "typo"}}, *_rows(3)])
    out = tmp_path / "out.jsonl"
    with pytest.raises(MappingError, match=r"'output.text'.*key 'text' not found"):
        await agrade_file(build_runner(load_config(config)), src, out, progress=False)
    assert not out.exists() or out.read_text() == ""


async def test_a_null_field_in_the_first_record_is_that_records_error_not_the_runs(
    tmp_path: Path, config: Path
) -> None:
    """The same null stopped the whole run on line 1 (a MappingError) and was an ordinary
    unscored row on line 2: a config that fits is not refused for one record's data."""
    src = _write(tmp_path / "in.jsonl", [{"id": "n", "output": {"text": None}}, *_rows(3)])
    out = tmp_path / "out.jsonl"
    result = await agrade_file(build_runner(load_config(config)), src, out, progress=False)
    rows = _read(out)
    assert [r["id"] for r in rows] == ["n", "q0", "q1", "q2"]
    assert rows[0]["reward"] is None and rows[0]["status"] == "error"
    assert all(r["reward"] is not None for r in rows[1:])
    assert result.graded == 4
    # a missing field is still the config's: caught before any grading
    missing = _write(tmp_path / "in2.jsonl", [{"id": 1, "output": {}}, *_rows(3)])
    with pytest.raises(MappingError):
        await agrade_file(
            build_runner(load_config(config)), missing, tmp_path / "o2.jsonl", progress=False
        )


def test_sigkill_then_resume_grades_every_line_exactly_once(tmp_path: Path, config: Path) -> None:
    n = 400
    src = _write(tmp_path / "in.jsonl", _rows(n))
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "RM_TEST_DELAY": "0.02", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "rm_service.cli",
        "grade",
        str(src),
        "-c",
        str(config),
        "-o",
        str(out),
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill mid-run, once some output exists
        if out.exists() and out.stat().st_size > 2000:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    partial = len(out.read_text().splitlines())
    assert 0 < partial < n, "the kill should land mid-run"
    # simulate a torn final write, as a kill during write() could leave
    with out.open("a") as f:
        f.write('{"id": "q99", "line": 100, "rew')
    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [r["line"] for r in _read(out)]
    assert sorted(lines) == list(range(1, n + 1))  # every input exactly once
    assert "already done" in done.stdout


def test_cli_grade_prints_summary_and_errors_cleanly(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path / "in.jsonl", _rows(10))
    out = tmp_path / "o.jsonl"
    assert main(["grade", str(src), "-c", str(config), "-o", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "component" in text and "digit" in text and "records: 10" in text
    # bad line: one clear line on stderr with the line number, exit 1
    _write(src, [*_rows(2), "{oops"])
    code = main(
        ["grade", str(src), "-c", str(config), "-o", str(out), "--overwrite", "--no-progress"]
    )
    err = capsys.readouterr().err
    assert code == 1 and "line 3" in err and "--resume" in err and "Traceback" not in err


def test_cli_bad_config_names_file_and_field(tmp_path: Path, capsys) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("graders:\n  m:\n    mapper: {response: x}\n")
    assert main(["check", "-c", str(p)]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "graders.m.type" in err
    p.write_text("graders:\n  m:\n    type: no_such_grader\n")
    with pytest.raises(ConfigError, match=r"graders\.m: unknown grader 'no_such_grader'"):
        load_config(p)
    p.write_text(CONFIG.replace("length: 3", "lenght: 3"))
    with pytest.raises(ConfigError, match="lenght"):
        load_config(p)
