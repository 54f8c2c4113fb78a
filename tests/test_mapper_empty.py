"""An empty mapper dict maps no field: the grader gets the record as is, not a MappingError."""

from __future__ import annotations

from rm_service._mapper import GraderConfig


def _grade(response: str) -> float:
    return 1.0


def test_empty_mapper_dict_passes_the_record() -> None:
    cfg = GraderConfig(grader=_grade, mapper={})
    assert cfg.fields({"response": "x", "id": 3}, index=0) == {"response": "x", "id": 3}
