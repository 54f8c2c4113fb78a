"""``--engine ray`` resume never mixes two inputs in one output.

``x.jsonl``, ``x.json`` and ``x.parquet`` all grade into ``x.graded.parquet`` by default. The
second one was refused with "pass --resume", and ``--resume`` then graded ``x.json``'s rows into
``x.jsonl``'s output (two datasets in one), or, for ``b/data.jsonl`` after ``a/data.jsonl``
(the same shard name, so the same ``data.jsonl:LINE`` keys), skipped every record as done. The
run record now keeps the input's shards (names, and the first one's first rows) and a resume
from another input is refused, naming both; a refusal suggests ``--resume`` only where resuming
would be accepted.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from rm_service._exceptions import InputError
from tests.cli_support import ROOT, read_jsonl, write_jsonl
from tests.ray.conftest import RayInstance

EXAMPLES = ROOT / "examples"
RULES = str(EXAMPLES / "rules.yaml")

if TYPE_CHECKING:
    from rm_service._run_record import ShardedInput

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


def _rows(n: int, start: int = 0, prefix: str = "r") -> list[dict[str, Any]]:
    base = read_jsonl(EXAMPLES / "math_sample.jsonl")
    return [{**base[i], "id": f"{prefix}{i}"} for i in range(start, start + n)]


def _sources(out: Path) -> Counter[str]:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    return Counter(r["source"] for r in pq.read_table(out, columns=["source"]).to_pylist())


def test_a_ray_resume_from_another_input_is_refused_and_the_output_kept(
    tmp_path: Path, ray_instance: RayInstance
) -> None:
    from rm_service.integrations._ray_cli import default_output, grade_with_ray

    write_jsonl(tmp_path / "x.jsonl", _rows(3))
    write_jsonl(tmp_path / "x.json", _rows(3, start=3, prefix="other"))
    out = Path(default_output(str(tmp_path / "x.json")))
    assert out == tmp_path / "x.graded.parquet"  # the names meet: the check is what guards it
    first = grade_with_ray(RULES, str(tmp_path / "x.jsonl"), progress=False, workers=1)
    assert Path(first.output) == out and first.graded == 3
    for resume in (True, False):  # resuming mixed x.json in; without, the advice was --resume
        with pytest.raises(InputError) as err:
            grade_with_ray(RULES, str(tmp_path / "x.json"), resume=resume, progress=False)
        text = str(err.value)
        assert str(tmp_path / "x.jsonl") in text and str(tmp_path / "x.json,") in text
        assert "--resume" not in text and "Pass -o" in text and "--overwrite" in text
    assert _sources(out) == Counter({"x.jsonl": 3})  # nothing mixed in, nothing lost

    # The same shard name from another directory: its keys are the first file's, and its
    # records were all skipped as done.
    for name, rows in (("a", _rows(3)), ("b", _rows(3, start=3, prefix="other"))):
        (tmp_path / name).mkdir()
        write_jsonl(tmp_path / name / "data.jsonl", rows)
    shared = str(tmp_path / "shared.parquet")
    grade_with_ray(RULES, str(tmp_path / "a" / "data.jsonl"), shared, progress=False, workers=1)
    with pytest.raises(InputError, match=r"b/data\.jsonl.*holds other records in data\.jsonl"):
        grade_with_ray(RULES, str(tmp_path / "b" / "data.jsonl"), shared, resume=True)

    # The same input, grown by a shard, still resumes: only the new records are graded.
    write_jsonl(tmp_path / "a" / "more.jsonl", _rows(2, start=6))
    again = grade_with_ray(
        RULES, str(tmp_path / "a"), shared, resume=True, progress=False, workers=1
    )
    assert (again.graded, again.skipped_done) == (2, 3)
    assert _sources(Path(shared)) == Counter({"data.jsonl": 3, "more.jsonl": 2})


def _sharded(uri: str, shards: dict[str, list[str]]) -> ShardedInput:
    from rm_service._run_record import ShardedInput

    return ShardedInput(uri, list(shards), lambda name: (r.encode() for r in shards[name]))


def test_the_run_record_keeps_a_sharded_input_and_refuses_another(tmp_path: Path) -> None:
    from rm_service._run_record import check_run_record, write_run_record
    from rm_service._summary import LineSet

    run = tmp_path / "out.run.json"
    write_run_record(run, None, "f" * 16, sharded=_sharded("in/", {"a.jsonl": ["1", "2"]}))
    assert json.loads(run.read_text())["sharded"]["shards"] == ["a.jsonl"]

    def check(sharded: ShardedInput) -> bool:
        return check_run_record(run, None, "OUT", "f" * 16, LineSet(), sharded=sharded)

    assert check(_sharded("moved/", {"a.jsonl": ["1", "2"], "b.jsonl": ["9"]}))  # grown
    assert check(_sharded("in/", {"a.jsonl": ["1", "2", "3"]}))  # lines added at the end
    with pytest.raises(InputError, match=r"OUT was graded from in/; this input, x/, has no a"):
        check(_sharded("x/", {"b.jsonl": ["1", "2"]}))
    with pytest.raises(InputError, match=r"holds other records in a\.jsonl"):
        check(_sharded("in/", {"a.jsonl": ["2", "1"]}))
    with pytest.raises(InputError, match=r"holds other records in a\.jsonl"):
        check(_sharded("in/", {"a.jsonl": ["1"]}))  # a graded line since removed
    write_run_record(run, None, "f" * 16)  # a record from before inputs were kept: reward only
    assert check(_sharded("x/", {"b.jsonl": ["1"]}))


def test_an_output_without_its_checkpoint_is_not_sent_to_resume(tmp_path: Path) -> None:
    """Refused before Ray starts: the advice was "pass --resume", which then refused too."""
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq

    from rm_service.integrations._ray_cli import grade_with_ray
    from rm_service.integrations.ray import RESULT_SCHEMA

    write_jsonl(tmp_path / "x.jsonl", _rows(1))
    out = tmp_path / "x.graded.parquet"
    out.mkdir()
    row = {f.name: None for f in RESULT_SCHEMA} | {"index": 0, "status": "ok"}
    pq.write_table(pa.Table.from_pylist([row], RESULT_SCHEMA), out / "part-0.parquet")
    with pytest.raises(InputError, match=r"checkpoint .* is gone") as err:
        grade_with_ray(RULES, str(tmp_path / "x.jsonl"), progress=False)
    assert "--resume" not in str(err.value) and "--overwrite" in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == ["part-0.parquet"]  # nothing changed
