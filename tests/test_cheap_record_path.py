"""Issue 14, item 3: the per-record path builds some results without validating them again.

What the engine builds from values it has already checked (an aggregate's score, a record's
result) must be indistinguishable from the validated model: equal, the same fields set, the same
dumps, pickles and copies; and where a value was not checked (an aggregator's own reason or
metadata), validation still answers.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Mapping
from typing import Any

import pytest

from aggregators import MinAggregator, WeightedSumAggregator
from aggregators._base import BaseAggregator
from rm_service._call import named
from rm_service._result import GraderError, GraderScore, RecordResult, assembled
from rm_service._runner import GradingRunner
from rm_service._wire import record_json


def _same(built: Any, validated: Any) -> None:
    assert type(built) is type(validated)
    assert built == validated
    assert built.model_fields_set == validated.model_fields_set
    assert built.model_dump_json() == validated.model_dump_json()
    assert repr(built) == repr(validated)
    assert pickle.loads(pickle.dumps(built)) == validated
    assert copy.deepcopy(built) == validated
    assert built.model_copy(update={"name": "x"}).name == "x"


def test_assembled_score_is_the_validated_one() -> None:
    fields: dict[str, Any] = {
        "name": "r",
        "score": 0.5,
        "reason": "why",
        "metadata": {"skipped": ["a"]},
    }
    built = assembled(GraderScore, dict(fields))
    _same(built, GraderScore(**fields))
    with pytest.raises(ValueError, match="frozen"):
        built.score = 2.0


def test_assembled_record_is_the_validated_one() -> None:
    comps = {"a": GraderScore(name="a", score=1.0), "b": GraderError(name="b", error="e")}
    fields: dict[str, Any] = {"index": 3, "id": {"k": 1}, "reward_name": "a", "components": comps}
    built = assembled(RecordResult, dict(fields))
    validated = RecordResult(**fields)
    assert built == validated
    assert built.model_fields_set == validated.model_fields_set
    assert built.model_dump_json() == validated.model_dump_json()
    assert pickle.loads(pickle.dumps(built)) == validated
    assert (built.reward, built.status, built.errors) == (1.0, "ok", validated.errors)


def _noop(response: str) -> float:
    return 1.0


def _third(response: str) -> float:
    return 1 / 3


def _async_free_runner() -> GradingRunner:
    return GradingRunner(
        {"a": _noop, "b": _third, "c": _noop},
        [WeightedSumAggregator("ws", {"a": 1, "b": 2}), MinAggregator("reward", ["ws", "c"])],
    )


def test_runner_records_match_validated_ones() -> None:
    runner = _async_free_runner()
    records = [{"id": i, "response": "x"} for i in range(3)]
    for rec in runner.grade(records):
        again = RecordResult(
            index=rec.index, id=rec.id, reward_name=rec.reward_name, components=rec.components
        )
        assert list(rec.components) == runner.names  # config order
        assert rec == again
        assert rec.model_fields_set == again.model_fields_set
        assert rec.model_dump_json() == again.model_dump_json()
        for comp in rec.components.values():
            assert isinstance(comp, GraderScore)
            fresh = GraderScore(**comp.model_dump())
            assert comp == fresh
            assert comp.model_fields_set <= fresh.model_fields_set


class _Reasoned(BaseAggregator):
    """Returns what the test sets: the validated path must still see what it does not trust."""

    def __init__(self, name: str, out: Any) -> None:
        super().__init__(name, components=["a"])
        self.out = out

    def combine(self, values: Mapping[str, float]) -> Any:
        return self.out


def test_aggregate_not_trusted_where_unchecked() -> None:
    results = {"a": GraderScore(name="a", score=1.0)}
    ok = _Reasoned("r", (0.4, "fine"))(results)
    assert ok == GraderScore(name="r", score=0.4, reason="fine")
    assert ok.model_fields_set == {"name", "score", "reason", "metadata"}
    extra = _Reasoned("r", (0.4, "fine", {"k": 1}))(results)
    assert extra == GraderScore(name="r", score=0.4, reason="fine", metadata={"k": 1})
    with pytest.raises(ValueError, match="valid string"):  # a reason that is no str
        _Reasoned("r", (0.4, 5))(results)
    with pytest.raises(ValueError, match="valid string"):  # metadata keyed by no str
        _Reasoned("r", (0.4, "x", {1: 2}))(results)
    nan = _Reasoned("r", float("nan"))(results)
    assert isinstance(nan, GraderError) and nan.kind == "internal"


def test_named_fast_path_still_checks() -> None:
    good = GraderScore(name="g", score=0.5)
    assert named("g", good) is good
    assert named("h", good).name == "h"
    copied = good.model_copy(update={"score": 1.5})
    out = named("g", copied)
    assert isinstance(out, GraderError) and "model_copy" in out.error
    assert isinstance(named("g", 0.5), GraderError)


def test_record_json_reads_reward_status_and_usage() -> None:
    usage = {"usage": {"prompt_tokens": 4, "completion_tokens": 2}}
    comps: dict[str, GraderScore | GraderError] = {
        "j": GraderScore(name="j", score=0.5, metadata=usage),
        "k": GraderScore(name="k", score=1.0, metadata={**usage, "cached": True}),
        "m": GraderError(name="m", error="record 0: no field", kind="invalid_input"),
        "reward": GraderError(
            name="reward",
            error="unscored",
            kind="timeout",
            metadata={"unscored_components": {"m": "invalid_input"}},
        ),
    }
    rec = RecordResult(index=0, reward_name="reward", components=comps)
    out = record_json(rec, line=7)
    assert out["reward"] is None and out["status"] == rec.status == "error"
    assert out["usage"] == {
        "calls": 1,
        "cached_calls": 1,
        "prompt_tokens": 4,
        "completion_tokens": 2,
    }
    assert list(out["metadata"]) == ["j", "k", "reward"]
    assert out["errors"]["m"]["error"] == "line 7: no field"
    assert out["id"] == 7
    assert record_json(rec, metadata=False)["metadata"] == {}
    scored = RecordResult(index=1, reward_name="j", components=comps)
    assert (record_json(scored)["reward"], record_json(scored)["status"]) == (0.5, "ok")
    nameless = RecordResult(index=1, components=comps)
    assert (record_json(nameless)["reward"], record_json(nameless)["status"]) == (
        None,
        nameless.status,
    )
