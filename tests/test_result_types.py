"""The result types' constructors: the engine's fast one builds what validation builds."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from rm_service._result import GraderScore, new_score


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "a", "score": 0.5, "reason": "ok"},
        {"name": "a", "score": 0.0, "reason": ""},
        {"name": "a", "score": 1.0, "reason": "x", "metadata": {"k": [1, 2]}},
        {"name": "a", "score": 1.0, "reason": "x", "metadata": {}},
    ],
)
def test_new_score_is_the_validated_score(kwargs: dict[str, Any]) -> None:
    fast = new_score(**kwargs)
    slow = GraderScore(**kwargs)
    assert type(fast) is GraderScore
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_dump(exclude_unset=True) == slow.model_dump(exclude_unset=True)
    assert fast.model_dump_json() == slow.model_dump_json()
    assert repr(fast) == repr(slow)
    copy = fast.model_copy(update={"reason": "changed"})
    assert copy.reason == "changed" and fast.reason == kwargs["reason"]
    with pytest.raises(ValidationError):
        fast.score = 0.1  # frozen, as a validated one


@pytest.mark.parametrize("bad", [1.5, -0.1, math.nan, math.inf, "0.5", True])
def test_new_score_refuses_what_the_model_refuses(bad: Any) -> None:
    with pytest.raises(ValidationError):
        GraderScore(name="a", score=bad)
    with pytest.raises(ValidationError):
        new_score("a", bad)


def test_new_score_takes_what_the_model_converts_through_the_model() -> None:
    assert new_score("a", 1).score == 1.0 and type(new_score("a", 1).score) is float
    assert new_score("a", 0.5, metadata={"n": 1}).metadata == {"n": 1}
