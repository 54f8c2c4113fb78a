"""Issue 14, item 3, second pass: a grader's plain score built once, the summary folded a
component at a time, the response encoded with a shared encoder.

Each shortcut must answer what the general path answers: the same score object (equal, the same
fields set, dumps, pickles, the sign of a zero), the same errors for what is not a reward, the
same summary, the same bytes.
"""

from __future__ import annotations

import json
import math
import pickle
import random
from collections import namedtuple
from typing import Any

import numpy as np
import pytest

from graders import FunctionGrader, Unscored
from graders._base import BaseGrader
from rm_service._http_errors import json_response
from rm_service._result import GraderError, GraderScore
from rm_service._summary import ComponentStats, JudgeTotals, RunSummary

Pair = namedtuple("Pair", "score reason")


class _Text(str):
    pass


def _returning(value: Any) -> FunctionGrader:
    def g(response: str) -> Any:
        return value

    return FunctionGrader(g, name="g")


def _same(fast: Any, general: Any) -> None:
    assert type(fast) is type(general)
    assert fast == general
    assert fast.model_fields_set == general.model_fields_set
    assert fast.model_dump_json() == general.model_dump_json()
    assert fast.model_dump(exclude_unset=True) == general.model_dump(exclude_unset=True)
    assert repr(fast) == repr(general)
    assert pickle.loads(pickle.dumps(fast)) == general
    if isinstance(fast, GraderScore):
        assert type(fast.score) is float
        assert math.copysign(1.0, fast.score) == math.copysign(1.0, general.score)


PLAIN = [0.5, 1.0, 0.0, -0.0, 1, 0, 1e-7, (0.25, "why"), (1, ""), (0.75, "réponse ✓")]
ODD = [
    float("nan"),
    float("inf"),
    1.5,
    -0.5,
    2,
    True,
    np.float32(0.5),
    np.float64(0.125),
    "0.5",
    None,
    [0.5],
    (0.5, 3),
    (0.5, _Text("sub")),
    (float("nan"), "r"),
    (True, "r"),
    (0.5, "a", "b"),
    Pair(0.5, "r"),
    GraderError(name="x", error="nope", kind="timeout"),
    GraderScore(name="x", score=0.5, reason="r"),
    GraderScore(name="x", score=0.5).model_copy(update={"score": 1.25}),
]


@pytest.mark.parametrize("out", PLAIN + ODD, ids=repr)
def test_coerce_answers_what_the_general_path_answers(out: Any) -> None:
    grader = _returning(out)
    _same(grader._coerce(out), grader._coerce_other(out))
    _same(grader.evaluate({"response": "r"}), grader._coerce_other(out))


@pytest.mark.parametrize("out", PLAIN, ids=repr)
def test_a_plain_score_is_the_validated_one(out: Any) -> None:
    value, reason = out if isinstance(out, tuple) else (out, "")
    built = _returning(out).evaluate({"response": "r"})
    _same(built, GraderScore(name="g", score=float(value), reason=reason))


@pytest.mark.parametrize(
    "out, error",
    [
        (float("nan"), "grader returned nan, not a score in [0, 1]"),
        (1.5, "grader returned 1.5, not a score in [0, 1]"),
        (-0.5, "grader returned -0.5, not a score in [0, 1]"),
        ("0.5", "grader returned '0.5', not a score in [0, 1]"),
        ((float("inf"), "r"), "grader returned inf, not a score in [0, 1]"),
    ],
)
def test_what_is_no_reward_is_still_an_internal_error(out: Any, error: str) -> None:
    result = _returning(out).evaluate({"response": "r"})
    assert result == GraderError(name="g", error=error, kind="internal")


def test_a_copied_score_out_of_range_is_still_caught() -> None:
    bonus = GraderScore(name="x", score=0.9).model_copy(update={"score": 1.15})
    result = _returning(bonus).evaluate({"response": "r"})
    assert isinstance(result, GraderError) and result.kind == "internal"
    assert "model_copy" in result.error and result.name == "g"


def test_numbers_of_other_types_still_read_as_before() -> None:
    assert _returning(True).evaluate({"response": "r"}) == GraderScore(name="g", score=1.0)
    assert _returning(np.float32(0.5)).evaluate({"response": "r"}) == GraderScore(
        name="g", score=0.5
    )
    assert _returning((0.5, 3)).evaluate({"response": "r"}) == GraderScore(
        name="g", score=0.5, reason="3"
    )


def test_failures_keep_their_names_and_kinds() -> None:
    def raises(response: str) -> float:
        raise ValueError("boom")

    def unscored(response: str) -> float:
        raise Unscored("no gold", kind="invalid_input")

    assert FunctionGrader(raises).evaluate({"response": "r"}) == GraderError(
        name="raises", error="ValueError: boom"
    )
    assert FunctionGrader(unscored).evaluate({"response": "r"}) == GraderError(
        name="unscored", error="no gold", kind="invalid_input"
    )
    missing = FunctionGrader(raises).evaluate({"query": "q"})
    assert isinstance(missing, GraderError) and missing.kind == "invalid_input"


def test_each_score_has_its_own_metadata() -> None:
    grader = _returning(1.0)
    a, b = grader.evaluate({"response": "r"}), grader.evaluate({"response": "r"})
    assert a.metadata == {} and a.metadata is not b.metadata


def test_a_name_not_a_plain_str_is_validated_as_before() -> None:
    grader = _returning(0.5)
    grader.name = _Text("sub")
    _same(grader._coerce(0.5), GraderScore(name=_Text("sub"), score=0.5, reason=""))


async def test_awaited_and_base_graders_take_the_same_path() -> None:
    async def later(response: str) -> tuple[float, str]:
        return 0.5, "why"

    class Rule(BaseGrader):
        async def _aevaluate(self, response: str) -> float:
            return -0.0

    assert await FunctionGrader(later).aevaluate(response="r") == GraderScore(
        name="later", score=0.5, reason="why"
    )
    zero = await Rule().aevaluate(response="r")
    _same(zero, GraderScore(name="Rule", score=-0.0, reason=""))


# --- the summary: a batch folded a component at a time -------------------------------------


def _usage(calls: Any, cached: Any, prompt: Any, completion: Any) -> dict[str, Any]:
    return {
        "calls": calls,
        "cached_calls": cached,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
    }


def _lines(rng: random.Random, n: int, scores: list[Any]) -> list[dict[str, Any]]:
    kinds = ["timeout", "invalid_input", "judge_error", "internal"]
    lines = []
    for i in range(n):
        comps = {name: rng.choice(scores) for name in ("a", "b", "reward")}
        if rng.random() < 0.1:
            comps["late"] = rng.choice(scores)  # a component the summary did not list
        errors = {
            k: {"kind": rng.choice(kinds), "error": "e"} for k, v in comps.items() if v is None
        }
        if rng.random() < 0.2:
            errors["b"] = {"error": "no kind"}
        reward = comps["reward"]
        status = "ok" if reward is not None else rng.choice(["unscored", "error"])
        line: dict[str, Any] = {"index": i, "status": status, "scores": comps, "errors": errors}
        pick = rng.random()
        if pick < 0.3:
            line["usage"] = _usage(1, 0, 7, 2)
        elif pick < 0.5:
            line["usage"] = _usage(0, 0.0, 0, False)
        elif pick < 0.6:  # a line from before records carried usage: read from the metadata
            line["metadata"] = {"a": {"usage": {"prompt_tokens": 3}, "latency_s": 0.25}}
        else:
            line["usage"] = _usage(0, 0, 0, 0)
            line["metadata"] = (
                {"b": {"cached": True, "usage": {}, "latency_s": 0.5}} if pick < 0.7 else {}
            )
        lines.append(line)
    return lines


def _state(s: RunSummary) -> Any:
    comps = {
        n: (c.n, c._sum, c._sq, repr(c.min), repr(c.max), dict(c.unscored), c.hist)
        for n, c in s.components.items()
    }
    return (
        json.dumps(s.to_json(0.5)),
        s.table(),
        comps,
        list(s.components),
        s.judge,
        dict(s.unscored_records),
    )


@pytest.mark.parametrize(
    "scores",
    [
        [None, 0.0, 0.25, 0.5, 1.0, 0.999999, 1e-9],
        [None, -0.0, 0.0, 1, 0.5],  # an int and a negative zero, as a file may hold
        [None, 0.5, 1.5, -2.0, 1e300],  # out of range: a file's line, folded one by one
    ],
)
@pytest.mark.parametrize("seed", range(4))
def test_add_all_is_add_of_each(scores: list[Any], seed: int) -> None:
    lines = _lines(random.Random(seed), 200, scores)
    one, bulk = RunSummary.of(["reward", "b"], "reward"), RunSummary.of(["reward", "b"], "reward")
    for line in lines:
        one.add(line)
    bulk.add_all(lines)
    assert _state(bulk) == _state(one)


def test_add_all_keeps_the_first_of_equal_extremes() -> None:
    one, bulk = ComponentStats("x"), ComponentStats("x")
    for s in (0.0, -0.0, 1, 1.0):
        one.add(s)
    bulk.add_all([0.0, -0.0, 1, 1.0])
    assert (repr(bulk.min), repr(bulk.max)) == (repr(one.min), repr(one.max)) == ("0.0", "1")


def test_a_nan_score_raises_as_before() -> None:
    with pytest.raises(ValueError, match="NaN"):
        ComponentStats("x").add(float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        ComponentStats("x").add_all([0.5, float("nan")])
    with pytest.raises(ValueError, match="NaN"):
        ComponentStats("x").add_all([float("nan"), 0.5])


def test_judge_totals_count_what_they_counted() -> None:
    totals = JudgeTotals()
    totals.add({"usage": _usage(0, 0, 0, 0)})
    totals.add({"usage": _usage(2, 1, 9, 4)})
    judged = {"usage": {"prompt_tokens": 5, "completion_tokens": 1}, "latency_s": 0.5}
    totals.add({"metadata": {"j": judged}})
    totals.add({"usage": None, "metadata": {"j": {"cached": True, "usage": {}, "latency_s": 0.25}}})
    assert totals.usage() == _usage(3, 2, 14, 5)
    assert totals.latency_s == 0.75


# --- the response body ---------------------------------------------------------------------


def _old_body(content: Any) -> bytes:
    from rm_service._wire import plain_json

    try:
        body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        content = plain_json(content)
        body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        return body.encode()
    except UnicodeEncodeError:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "content",
    [
        {"results": [{"id": "é✓", "reward": 0.5, "scores": {"a": 1e-7, "b": None}}]},
        {"metadata": {"a": {"x": float("nan"), "np": np.int64(3), "t": (1, 2)}}},
        {"id": "lone \ud800 surrogate", "reward": -0.0},
        [1, 2.5, "x", True, None],
    ],
)
def test_json_response_bytes(content: Any) -> None:
    response = json_response(content, 201, {"X-A": "1"})
    assert response.body == _old_body(content)
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-a"] == "1"


def test_json_response_still_refuses_a_cycle() -> None:
    meta: dict[str, Any] = {}
    meta["self"] = meta
    with pytest.raises(RecursionError):
        json_response({"metadata": meta})
