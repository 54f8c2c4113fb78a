"""The ``/grade`` summary counts records and components under names that say which
(``"unscored": 0`` once stood beside ``"unscored_by_kind": {"invalid_input": 2}``, the first
counting records by status and the second counting components)."""

from __future__ import annotations

from typing import Any

from aggregators import WeightedSumAggregator
from graders import BaseGrader, Unscored
from rm_service import GradingRunner
from tests.app import client, make_app


class _Fails(BaseGrader):
    """0.5, or unscored with the kind named in the record's ``fail`` field."""

    optional_fields = ("fail",)

    async def _aevaluate(self, **fields: Any) -> float:
        if fields.get("fail"):
            raise Unscored(f"failed: {fields['fail']}", kind=fields["fail"])
        return 0.5


def _runner() -> GradingRunner:
    return GradingRunner(
        {"a": _Fails(name="a"), "b": _Fails(name="b")},
        aggregators=WeightedSumAggregator("reward", {"a": 0.5, "b": 0.5}),
    )


async def test_summary_counts_records_and_components_unambiguously() -> None:
    records = [
        {"id": "ok", "response": "x"},
        {"id": "bad", "response": "x", "fail": "invalid_input"},
        {"id": "late", "response": "x", "fail": "timeout"},
        {"id": "late2", "response": "x", "fail": "timeout"},
    ]
    async with client(make_app({"r": _runner()})) as c:
        body = (await c.post("/grade", json={"records": records})).json()
    summary = body["summary"]
    assert [r["status"] for r in body["results"]] == ["ok", "error", "unscored", "unscored"]
    # records, by status (as in each record's "status"): they add up to n
    assert (summary["n"], summary["ok"], summary["unscored"], summary["error"]) == (4, 1, 2, 1)
    # records with no reward, by the kind that left it unscored: adds up to unscored + error
    assert summary["unscored_records_by_kind"] == {"invalid_input": 1, "timeout": 2}
    # components (graders a, b and the aggregate reward), by kind
    assert summary["unscored_components_by_kind"] == {"invalid_input": 3, "timeout": 6}
    assert summary["unscored_by_kind"] == summary["unscored_components_by_kind"]  # kept, deprecated


async def test_a_record_with_invalid_input_counts_as_invalid_input_whatever_else_failed() -> None:
    """Status ``error`` (any invalid input) and the record's kind agree, even when the reward's
    own error names another component's kind first."""
    records = [{"response": "x", "fail": "timeout"}]
    runner = GradingRunner(
        {"a": _Fails(name="a"), "b": BaseGraderNeedsLabel(name="b")},
        aggregators=WeightedSumAggregator("reward", {"a": 0.5, "b": 0.5}),
    )
    async with client(make_app({"r": runner})) as c:
        summary = (await c.post("/grade", json={"records": records})).json()["summary"]
    assert summary["error"] == 1
    assert summary["unscored_records_by_kind"] == {"invalid_input": 1}


class BaseGraderNeedsLabel(BaseGrader):
    required_fields = ("response", "label")

    async def _aevaluate(self, **fields: Any) -> float:
        return 1.0


async def test_the_schema_documents_the_counts() -> None:
    async with client(make_app({"r": _runner()})) as c:
        schema = (await c.get("/openapi.json")).json()
    props = schema["components"]["schemas"]["GradeSummary"]["properties"]
    assert "records" in props["unscored"]["description"]
    assert "component" in props["unscored_components_by_kind"]["description"]
    assert "record" in props["unscored_records_by_kind"]["description"]
    assert props["unscored_by_kind"].get("deprecated") is True
