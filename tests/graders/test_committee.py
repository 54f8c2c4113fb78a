"""CommitteeGrader: combine rules, unscored members, min_valid, samples, construction."""

from __future__ import annotations

import re

import pytest

from graders._base import get_grader
from graders._committee import CommitteeGrader, combine_scores
from graders._judge import LLMGrader
from graders._judges import RelevanceGrader
from rm_service import ConfigError, GraderError, GraderScore
from rm_service.models._base import JudgeHTTPError, JudgeTimeout
from rm_service.models._cache import JudgeCache
from tests.support import FakeJudge, verdict

RECORD = {"query": "What is the capital of France?", "response": "Paris."}


def member(*replies: object, name: str, **kw: object) -> LLMGrader:
    return RelevanceGrader(FakeJudge(*replies, model=f"model-{name}"), name=name, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scores", "rule", "expected"),
    [
        ([0.5, 1.0, 0.75], "mean", 0.75),
        ([0.5, 1.0, 0.75], "min", 0.5),
        ([1.0, 1.0, 0.25], "majority", 1.0),
        ([1.0, 0.25], "majority", 0.25),  # a tie goes to the lowest
        ([1.0, 1.0, 0.25, 0.25, 0.5], "majority", 0.25),
        ([0.3], "majority", 0.3),
    ],
)
def test_combine_scores(scores: list[float], rule: str, expected: float) -> None:
    assert combine_scores(scores, rule) == pytest.approx(expected)  # type: ignore[arg-type]


def test_combine_scores_rejects_nothing_and_unknown_rules() -> None:
    with pytest.raises(ValueError):
        combine_scores([], "mean")
    with pytest.raises(ValueError):
        combine_scores([0.5], "median")  # type: ignore[arg-type]


@pytest.mark.parametrize(("rule", "expected"), [("mean", 0.75), ("min", 0.5), ("majority", 0.5)])
async def test_committee_combines_member_verdicts(rule: str, expected: float) -> None:
    members = [
        member(verdict(3), name="a"),
        member(verdict(5), name="b"),
        member(verdict(3), name="c"),
        member(verdict(5), name="d"),
        member(verdict(3), name="e"),
    ]
    c = CommitteeGrader(members, combine=rule)  # type: ignore[arg-type]
    r = await c.aevaluate(**RECORD)
    assert isinstance(r, GraderScore), r
    expected_mean = (3 * 0.5 + 2 * 1.0) / 5
    assert r.score == pytest.approx(expected_mean if rule == "mean" else expected)
    assert r.metadata["valid"] == 5 and r.metadata["total"] == 5
    assert [m["member"] for m in r.metadata["members"]] == ["a", "b", "c", "d", "e"]
    assert [m["score"] for m in r.metadata["members"]] == [0.5, 1.0, 0.5, 1.0, 0.5]


async def test_unscored_members_are_excluded_and_listed() -> None:
    members = [
        member(verdict(5), name="a"),
        member("no verdict here", name="b"),
        member(verdict(3), name="c"),
    ]
    r = await CommitteeGrader(members).aevaluate(**RECORD)
    assert isinstance(r, GraderScore)
    assert r.score == pytest.approx(0.75)  # mean of 1.0 and 0.5; the failure is not a 0
    assert r.metadata["valid"] == 2
    assert r.metadata["members"][1] == {
        "member": "b",
        "sample": 0,
        "score": None,
        "error": "unparseable",
    }


async def test_too_few_valid_verdicts_is_unscored() -> None:
    members = [
        member(JudgeTimeout("slow"), name="a"),
        member(JudgeTimeout("slow"), name="b"),
        member(verdict(5), name="c"),
    ]
    r = await CommitteeGrader(members).aevaluate(**RECORD)  # default min_valid = 2 of 3
    assert isinstance(r, GraderError)
    assert r.kind == "timeout"  # the most common failure
    assert "1 of 3" in r.error and "need 2" in r.error
    assert [m["score"] for m in r.metadata["members"]] == [None, None, 1.0]
    ok = await CommitteeGrader(members, min_valid=1).aevaluate(**RECORD)
    assert isinstance(ok, GraderScore) and ok.score == 1.0


async def test_all_members_failing_differently() -> None:
    members = [
        member(JudgeHTTPError("HTTP 500"), name="a"),
        member(JudgeHTTPError("HTTP 502"), name="b"),
        member("prose", name="c"),
    ]
    r = await CommitteeGrader(members, min_valid=1).aevaluate(**RECORD)
    assert isinstance(r, GraderError) and r.kind == "judge_error"


async def test_samples_are_independent_calls() -> None:
    fakes = [FakeJudge(verdict(2), verdict(4), verdict(3)), FakeJudge(verdict(5))]
    cache = JudgeCache()
    members = [
        RelevanceGrader(f, name=f"m{i}", temperature=0.7, seed=10, cache=cache)
        for i, f in enumerate(fakes)
    ]
    c = CommitteeGrader(members, n_samples=3, combine="mean")
    r = await c.aevaluate(**RECORD)
    assert isinstance(r, GraderScore)
    # Same messages and a shared cache, yet three calls per member: samples have distinct keys.
    assert [f.n_calls for f in fakes] == [3, 3]
    assert sorted(p.seed for _, p in fakes[0].calls) == [10, 11, 12]  # type: ignore[type-var]
    assert r.metadata["total"] == 6
    assert [m["sample"] for m in r.metadata["members"]] == [0, 1, 2, 0, 1, 2]
    assert r.score == pytest.approx((0.25 + 0.75 + 0.5 + 3 * 1.0) / 6)


def test_samples_need_a_non_deterministic_judge() -> None:
    with pytest.raises(ConfigError, match="temperature"):
        CommitteeGrader([member(verdict(3), name="a")], n_samples=2)


async def test_built_from_models() -> None:
    fakes = [FakeJudge(verdict(5), model="m1"), FakeJudge(verdict(1), model="m2")]
    c = CommitteeGrader(models=fakes, judge=RelevanceGrader, combine="min", name="rel_committee")
    assert c.required_fields == ("query", "response")
    r = await c.aevaluate(**RECORD)
    assert isinstance(r, GraderScore)
    assert r.score == 0.0
    assert [m["member"] for m in r.metadata["members"]] == ["rel_committee[0]", "rel_committee[1]"]


async def test_built_from_models_with_a_template() -> None:
    fakes = [FakeJudge(verdict(4)), FakeJudge(verdict(4))]
    c = CommitteeGrader(models=fakes, template="generic", rubric="Accurate?", min_valid=2)
    r = await c.aevaluate(**RECORD)
    assert isinstance(r, GraderScore) and r.score == 0.75
    assert "Accurate?" in fakes[0].calls[0][0][1]["content"]


async def test_fields_are_the_union_of_the_members() -> None:
    from graders._judges import CorrectnessGrader

    c = CommitteeGrader(
        [RelevanceGrader(FakeJudge(), name="r"), CorrectnessGrader(FakeJudge(), name="c")]
    )
    assert set(c.required_fields) == {"query", "response", "reference_response"}
    r = await c.aevaluate(**RECORD)
    assert isinstance(r, GraderError) and r.kind == "invalid_input"


async def test_pregate_is_reported_when_every_member_gated() -> None:
    c = CommitteeGrader([member(verdict(5), name="a"), member(verdict(5), name="b")])
    r = await c.aevaluate(query=RECORD["query"], response="Thought process:")
    assert isinstance(r, GraderScore)
    assert r.score == 0.0 and r.metadata["pregate"] == "master_key"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "either"),
        (([],), {"models": [FakeJudge()]}, "either"),
        (([],), {}, "at least one"),
        (([object()],), {}, "not a grader"),
        ((), {"models": [FakeJudge()], "combine": "median"}, "combine"),
        ((), {"models": [FakeJudge()], "n_samples": 0}, "n_samples"),
        ((), {"models": [FakeJudge()], "min_valid": 2}, "min_valid"),
        ((), {"models": [FakeJudge()], "min_valid": 0}, "min_valid"),
    ],
)
def test_config_errors(args: tuple, kwargs: dict, message: str) -> None:
    kwargs = {"template": "generic", "rubric": "ok?", **kwargs} if "models" in kwargs else kwargs
    with pytest.raises(ConfigError, match=re.escape(message)):
        CommitteeGrader(*args, **kwargs)


def test_judge_arguments_need_models() -> None:
    with pytest.raises(ConfigError, match="only with models"):
        CommitteeGrader([member(name="a")], temperature=0.5)


def test_registered() -> None:
    c = get_grader("committee", models=[FakeJudge()], judge=RelevanceGrader)
    assert isinstance(c, CommitteeGrader) and c.name == "committee"


class _Bare:
    """A member that satisfies the grader protocol only: its aevaluate may return anything."""

    def __init__(self, name: str, out: object) -> None:
        self.name, self.out = name, out

    async def aevaluate(self, **fields: object) -> object:
        return self.out


@pytest.mark.parametrize(
    "out", [0.7, None, GraderScore.model_construct(name="m", score=5.0, reason="", metadata={})]
)
async def test_a_member_that_returns_no_valid_result_is_named_as_an_internal_error(
    out: object,
) -> None:
    """A bare number or None was dropped unnamed, and with no valid verdict left the committee
    failed as "IndexError: list index out of range"; an unchecked score of 5 counted."""
    alone = await CommitteeGrader([_Bare("m", out)]).aevaluate(response="r")  # type: ignore[list-item]  # a protocol-only member, as a user may write one
    assert isinstance(alone, GraderError) and alone.kind == "internal", alone
    assert "not a reward in [0, 1]" in alone.error or "not a GraderScore" in alone.error
    beside = await CommitteeGrader(
        [_Bare("m", out), _Bare("ok", GraderScore(name="ok", score=1.0))],  # type: ignore[list-item]  # as above
        min_valid=1,
    ).aevaluate(response="r")
    assert isinstance(beside, GraderScore) and beside.score == 1.0
    assert [m.get("error") for m in beside.metadata["members"]] == ["internal", None]
