"""One record wire format: a file graded offline, a ``/grade`` response and a remote reward
function read the same record the same way, with one status vocabulary and one summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from rm_service import (
    GraderError,
    GraderScore,
    RecordResult,
    agrade_file,
    build_runner,
    grade_file,
    load_config,
    record_from_json,
    record_json,
    summarize_jsonl,
)
from rm_service.app import create_app
from rm_service.integrations._backend import LocalBackend, RemoteBackend
from tests.support import serve_in_thread

CONFIG: dict[str, Any] = {
    "graders": {
        "num": {"type": "number", "mapper": {"reference_response": "ground_truth"}},
        "short": {"type": "tests.support:short_or_unscored"},
    },
    "aggregators": [{"type": "weighted_sum", "name": "reward", "weights": {"num": 1, "short": 1}}],
}
RECORDS: list[dict[str, Any]] = [
    {"id": "ok", "response": "12", "ground_truth": "12"},  # ok, with metadata
    {"id": "bad", "ground_truth": "3"},  # no response: the record's own fault -> error
    {"id": "down", "response": "FAIL 7", "ground_truth": "7"},  # judge_error -> unscored
]


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A wire record without what legitimately differs between faces: the file's ``line`` and
    the error texts (a file names the line, a request the record's index)."""
    out = {k: v for k, v in row.items() if k != "line"}
    out["errors"] = {k: v["kind"] for k, v in row["errors"].items()}
    return out


def test_status_is_one_vocabulary() -> None:
    def rec(*components: GraderScore | GraderError) -> RecordResult:
        return RecordResult(index=0, reward_name="r", components={c.name: c for c in components})

    assert rec(GraderScore(name="r", score=0.5)).status == "ok"
    assert rec(GraderError(name="r", error="slow", kind="timeout")).status == "unscored"
    bad = rec(
        GraderError(name="x", error="no field", kind="invalid_input"),
        GraderError(name="r", error="x unscored", kind="internal"),
    )
    assert bad.status == "error"


def test_the_wire_record_round_trips() -> None:
    rec = RecordResult(
        index=4,
        id="q",
        reward_name="r",
        components={
            "a": GraderScore(name="a", score=0.25, reason="why", metadata={"k": [1, "x"]}),
            "b": GraderError(name="b", error="slow", kind="timeout", metadata={"t": 1.5}),
            "r": GraderError(name="r", error="b unscored", kind="internal"),
        },
    )
    row = json.loads(json.dumps(record_json(rec)))
    assert record_from_json(row, 4, "r") == rec
    assert row["status"] == "unscored" and row["reward"] is None
    assert row["usage"] == {
        "calls": 0,
        "cached_calls": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
    }
    assert record_json(rec, metadata=False)["metadata"] == {}


def test_a_foreign_error_kind_is_read_as_internal_not_dropped() -> None:
    row = {"id": 1, "scores": {"r": None}, "errors": {"r": {"kind": "martian", "error": "?"}}}
    got = record_from_json(row, 0, "r").components["r"]
    assert isinstance(got, GraderError) and (got.kind, got.error) == ("internal", "?")


async def test_file_grade_and_remote_backend_read_a_record_the_same_way(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    out = tmp_path / "out.jsonl"
    await agrade_file(build_runner(load_config(CONFIG)), src, out, progress=False)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["status"] for r in lines] == ["ok", "error", "unscored"]
    assert lines[0]["metadata"]["num"]["response_value"] == 12

    local = await LocalBackend(CONFIG).agrade(RECORDS)
    with serve_in_thread(create_app(CONFIG)) as url:
        async with httpx.AsyncClient() as client:
            resp = await client.post(
                f"{url}/grade", json={"records": RECORDS, "include_metadata": True}
            )
            plain = await client.post(f"{url}/grade", json={"records": RECORDS})
        remote = await RemoteBackend(url).agrade(RECORDS)
    body = resp.json()

    # The same shape and the same values in a file line and in a /grade result.
    assert [_comparable(r) for r in body["results"]] == [_comparable(r) for r in lines]
    # Metadata only when asked for: the default response carries none.
    assert all(r["metadata"] == {} for r in plain.json()["results"])
    # A remote reward function gets exactly what an in-process one does, metadata included.
    assert remote == local
    # One summariser: /grade's summary is the file's summary.
    summary = {k: v for k, v in body["summary"].items() if k != "latency_s"}
    with out.open() as f:
        assert summarize_jsonl(f, "reward").to_json() == summary
    assert (summary["ok"], summary["unscored"], summary["error"]) == (1, 1, 1)
    assert summary["unscored_records_by_kind"] == {"invalid_input": 1, "judge_error": 1}


def test_the_offline_table_counts_invalid_input_apart(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    out = tmp_path / "out.jsonl"
    result = grade_file(build_runner(load_config(CONFIG)), src, out, progress=False)
    assert "records: 3, reward scored: 1, unscored: 2 (1 for invalid input)" in (
        result.summary.table()
    )
    assert result.summary.error == 1


@pytest.mark.parametrize("status", ["ok", "unscored", "error"])
def test_the_documented_record_model_accepts_every_status(status: str) -> None:
    from rm_service._http_schemas import RecordOut

    components: dict[str, GraderScore | GraderError] = {
        "ok": {"r": GraderScore(name="r", score=1.0)},
        "unscored": {"r": GraderError(name="r", error="t", kind="timeout")},
        "error": {"r": GraderError(name="r", error="f", kind="invalid_input")},
    }[status]  # type: ignore[assignment]
    row = record_json(RecordResult(index=0, reward_name="r", components=components))
    assert RecordOut.model_validate(row).model_dump(mode="json") == row
