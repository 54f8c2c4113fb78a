"""Mapper paths: compile, resolve, merge over the record, and fail loudly."""

from __future__ import annotations

import pytest

from rm_service import ConfigError, GraderConfig, MappingError
from rm_service._mapper import compile_path, resolve_path
from tests.support import has_digit


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("a", ("a",)),
        ("a.b.c", ("a", "b", "c")),
        ("choices[0].message.content", ("choices", 0, "message", "content")),
        ("m[-1]", ("m", -1)),
        ("grid[1][2]", ("grid", 1, 2)),
    ],
)
def test_compile_path(path: str, steps: tuple) -> None:
    assert compile_path(path) == steps


@pytest.mark.parametrize("bad", ["", "a..b", "a[x]", "a[0]b", "a.", "a[", "a]"])
def test_malformed_paths_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        compile_path(bad)


def test_resolve_reports_the_failing_step() -> None:
    rec = {"choices": [{"message": {"content": "hi"}}]}
    assert resolve_path(rec, compile_path("choices[0].message.content")) == "hi"
    assert resolve_path(rec, compile_path("choices[-1].message")) == {"content": "hi"}
    with pytest.raises(LookupError, match=r"index \[3\] out of range: choices has 1 item"):
        resolve_path(rec, compile_path("choices[3]"))
    with pytest.raises(LookupError, match=r"key 'msg' not found in choices\[0\] \(has: message\)"):
        resolve_path(rec, compile_path("choices[0].msg"))
    with pytest.raises(LookupError, match="choices is a list, not an object"):
        resolve_path(rec, compile_path("choices.x"))


def test_dict_mapper_merges_over_the_record() -> None:
    cfg = GraderConfig(has_digit, mapper={"response": "out.text", "reference_response": "gt"})
    fields = cfg.fields({"out": {"text": "r"}, "gt": "7", "query": "q"}, 0)
    # mapped fields are laid over the record; unmapped ones (query, out, gt) pass through
    assert fields == {
        "out": {"text": "r"},
        "gt": "7",
        "query": "q",
        "response": "r",
        "reference_response": "7",
    }


def test_null_value_is_kept_not_confused_with_missing_path() -> None:
    cfg = GraderConfig(has_digit, mapper={"response": "a"})
    assert cfg.fields({"a": None})["response"] is None  # present but null: the grader decides
    with pytest.raises(MappingError, match="record 4: mapper path 'a'"):
        cfg.fields({"b": 1}, 4)


def test_callable_mapper_and_its_failures() -> None:
    cfg = GraderConfig(has_digit, mapper=lambda r: {"response": r["messages"][-1]["content"]})
    assert cfg.fields({"messages": [{"content": "x9"}]}, 0)["response"] == "x9"
    with pytest.raises(MappingError, match="record 2: mapper raised KeyError"):
        cfg.fields({}, 2)
    bad = GraderConfig(has_digit, mapper=lambda r: ["not", "a", "dict"])
    with pytest.raises(MappingError, match="returned list"):
        bad.fields({}, 0)


def test_record_that_is_not_an_object() -> None:
    with pytest.raises(MappingError, match="record 3: record is a list"):
        GraderConfig(has_digit).fields([1, 2], 3)


def test_create_accepts_openjudge_shapes() -> None:
    assert GraderConfig.create(has_digit).grader.name == "has_digit"
    pair = GraderConfig.create((has_digit, {"response": "a"}))
    assert pair.mapper == {"response": "a"}
    d = GraderConfig.create({"grader": has_digit, "mapper": {"response": "a"}})
    assert d.mapper == {"response": "a"}
    with pytest.raises(ConfigError, match="bad grader config"):
        GraderConfig.create({"grader": has_digit, "mappr": {}})
    with pytest.raises(ConfigError, match="not a grader"):
        GraderConfig(grader=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="call_timeout"):
        GraderConfig(has_digit, call_timeout=0)
