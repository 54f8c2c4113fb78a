"""The local engine reads Parquet and saved ``datasets`` as it reads JSONL: the same lines out
(``line`` is the 1-based row), resume keyed on the row, errors naming "FILE row N"."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rm_service import InputError, MappingError, grade_file
from rm_service._config import load_runner
from rm_service._readers import detect_format, iter_parquet, iter_saved_dataset
from tests.cli_support import ROOT, cli, env, one_error_line, read_jsonl, write_jsonl

EXAMPLES = ROOT / "examples"
RULES = EXAMPLES / "rules.yaml"


def sample() -> list[dict[str, Any]]:
    return read_jsonl(EXAMPLES / "math_sample.jsonl")


def graded(src: Path, out: Path, cfg: Path = RULES, **kw: Any) -> list[dict[str, Any]]:
    grade_file(load_runner(cfg), src, out, progress=False, **kw)
    return sorted(read_jsonl(out), key=lambda r: r["line"])


@pytest.fixture(scope="module")
def jsonl_lines(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("jsonl")
    return graded(EXAMPLES / "math_sample.jsonl", tmp / "out.jsonl")


def test_parquet_grades_to_the_lines_jsonl_gives(
    tmp_path: Path, jsonl_lines: list[dict[str, Any]]
) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(sample()), src, row_group_size=5)  # several groups
    assert graded(src, tmp_path / "out.jsonl") == jsonl_lines


def test_saved_dataset_grades_to_the_lines_jsonl_gives(
    tmp_path: Path, jsonl_lines: list[dict[str, Any]]
) -> None:
    datasets = pytest.importorskip("datasets")
    saved = tmp_path / "saved"
    datasets.Dataset.from_list(sample()).save_to_disk(str(saved), num_shards=3)
    assert detect_format(saved) == "datasets"
    assert graded(saved, tmp_path / "out.jsonl") == jsonl_lines  # rows numbered across shards


def test_the_cli_grades_parquet(tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(sample()), src)
    r = cli("grade", src, "-c", RULES, "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(read_jsonl(tmp_path / "in.graded.jsonl")) == 32
    assert "records: 32" in r.stdout


def test_parquet_resume_skips_rows_already_in_the_output(tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(sample()), src)
    out = tmp_path / "out.jsonl"
    first = graded(src, out)
    write_jsonl(out, [r for r in first if r["line"] % 2])  # as if killed half-way
    grade_file(load_runner(RULES), src, out, progress=False, resume=True)
    lines = sorted(r["line"] for r in read_jsonl(out))
    assert lines == list(range(1, 33))  # every row once


def test_a_record_that_does_not_fit_names_the_parquet_row(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "ground_truth"} for r in sample()[:3]]
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    with pytest.raises(MappingError, match=r"in\.parquet row 1: .*ground_truth"):
        graded(src, tmp_path / "out.jsonl")


def test_parquet_values_json_cannot_hold_become_text(tmp_path: Path) -> None:
    src = tmp_path / "odd.parquet"
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    table = pa.table({"id": [7], "blob": [b"caf\xc3\xa9"], "when": [when], "tags": [["a", "b"]]})
    pq.write_table(table, src)
    [(row, rec)] = list(iter_parquet(src))
    assert row == 1
    assert rec == {"id": 7, "blob": "café", "when": "2026-01-02T03:04:05", "tags": ["a", "b"]}
    json.dumps(rec)  # a record a JSONL line could be


def test_a_map_with_a_duplicate_key_names_its_row(tmp_path: Path) -> None:
    """A map column holding a key twice (valid Parquet) failed the run with pyarrow's bare
    KeyError as a traceback, naming no row; the rows before its batch were graded."""
    rows = sample()[:3]
    src = tmp_path / "dup.parquet"
    tags = pa.array(
        [[("k", 1)], [("k", 1)], [("k", 2), ("k", 3)]], pa.map_(pa.string(), pa.int64())
    )
    table = pa.Table.from_pylist(rows).append_column("tags", tags)
    pq.write_table(table, src)
    with pytest.raises(InputError, match=r"dup\.parquet row 3: a map column holds a key twice"):
        list(iter_parquet(src))
    r = cli("grade", src, "-c", RULES, "-o", tmp_path / "out.jsonl", "--no-progress", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "dup.parquet row 3: a map column holds a key twice" in one_error_line(r.stderr)


def test_unreadable_inputs_are_input_errors_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(InputError, match=r"bad\.parquet: not a readable Parquet file"):
        list(iter_parquet(bad))
    plain_dir = tmp_path / "dir"
    plain_dir.mkdir()
    with pytest.raises(InputError, match="not a dataset saved with datasets' save_to_disk"):
        detect_format(plain_dir)
    r = cli("grade", bad, "-c", RULES, "--no-progress", cwd=tmp_path)
    assert r.returncode == 1
    assert "bad.parquet: not a readable Parquet file" in one_error_line(r.stderr)


def test_a_saved_dataset_dict_asks_for_one_split(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    d = datasets.Dataset.from_list(sample()[:2])
    datasets.DatasetDict({"train": d, "test": d}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(InputError, match=r"several splits.*train"):
        list(iter_saved_dataset(tmp_path / "dd"))
    # From the command line too: it said the directory was no saved dataset ("no state.json").
    r = cli("grade", tmp_path / "dd", "-c", RULES, "--no-progress", cwd=tmp_path)
    assert r.returncode == 1
    assert "holds several splits (train, test); pass one split's directory" in one_error_line(
        r.stderr
    )


@pytest.mark.parametrize("name", ["in.csv", "in.TSV", "in.xlsx"])
def test_a_table_format_is_named_not_read_as_jsonl(tmp_path: Path, name: str) -> None:
    """A CSV was read as JSONL: "line 1: invalid record: Expecting value at character 1", and
    with --skip-invalid every line went to the errors file and the run exited 4."""
    src = tmp_path / name
    src.write_text("query,response\nq,a\n")
    with pytest.raises(InputError, match=r"files are not read; give JSONL"):
        detect_format(src)
    r = cli("grade", src, "-c", RULES, "--no-progress", "--skip-invalid", cwd=tmp_path)
    assert r.returncode == 1
    assert "files are not read; give JSONL" in one_error_line(r.stderr)


def test_without_pyarrow_parquet_input_says_what_to_install(tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(sample()[:1]), src)
    code = (
        "import sys; sys.modules['pyarrow'] = None; from rm_service.cli import main; "
        f"sys.exit(main(['grade', {str(src)!r}, '-c', {str(RULES)!r}, '--no-progress']))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env(), capture_output=True, text=True
    )
    assert r.returncode == 1
    assert "needs pyarrow (pip install pyarrow" in one_error_line(r.stderr)
