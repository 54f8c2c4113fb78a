"""Offline grading never loses or fakes data: the input is never an
output, one run at a time per output, any valid JSON round-trips, and a full disk or a bad path is
one clear line that says how to resume."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from rm_service import InputError, build_runner, load_config
from rm_service._offline import agrade_file
from tests.cli_support import (
    RULES,
    SLOW,
    cli,
    cli_cmd,
    env,
    one_error_line,
    read_jsonl,
    record,
    write_jsonl,
)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(RULES)
    return p


# --- item 1: an output that is the input --------------------------------------------------------


def test_output_equal_to_input_is_refused_and_the_input_kept(tmp_path: Path, rules: Path) -> None:
    src = write_jsonl(tmp_path / "x.jsonl", [record(i) for i in range(3)])
    before = src.read_bytes()
    r = cli("grade", src, "-c", rules, "-o", src, "--overwrite", cwd=tmp_path)
    assert r.returncode == 1
    err = one_error_line(r.stderr)
    assert "same file" in err and "x.jsonl" in err
    assert src.read_bytes() == before


@pytest.mark.parametrize(
    ("out", "errors", "report", "skip_invalid"),
    [
        ("x.jsonl", None, None, False),
        ("sub/../x.jsonl", None, None, False),
        ("link.jsonl", None, None, False),  # a symlink to the input
        ("hard.jsonl", None, None, False),  # a hard link to the input
        ("out.jsonl", "x.jsonl", None, True),
        ("out.jsonl", "x.jsonl", None, False),  # --overwrite unlinked it even so
        ("out.jsonl", None, "x.jsonl", False),
        ("out.jsonl", "out.jsonl", None, True),  # the errors file is the output
        ("out.jsonl", None, "out.jsonl", False),
        ("out.jsonl", None, "out.jsonl.errors.jsonl", True),  # the report is the errors file
    ],
)
async def test_colliding_paths_are_refused_before_touching_a_file(
    tmp_path: Path,
    rules: Path,
    out: str,
    errors: str | None,
    report: str | None,
    skip_invalid: bool,
) -> None:
    src = write_jsonl(tmp_path / "x.jsonl", [record(i) for i in range(3)])
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.jsonl").symlink_to(src)
    os.link(src, tmp_path / "hard.jsonl")
    write_jsonl(tmp_path / "out.jsonl", [{"line": 1, "keep": True}])
    before = _files(tmp_path)
    with pytest.raises(InputError, match="same file"):
        await agrade_file(
            build_runner(load_config(rules)),
            src,
            tmp_path / out,
            overwrite=True,
            skip_invalid=skip_invalid,
            errors_path=tmp_path / errors if errors else None,
            report_path=tmp_path / report if report else None,
            progress=False,
        )
    assert _files(tmp_path) == before


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# --- item 2: two runs on one output ----------------------------------------------------------


def _lock_holder(lock: Path) -> int | None:
    try:
        return int(json.loads(lock.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def test_second_run_on_the_same_output_fails_fast_naming_the_first(tmp_path: Path) -> None:
    n = 600  # 600 x 0.1 s at 8 in flight: about 7.5 s, time for two CLI starts on a busy box
    cfg = tmp_path / "slow.yaml"
    cfg.write_text(SLOW)
    src = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(n)])
    out = tmp_path / "out.jsonl"

    def start(flag: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            cli_cmd("grade", src, "-c", cfg, "-o", out, flag, "--no-progress"),
            cwd=tmp_path,
            env=env(**extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    first = start("--resume", RM_TEST_DELAY="0.1")
    others: list[subprocess.Popen[str]] = []
    lock = out.with_name("out.jsonl.lock")
    try:
        # Start the others only once the first holds the lock and is writing: on a loaded box
        # a fixed wait let another run take the lock first, and the test then blamed the wrong
        # process.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
            _lock_holder(lock) == first.pid and out.exists() and out.stat().st_size > 0
        ):
            time.sleep(0.01)
        assert _lock_holder(lock) == first.pid, "the first run never took the lock"
        # both used to run: duplicate lines, or the first run's records sent to an unlinked file
        others += [start("--resume"), start("--overwrite")]
        for other in others:
            _, err = other.communicate(timeout=60)
            assert other.returncode == 1
            line = one_error_line(err)
            assert "in use by another run" in line and f"pid {first.pid}" in line, line
        assert first.poll() is None, "the first run should still be going"
        _, first_err = first.communicate(timeout=120)
    finally:
        for proc in (first, *others):
            proc.kill()
            proc.communicate()
    assert first.returncode == 0, first_err
    lines = [row["line"] for row in read_jsonl(out)]
    assert sorted(lines) == list(range(1, n + 1))  # every line exactly once
    assert not out.with_name("out.jsonl.lock").exists()  # released and removed


def test_resume_ignores_duplicate_lines_already_in_the_output(tmp_path: Path, rules: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(6)])
    out = tmp_path / "out.jsonl"
    assert cli("grade", src, "-c", rules, "-o", out, cwd=tmp_path).returncode == 0
    rows = out.read_text().splitlines()
    # what two unlocked runs used to leave: lines 1 and 2 twice, and line 6 missing
    out.write_text("\n".join([*rows[:5], rows[0], rows[1]]) + "\n")
    r = cli("grade", src, "-c", rules, "-o", out, "--resume", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "graded 1 record(s) this run, 5 already done" in r.stdout
    assert "records: 6," in r.stdout  # not 8
    assert re.search(r"warning: 2 duplicate line\(s\) in \S*out.jsonl ignored", r.stderr)


async def test_resume_with_overwrite_keeps_what_was_graded(tmp_path: Path, rules: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(6)])
    out = tmp_path / "out.jsonl"
    runner = build_runner(load_config(rules))
    await agrade_file(runner, src, out, progress=False)
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:4]))
    res = await agrade_file(runner, src, out, resume=True, overwrite=True, progress=False)
    assert res.graded == 2 and sorted(r["line"] for r in read_jsonl(out)) == list(range(1, 7))


def test_summary_counts_each_line_once() -> None:
    from rm_service import summarize_jsonl

    row = {"status": "ok", "scores": {"reward": 1.0}}
    rows = [{**row, "line": 1}, {**row, "line": 2, "scores": {"reward": 0.0}}]
    rows.append({**row, "line": 1, "scores": {"reward": 0.5}})  # a duplicate: the first counts
    summary = summarize_jsonl(json.dumps(r) for r in rows)
    assert summary.records == 2 and summary.duplicates == 1
    assert summary.components["reward"].mean == 0.5


# --- item 4: any valid JSON round-trips -------------------------------------------------------


def test_lone_surrogates_round_trip_to_the_output(tmp_path: Path, rules: Path) -> None:
    src = tmp_path / "sur.jsonl"
    sur = '{"id": "a\\ud800", "query": "q", "response": "<think>x</think><answer>\\udfff</answer>"}'
    src.write_text(sur + "\n" + json.dumps(record(2, id="b")) + "\n")
    out = tmp_path / "out.jsonl"
    r = cli("grade", src, "-c", rules, "-o", out, "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = {row["line"]: row for row in read_jsonl(out)}
    assert rows[1]["id"] == "a\ud800" and rows[2]["id"] == "b"
    assert rows[1]["status"] == "ok"
    assert "records: 2," in r.stdout


def test_surrogates_in_the_errors_file_and_resume(tmp_path: Path, rules: Path) -> None:
    src = tmp_path / "sur.jsonl"
    src.write_text('["\\ud800"]\n{"id": "\\udc00", "response": "r", "query": "q"}\n')
    out = tmp_path / "out.jsonl"
    args = ("grade", src, "-c", rules, "-o", out, "--skip-invalid", "--no-progress")
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [row["id"] for row in read_jsonl(out)] == ["\udc00"]
    errors = read_jsonl(tmp_path / "out.jsonl.errors.jsonl")
    assert [e["line"] for e in errors] == [1]
    again = cli(*args, "--resume", cwd=tmp_path)  # resume reads the escaped rows back
    assert again.returncode == 0, again.stderr
    assert "graded 0 record(s) this run, 2 already done" in again.stdout


# --- item 7: disk full and unwritable paths -------------------------------------------------------


async def test_disk_full_is_one_line_naming_the_output_and_resume(
    tmp_path: Path, rules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write fails with ENOSPC (the output must be a regular file, so /dev/full is no
    longer a stand-in): one error naming the output, the reason and how to go on."""
    import errno

    import rm_service._run_files as run_files
    from rm_service import RMServiceError

    class Full:
        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            pass

    monkeypatch.setattr(run_files, "open", lambda *a, **k: Full(), raising=False)
    src = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(50)])
    runner = build_runner(load_config(rules))
    with pytest.raises(RMServiceError) as failed:
        await agrade_file(runner, src, tmp_path / "full.jsonl", overwrite=True, progress=False)
    err = str(failed.value)
    assert "full.jsonl" in err and "No space left on device" in err and "--resume" in err


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_unwritable_output_path_is_one_line(tmp_path: Path, rules: Path, where: str) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(3)])
    (tmp_path / "file").write_text("not a directory\n")
    if where == "proc" and not Path("/proc/self").exists():
        pytest.skip("needs /proc")
    out = "file/out.jsonl" if where == "under_a_file" else "/proc/x.jsonl"
    r = cli("grade", src, "-c", rules, "-o", out, cwd=tmp_path)
    assert r.returncode == 1
    err = one_error_line(r.stderr)
    assert out in err and "--resume" in err


def test_a_report_that_cannot_be_written_is_a_warning(tmp_path: Path, rules: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(3)])
    (tmp_path / "file").write_text("not a directory\n")
    out = tmp_path / "out.jsonl"
    r = cli("grade", src, "-c", rules, "-o", out, "--report", "file/r.html", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "rm-service: warning:" in r.stderr and "file/r.html" in r.stderr
    assert len(read_jsonl(out)) == 3 and "records: 3," in r.stdout


# --- found by an adversarial review of the offline face ------------------------------------------


def test_input_from_a_pipe_is_graded_not_lost(tmp_path: Path, rules: Path) -> None:
    """``... | rm-service grade /dev/stdin``: the input was read through once to size the
    progress bar, then found empty, and the run said "no records" with exit 0."""
    rows = [record(i) for i in range(5)]
    out = tmp_path / "out.jsonl"
    for progress in ([], ["--no-progress"]):
        r = subprocess.run(
            cli_cmd("grade", "/dev/stdin", "-c", rules, "-o", out, "--overwrite", *progress),
            input="".join(json.dumps(x) + "\n" for x in rows),
            cwd=tmp_path,
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        assert sorted(row["id"] for row in read_jsonl(out)) == list(range(5))


@pytest.mark.parametrize("where", ["-", "/dev/stdout"])
def test_an_output_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, rules: Path, where: str
) -> None:
    """The output is read back for the summary and resume: /dev/stdout into a pipe hung for
    ever (the run read its own pipe), and "-" wrote a file named "-"."""
    src = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(3)])
    r = cli("grade", src, "-c", rules, "-o", where, timeout=60, cwd=tmp_path)
    assert r.returncode == 1
    assert "must be a regular file" in one_error_line(r.stderr)
    assert not (tmp_path / "-").exists()


async def test_a_symlinked_output_meets_the_lock_of_its_target(tmp_path: Path, rules: Path) -> None:
    """Two runs writing one file through a link and its target both ran, and the output held
    every line twice; the lock is now taken beside the file the output really is."""
    from rm_service import RMServiceError
    from rm_service._run_files import RunLock

    src = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(3)])
    real, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    real.touch()
    link.symlink_to(real)
    runner = build_runner(load_config(rules))
    held = RunLock(tmp_path / "real.jsonl.lock", real)  # a run on the target
    try:
        with pytest.raises(RMServiceError, match="in use by another run"):
            await agrade_file(runner, src, link, progress=False)
    finally:
        held.release()
    result = await agrade_file(runner, src, link, progress=False)
    assert result.graded == 3 and len(read_jsonl(real)) == 3


def test_a_stale_errors_file_is_neither_appended_to_nor_taken_as_done(
    tmp_path: Path, rules: Path
) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [record(0), "not json", record(2)])
    out, errs = tmp_path / "out.jsonl", tmp_path / "out.jsonl.errors.jsonl"
    assert cli("grade", src, "-c", rules, "-o", out, "--skip-invalid", cwd=tmp_path).returncode == 0
    out.unlink()  # start again: the errors file of the old run is still there
    r = cli("grade", src, "-c", rules, "-o", out, "--skip-invalid", cwd=tmp_path)
    assert r.returncode == 1
    assert "errors file of an earlier run" in one_error_line(r.stderr)
    r = cli("grade", src, "-c", rules, "-o", out, "--skip-invalid", "--overwrite", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [row["line"] for row in read_jsonl(errs)] == [2]  # once, not twice


def test_index_is_the_position_in_the_input_after_a_resume(tmp_path: Path, rules: Path) -> None:
    """``index`` restarted at 0 on every run, so after a resume it named another record."""
    src = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(6)])
    out = tmp_path / "out.jsonl"
    assert cli("grade", src, "-c", rules, "-o", out, cwd=tmp_path).returncode == 0
    rows = read_jsonl(out)
    out.write_text("".join(json.dumps(row) + "\n" for row in rows[:2]))  # an interrupted run
    assert cli("grade", src, "-c", rules, "-o", out, "--resume", cwd=tmp_path).returncode == 0
    rows = read_jsonl(out)
    assert sorted(row["line"] for row in rows) == list(range(1, 7))
    assert all(row["index"] == row["line"] - 1 for row in rows)


def test_a_huge_integer_is_valid_input_and_round_trips(tmp_path: Path, rules: Path) -> None:
    digits = "7" + "0" * 5000  # more digits than Python converts by default
    lines = [
        json.dumps(record(0)),
        json.dumps(record(1))[:-1] + f', "n": {digits}}}',  # in a field no grader reads
        json.dumps(record(2)).replace('"id": 2', f'"id": {digits}'),
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    r = cli("grade", src, "-c", rules, "-o", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # it was "invalid record: Exceeds the limit ..."
    rows = out.read_text().splitlines()
    assert len(rows) == 3
    assert any(f'"id": {digits}' in x and '"line": 3' in x for x in rows)


def test_bad_concurrency_and_a_missing_errors_folder(tmp_path: Path, rules: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [record(0), "not json"])
    base = ("grade", src, "-c", rules, "-o", tmp_path / "o.jsonl")
    for bad in ("0", "-1"):  # 0 was ignored, -1 blamed on the config
        r = cli(*base, "--max-concurrency", bad, cwd=tmp_path)
        assert r.returncode == 1 and "--max-concurrency must be from 1 to 65536" in r.stderr
    errs = tmp_path / "no" / "such" / "errors.jsonl"  # failed mid-run, at the first bad line
    r = cli(*base, "--skip-invalid", "--errors", errs, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [row["line"] for row in read_jsonl(errs)] == [2]


def test_metadata_is_written_as_strict_json(tmp_path: Path) -> None:
    """A grader's NaN metadata was written as the bare word NaN (not JSON to strict readers),
    and a numpy number stopped the run with a TypeError."""
    cfg = tmp_path / "odd.yaml"
    cfg.write_text("graders:\n  odd: {type: 'tests.support:odd_metadata'}\n")
    src = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(3)])
    out = tmp_path / "out.jsonl"
    r = cli("grade", src, "-c", cfg, "-o", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr

    def strict(name: str) -> Any:
        raise ValueError(f"{name} is not strict JSON")

    rows = [json.loads(x, parse_constant=strict) for x in out.read_text().splitlines()]
    assert [row["metadata"]["odd"]["ratio"] for row in rows] == [None] * 3
    assert rows[0]["metadata"]["odd"]["np"] == 0.5


def test_ids_of_any_json_type_round_trip_to_the_file(tmp_path: Path, rules: Path) -> None:
    """Ids other than strings and integers were written as JSON text: 1.5 became "1.5" and
    true "true", which then collided with a real "true" id."""
    ids = [1.5, True, "true", {"b": 1, "a": [1, 2]}, 100.0, [1, "x"]]
    src = write_jsonl(tmp_path / "in.jsonl", [record(0, id=i) for i in ids])
    out = tmp_path / "out.jsonl"
    assert cli("grade", src, "-c", rules, "-o", out, cwd=tmp_path).returncode == 0
    by_line = {row["line"]: row["id"] for row in read_jsonl(out)}
    assert [by_line[n] for n in range(1, len(ids) + 1)] == ids
    assert [type(by_line[n]) for n in range(1, len(ids) + 1)] == [type(i) for i in ids]


def test_resume_refuses_another_reward_or_a_changed_input(tmp_path: Path, rules: Path) -> None:
    """Resume keys on line numbers: a changed config mixed two rewards in one file, and a line
    added at the top had records skipped and mislabelled, both without a word. A run record
    beside the output (``OUT.run.json``) now says what it was graded from."""
    src = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(4)])
    out = tmp_path / "out.jsonl"
    assert cli("grade", src, "-c", rules, "-o", out, cwd=tmp_path).returncode == 0
    other = tmp_path / "other.yaml"
    other.write_text("graders:\n  length: {type: length_penalty, max_len: 10, buffer: 10}\n")
    r = cli("grade", src, "-c", other, "-o", out, "--resume", cwd=tmp_path)
    assert r.returncode == 1 and "graded with another reward" in one_error_line(r.stderr)
    # lines added at the end: more data, resumed; only the new ones are graded
    write_jsonl(src, [record(i) for i in range(6)])
    r = cli("grade", src, "-c", rules, "-o", out, "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(row["id"] for row in read_jsonl(out)) == list(range(6))
    # a line added at the top: every graded line moved
    write_jsonl(src, [record(99), *(record(i) for i in range(6))])
    r = cli("grade", src, "-c", rules, "-o", out, "--resume", cwd=tmp_path)
    assert r.returncode == 1 and "line 1 of" in one_error_line(r.stderr)
    assert sorted(row["id"] for row in read_jsonl(out)) == list(range(6))  # untouched
    r = cli("grade", src, "-c", rules, "-o", out, "--overwrite", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(row["id"] for row in read_jsonl(out)) == [*range(6), 99]


def test_a_line_fixed_after_the_errors_file_is_graded_on_resume(
    tmp_path: Path, rules: Path
) -> None:
    """A line sent to the errors file was taken as done: fixed and resumed, it was never graded.
    Now it is read again; one still bad is not listed twice."""
    src = write_jsonl(tmp_path / "in.jsonl", [record(0), "not json", record(2), "[1]"])
    out, errs = tmp_path / "out.jsonl", tmp_path / "out.jsonl.errors.jsonl"
    assert cli("grade", src, "-c", rules, "-o", out, "--skip-invalid", cwd=tmp_path).returncode == 0
    write_jsonl(src, [record(0), record(1), record(2), "[1]"])  # line 2 fixed, line 4 still bad
    r = cli("grade", src, "-c", rules, "-o", out, "--skip-invalid", "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(row["line"] for row in read_jsonl(out)) == [1, 2, 3]
    assert [row["line"] for row in read_jsonl(errs)] == [4]  # only what is still invalid


def test_a_json_error_says_where_in_the_line_not_the_parsers_line_2(
    tmp_path: Path, rules: Path
) -> None:
    """A cut line read "line 7: invalid record: Expecting value: line 2 column 1": the parser's
    own count, which names the line's newline and reads like another line of the file."""
    src = write_jsonl(tmp_path / "in.jsonl", [record(0), '{"id": "bad", "response": ', '{"a" 1}'])
    r = cli("grade", src, "-c", rules, "-o", tmp_path / "o.jsonl", cwd=tmp_path)
    err = one_error_line(r.stderr)
    assert "line 2" in err and "Expecting value at the end of the line" in err
    assert "column" not in err
    r = cli(
        "grade",
        src,
        "-c",
        rules,
        "-o",
        tmp_path / "o.jsonl",
        "--skip-invalid",
        "--resume",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    errors = read_jsonl(tmp_path / "o.jsonl.errors.jsonl")
    assert [e["error"] for e in errors] == [
        "Expecting value at the end of the line",
        "Expecting ':' delimiter at character 6",
    ]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("{type: format, mode: regex, pattern: 'x.*'}",
         "{type: format, mode: regex, pattern: '.*'}"),
        ("{type: 'tests.support:min_words', min_words: 5}",
         "{type: 'tests.support:min_words', min_words: 1}"),
        ("{type: number, partial_credit: 0.5, mapper: {reference_response: ground_truth}}",
         "{type: number, partial_credit: 0.0, mapper: {reference_response: ground_truth}}"),
    ],
)  # fmt: skip
def test_resume_refuses_a_grader_whose_settings_changed(
    tmp_path: Path, before: str, after: str
) -> None:
    """The reward's fingerprint read each grader's repr, which shows a format grader's mode but
    not its pattern, and a function grader's name but not its params: a resume after changing
    them mixed two rewards in one file (rewards 1.0 then 0.0) without a word."""
    rows = [record(i, ground_truth=str(i)) for i in range(6)]
    src, out, cfg = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "r.yaml"
    cfg.write_text(f"graders:\n  g: {before}\n")
    write_jsonl(src, rows[:2])
    assert cli("grade", src, "-c", cfg, "-o", out, cwd=tmp_path).returncode != 1
    write_jsonl(src, rows[:4])  # lines added at the end, the same settings: resumed
    same = cli("grade", src, "-c", cfg, "-o", out, "--resume", cwd=tmp_path)
    assert same.returncode != 1, same.stderr
    cfg.write_text(f"graders:\n  g: {after}\n")
    write_jsonl(src, rows)
    r = cli("grade", src, "-c", cfg, "-o", out, "--resume", cwd=tmp_path)
    assert r.returncode == 1 and "graded with another reward" in one_error_line(r.stderr)
    assert len(read_jsonl(out)) == 4


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("{type: similarity, mapper: {reference_response: ground_truth}}",
         "{type: similarity, pregates: false, mapper: {reference_response: ground_truth}}"),
        ("{type: harmless_offline}", "{type: harmless_offline, low: 0.1}"),
    ],
)  # fmt: skip
def test_the_fingerprint_reads_a_local_model_graders_settings(
    tmp_path: Path, before: str, after: str
) -> None:
    """As above for graders that load a local model, read from the fingerprint the resume
    compares (the end-to-end resume is the test above; a model load per run costs seconds)."""
    from rm_service._config import load_runner
    from rm_service._run_record import reward_fingerprint

    def digest(spec: str) -> str:
        cfg = tmp_path / "r.yaml"
        cfg.write_text(f"graders:\n  g: {spec}\n")
        return reward_fingerprint(load_runner(cfg))

    assert digest(before) != digest(after)
    assert digest(before) == digest(before)


def test_the_fingerprint_names_the_judge_and_not_its_cache(tmp_path: Path) -> None:
    """A resume with another judge model was not refused (the repr said ``model='<lazy>'``),
    and adding a judge cache (how it runs, not what it scores) was."""
    from rm_service._config import load_runner
    from rm_service._run_record import reward_fingerprint

    def digest(judge: str, cache: str = "") -> str:
        cfg = tmp_path / "j.yaml"
        cfg.write_text(
            f"judge: {{base_url: 'http://127.0.0.1:9/v1', model: {judge}}}\n{cache}"
            "graders:\n  relevance: {type: relevance}\n"
        )
        return reward_fingerprint(load_runner(cfg))

    assert digest("judge-a") != digest("judge-b")
    assert digest("judge-a") == digest("judge-a", f"cache: {{path: {tmp_path / 'c.db'}}}\n")


def test_resume_keeps_going_when_only_how_it_runs_changed(tmp_path: Path, rules: Path) -> None:
    """What says how a reward runs (concurrency, a math worker pool) is not the reward."""
    rows = [record(i, ground_truth=str(i)) for i in range(4)]
    src = write_jsonl(tmp_path / "in.jsonl", rows[:2])
    out = tmp_path / "out.jsonl"
    cfg = tmp_path / "m.yaml"
    mapper = "mapper: {reference_response: ground_truth}"
    cfg.write_text(f"graders:\n  m: {{type: math, workers: 1, {mapper}}}\n")
    assert cli("grade", src, "-c", cfg, "-o", out, cwd=tmp_path).returncode == 0
    write_jsonl(src, rows)
    cfg.write_text(f"max_concurrency: 8\ngraders:\n  m: {{type: math, workers: 2, {mapper}}}\n")
    r = cli("grade", src, "-c", cfg, "-o", out, "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(row["line"] for row in read_jsonl(out)) == [1, 2, 3, 4]


def test_a_run_record_from_before_settings_counted_still_resumes(
    tmp_path: Path, rules: Path
) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(2)])
    out = tmp_path / "out.jsonl"
    assert cli("grade", src, "-c", rules, "-o", out, cwd=tmp_path).returncode == 0
    write_jsonl(src, [record(i) for i in range(4)])
    from rm_service._config import load_runner
    from rm_service._run_record import reward_fingerprint

    run = tmp_path / "out.jsonl.run.json"
    old = json.loads(run.read_text())
    del old["fingerprint"]
    old["reward"] = reward_fingerprint(load_runner(rules), settings=False)
    run.write_text(json.dumps(old))
    r = cli("grade", src, "-c", rules, "-o", out, "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_parquet_resume_refuses_rows_that_moved(tmp_path: Path, rules: Path) -> None:
    """The run record held no digest of a Parquet file's rows: with rows inserted at the top,
    a resume labelled new rows with old results, skipped some and graded others twice."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    src, out = tmp_path / "in.parquet", tmp_path / "out.jsonl"
    pq.write_table(pa.Table.from_pylist([record(i) for i in range(3)]), src)
    assert cli("grade", src, "-c", rules, "-o", out, cwd=tmp_path).returncode == 0
    pq.write_table(pa.Table.from_pylist([record(9), *(record(i) for i in range(3))]), src)
    r = cli("grade", src, "-c", rules, "-o", out, "--resume", cwd=tmp_path)
    assert r.returncode == 1 and "row 1 of" in one_error_line(r.stderr)
    assert sorted(row["id"] for row in read_jsonl(out)) == [0, 1, 2]  # untouched


def test_resume_through_a_symbolic_link_checks_the_reward(tmp_path: Path, rules: Path) -> None:
    """The run record was looked for beside the link's name, found missing, and the resume
    mixed two rewards in the file the link points to."""
    src = write_jsonl(tmp_path / "in.jsonl", [record(i) for i in range(2)])
    real, link = tmp_path / "out.jsonl", tmp_path / "link.jsonl"
    assert cli("grade", src, "-c", rules, "-o", real, cwd=tmp_path).returncode == 0
    write_jsonl(src, [record(i) for i in range(4)])
    link.symlink_to(real)
    other = tmp_path / "other.yaml"
    other.write_text("graders:\n  length: {type: length_penalty, max_len: 10, buffer: 10}\n")
    r = cli("grade", src, "-c", other, "-o", link, "--resume", cwd=tmp_path)
    assert r.returncode == 1 and "graded with another reward" in one_error_line(r.stderr)


def test_the_report_or_output_is_never_written_over_the_config(tmp_path: Path, rules: Path) -> None:
    """``grade --report CONFIG`` replaced the reward config with the HTML report (``audit``
    refused the same thing)."""
    src = write_jsonl(tmp_path / "in.jsonl", [record(0)])
    before = rules.read_text()
    for extra in (
        ("--report", rules),
        ("-o", rules, "--overwrite"),
        ("--skip-invalid", "--errors", rules, "--overwrite"),
    ):
        args = ("grade", src, "-c", rules, *extra)
        if "-o" not in extra:
            args += ("-o", tmp_path / "out.jsonl")
        r = cli(*args, cwd=tmp_path)
        assert r.returncode == 1 and "is the same file as the config" in one_error_line(r.stderr)
        assert rules.read_text() == before


def test_a_run_that_scores_no_record_exits_4(tmp_path: Path, rules: Path) -> None:
    """Every record unscored (here no gold answer can be read) or every line invalid exited 0,
    so ``rm-service grade ... && train`` went on with an output holding no reward."""
    src = write_jsonl(tmp_path / "in.jsonl", [record(i, ground_truth="none") for i in range(3)])
    cfg = tmp_path / "n.yaml"
    cfg.write_text("graders:\n  n: {type: number, mapper: {reference_response: ground_truth}}\n")
    r = cli("grade", src, "-c", cfg, "-o", tmp_path / "o.jsonl", cwd=tmp_path)
    assert r.returncode == 4, r.stderr
    assert "no record got a reward: every record is unscored" in r.stderr
    assert len(read_jsonl(tmp_path / "o.jsonl")) == 3  # the output is still complete
    bad = write_jsonl(tmp_path / "bad.jsonl", ["not json", "[1]"])
    r = cli("grade", bad, "-c", rules, "-o", tmp_path / "b.jsonl", "--skip-invalid", cwd=tmp_path)
    assert r.returncode == 4 and "every line is invalid" in r.stderr
    one = write_jsonl(
        tmp_path / "one.jsonl", [record(0, ground_truth="none"), record(1, ground_truth="1")]
    )
    r = cli("grade", one, "-c", cfg, "-o", tmp_path / "one_out.jsonl", cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # one reward is a reward


class _Lazy:
    """A user's grader with a property that raises until loaded, and a part pointing back."""

    name = "lazy"
    required_fields = ("response",)
    optional_fields = ()

    def __init__(self) -> None:
        self.threshold = 0.5
        self.me = self

    @property
    def check(self) -> object:
        raise RuntimeError("model not loaded yet")


def test_the_fingerprint_never_fails_on_a_users_grader() -> None:
    """A runtime protocol check read a raising property, and two objects holding each other
    recursed without end: ``grade`` failed with a traceback before grading."""
    from rm_service._run_record import _safe_settings

    first = _safe_settings(_Lazy())
    assert first == _safe_settings(_Lazy()) and first["threshold"] == 0.5


class _Shouting:
    """A user's pre-gate: its threshold is the reward's."""

    name = "shouting"

    def __init__(self, share: float) -> None:
        self.share = share

    def check(self, response: str, fields: object) -> str | None:
        caps = sum(c.isupper() for c in response)
        return "shouting" if caps > self.share * max(1, len(response)) else None


def test_a_users_gate_counts_in_the_fingerprint() -> None:
    from graders import RelevanceGrader
    from rm_service import GraderConfig, GradingRunner
    from rm_service._run_record import reward_fingerprint
    from tests.support import FakeJudge

    def digest(*gates: object) -> str:
        grader = RelevanceGrader(FakeJudge(), pregates=list(gates))
        return reward_fingerprint(GradingRunner({"r": GraderConfig(grader=grader)}))

    assert len({digest(), digest(_Shouting(0.5)), digest(_Shouting(0.9))}) == 3
