"""The four named judges: registration, fields, rubric direction, presets and their guards."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graders._base import get_grader
from graders._judge import LLMGrader, load_prompt
from graders._judges import (
    CorrectnessGrader,
    HarmfulnessGrader,
    InstructionFollowingGrader,
    RelevanceGrader,
)
from rm_service import ConfigError, GraderError, GraderScore
from rm_service._config import RewardConfig, load_config
from rm_service.models._openai import OpenAIChatModel
from tests.judge_server import JudgeServer, Reply
from tests.support import FakeJudge, verdict

JUDGES: list[tuple[str, type[LLMGrader], tuple[str, ...], tuple[str, ...]]] = [
    ("harmfulness", HarmfulnessGrader, ("response",), ("query",)),
    ("relevance", RelevanceGrader, ("query", "response"), ()),
    ("correctness", CorrectnessGrader, ("reference_response", "response"), ("query",)),
    ("instruction_following", InstructionFollowingGrader, ("instruction", "response"), ("query",)),
]

FULL_RECORD = {
    "query": "What is the capital of France?",
    "response": "Paris is the capital of France.",
    # prose, so correctness asks its judge (a checkable reference is decided by rule, see below)
    "reference_response": "Paris is the capital and the largest city of France.",
    "instruction": "Answer in one sentence.",
}


@pytest.mark.parametrize(("name", "cls", "required", "optional"), JUDGES)
def test_registered_with_their_fields(
    name: str, cls: type[LLMGrader], required: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    g = get_grader(name, model=FakeJudge())
    assert type(g) is cls
    assert g.name == name
    assert sorted(g.required_fields) == sorted(required)  # type: ignore[attr-defined]
    assert g.optional_fields == optional  # type: ignore[attr-defined]
    assert g.scale == (1, 5)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "cls", "required", "optional"), JUDGES)
async def test_each_judge_grades_and_fences_its_fields(
    name: str, cls: type[LLMGrader], required: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    fake = FakeJudge(verdict(4))
    r = await cls(fake).aevaluate(**FULL_RECORD)
    assert isinstance(r, GraderScore), r
    user = fake.calls[0][0][1]["content"]
    for field in (*required, *optional):
        label = field.upper()
        assert re.search(rf"<<<{label}-[0-9a-f]{{16}}>>>\n{re.escape(FULL_RECORD[field])}\n", user)
    assert "$" not in user.replace(FULL_RECORD["response"], "")  # no unfilled placeholder


@pytest.mark.parametrize(("name", "cls", "required", "optional"), JUDGES)
async def test_missing_required_field_is_invalid_input(
    name: str, cls: type[LLMGrader], required: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    fake = FakeJudge()
    record = {k: v for k, v in FULL_RECORD.items() if k != required[0]}
    r = await cls(fake).aevaluate(**record)
    assert isinstance(r, GraderError) and r.kind == "invalid_input"
    assert fake.n_calls == 0


@pytest.mark.parametrize(("judge_says", "score"), [(1, 1.0), (2, 0.75), (3, 0.5), (5, 0.0)])
async def test_harmfulness_is_flipped_so_one_means_harmless(judge_says: int, score: float) -> None:
    r = await HarmfulnessGrader(FakeJudge(verdict(judge_says))).aevaluate(response="Drink water.")
    assert isinstance(r, GraderScore)
    assert r.score == score
    assert r.metadata["raw_score"] == judge_says


def test_harmfulness_rubric_says_higher_is_more_harmful() -> None:
    text = load_prompt("harmfulness")
    assert "higher number means MORE harmful" in text
    assert "1: Harmless" in text and "5: Severely harmful" in text


async def test_optional_query_absent_renders_as_not_provided() -> None:
    fake = FakeJudge()
    await HarmfulnessGrader(fake).aevaluate(response="Here is a cake recipe.")
    assert "(not provided)" in fake.calls[0][0][1]["content"]


@pytest.mark.parametrize(
    "name", ["harmfulness", "relevance", "correctness", "instruction_following"]
)
def test_bundled_rubrics_cover_the_scale(name: str) -> None:
    text = load_prompt(name)
    for v in range(1, 6):
        assert re.search(rf"^{v}: ", text, re.M), (name, v)
    assert "$response" in text


@pytest.mark.parametrize("cls", [RelevanceGrader, HarmfulnessGrader])
def test_bundled_template_fixes_scale_and_direction(cls: type[LLMGrader]) -> None:
    with pytest.raises(ConfigError, match="1-5"):
        cls(FakeJudge(), scale=(0, 10))
    with pytest.raises(ConfigError, match="higher_is_better"):
        cls(FakeJudge(), higher_is_better=cls is HarmfulnessGrader)


async def test_own_template_may_change_the_scale(tmp_path: Path) -> None:
    path = tmp_path / "rel10.md"
    path.write_text("Rate 0-10 how relevant:\n$query\n$response", encoding="utf-8")
    g = RelevanceGrader(FakeJudge(verdict(7)), template=path, scale=(0, 10))
    r = await g.aevaluate(query="q?", response="Paris, on the Seine.")
    assert isinstance(r, GraderScore) and r.score == pytest.approx(0.7)


async def test_default_pregates_are_on_and_can_be_turned_off() -> None:
    fake = FakeJudge(verdict(1))
    on = await HarmfulnessGrader(fake).aevaluate(response=":")
    assert isinstance(on, GraderScore) and on.metadata == {"pregate": "master_key"}
    assert on.score == 0.0  # a content-free response cannot farm the harmlessness reward
    off = await HarmfulnessGrader(fake, pregates=()).aevaluate(response=":")
    assert isinstance(off, GraderScore) and off.score == 1.0
    assert fake.n_calls == 1


async def test_label_mode_and_expected_mode_pass_through() -> None:
    g = CorrectnessGrader(FakeJudge("5"), output="label", verify="never")
    r = await g.aevaluate(response="Paris", reference_response="Paris")
    assert isinstance(r, GraderScore) and r.score == 1.0
    g2 = RelevanceGrader(FakeJudge(verdict(4)), score_mode="expected")
    r2 = await g2.aevaluate(query="q?", response="Paris, on the Seine.")
    assert isinstance(r2, GraderScore) and r2.metadata["score_mode"] == "sampled_fallback"


async def test_lazy_model_through_the_registry() -> None:
    built: list[Any] = []

    def factory() -> FakeJudge:
        built.append(FakeJudge(verdict(5)))
        return built[-1]

    g = get_grader("relevance", model=factory, name="rel")
    assert built == []  # nothing built at construction
    r = await g.aevaluate(query="q?", response="Paris, on the Seine.")
    assert isinstance(r, GraderScore) and r.name == "rel" and r.score == 1.0
    assert len(built) == 1


# --- CorrectnessGrader: verifiable first ---------------------------------------------------------
# The judge here is gullible: a real loopback server that gives every response full marks. What
# it is never asked cannot be talked into anything, so each rule decision must show no request.

GULLIBLE = json.dumps({"reason": "The response is fully correct.", "score": 5})


@pytest.fixture(scope="module")
def gullible() -> Iterator[JudgeServer]:
    with JudgeServer(lambda body: Reply(GULLIBLE)) as server:
        yield server


def _correctness(server: JudgeServer, **kwargs: Any) -> CorrectnessGrader:
    return CorrectnessGrader(
        OpenAIChatModel("m", base_url=server.base_url, max_retries=0), **kwargs
    )


async def _grade(server: JudgeServer, response: str, reference: str, **kwargs: Any) -> Any:
    before = server.stats.requests
    result = await _correctness(server, **kwargs).aevaluate(
        query="What is 2 + 2?", response=response, reference_response=reference
    )
    return result, server.stats.requests - before


@pytest.mark.parametrize(
    ("response", "reference", "decided_by"),
    [
        ("The answer is 5.", "4", "rule:number"),
        ("La respuesta es 5.", "4", "rule:number"),  # wrong, in Spanish
        ("答案是 5。", "4", "rule:number"),  # wrong, in Chinese
        (
            "2 + 2 is clearly 5: I checked it twice and I am certain. The answer is 5.",
            "4",
            "rule:number",
        ),
        ("The answer is 4 or 5.", "4", "rule:number"),  # hedging
        ("It is either 4 or 5.", "4", "rule:number"),
        ("4? maybe 5", "4", "rule:number"),
        (r"\boxed{4} or \boxed{5}", "4", "rule:number"),
        ("The answer is the same as the reference answer.", "4", "rule:number"),  # no answer
        ("The answer is A, B or C.", "B", "rule:choice"),
        ("The answer is (C).", "B", "rule:choice"),
        (r"\boxed{\frac{1}{3}}", r"\frac{\pi}{3}", "rule:math"),
        ("Paris or Lyon.", "Paris", "rule:exact"),
    ],
)
async def test_a_wrong_or_hedged_final_answer_scores_zero_without_asking_the_judge(
    gullible: JudgeServer, response: str, reference: str, decided_by: str
) -> None:
    # No pre-gates: the rule alone must hold (some of these also trip a gate).
    r, asked = await _grade(gullible, response, reference, pregates=())
    assert isinstance(r, GraderScore), r
    assert (r.score, asked) == (0.0, 0), r.reason  # old code: the gullible judge's 1.0
    assert r.metadata["decided_by"] == decided_by


async def test_a_correct_final_answer_scores_one_by_rule(gullible: JudgeServer) -> None:
    r, asked = await _grade(gullible, "2 + 2 makes 4, so the answer is \\boxed{4}.", "4")
    assert isinstance(r, GraderScore) and r.score == 1.0 and asked == 0
    assert r.metadata["decided_by"] == "rule:number"
    assert r.metadata["final_answer"] == "4" and r.metadata["answer_source"] == "boxed"
    assert r.metadata["reference_kind"] == "number"


async def test_hedged_metadata_lists_the_candidates(gullible: JudgeServer) -> None:
    r, _ = await _grade(gullible, "The answer is 3, 4 or 5.", "4")
    assert isinstance(r, GraderScore) and r.reason.startswith("hedged")
    assert r.metadata["final_answers"] == ["3", "4", "5"]


@pytest.mark.parametrize(
    ("reference", "response"),
    [
        (
            "Photosynthesis turns light energy into chemical energy stored in glucose.",
            "Plants eat.",
        ),
        ("Paris", "Lyon is the capital of France."),  # a short string the response lacks
    ],
)
async def test_what_the_rule_cannot_decide_goes_to_the_judge(
    gullible: JudgeServer, reference: str, response: str
) -> None:
    r, asked = await _grade(gullible, response, reference)
    assert isinstance(r, GraderScore) and r.score == 1.0 and asked == 1  # gullible, as promised
    assert r.metadata["decided_by"] == "judge" and r.metadata["rule"]
    assert r.metadata["model"] == "m"  # the judge's own metadata is kept


async def test_verify_never_is_the_judge_alone(gullible: JudgeServer) -> None:
    r, asked = await _grade(gullible, "The answer is 5.", "4", verify="never")
    assert isinstance(r, GraderScore) and r.score == 1.0 and asked == 1
    assert "decided_by" not in r.metadata


async def test_verify_only_never_calls_the_judge(gullible: JudgeServer) -> None:
    prose, asked = await _grade(
        gullible,
        "Plants eat light.",
        "Photosynthesis turns light into sugar in leaves.",
        verify="only",
    )
    assert isinstance(prose, GraderError) and prose.kind == "invalid_input" and asked == 0
    assert "cannot decide" in prose.error
    unread, asked = await _grade(gullible, "Lyon is the capital.", "Paris", verify="only")
    assert isinstance(unread, GraderError) and unread.kind == "unparseable" and asked == 0
    right, asked = await _grade(gullible, "The answer is 4.", "4", verify="only")
    assert isinstance(right, GraderScore) and right.score == 1.0 and asked == 0


async def test_pregates_still_run_first(gullible: JudgeServer) -> None:
    r, asked = await _grade(gullible, "Thought process:", "4")
    assert isinstance(r, GraderScore) and r.score == 0.0 and asked == 0
    assert r.metadata == {"pregate": "master_key"}


async def test_a_judge_failure_on_the_judge_path_says_so(judge_server: JudgeServer) -> None:
    judge_server.responder = lambda body: Reply("I think it is fine.")  # no verdict
    r, _ = await _grade(judge_server, "Lyon.", "Paris")
    assert isinstance(r, GraderError) and r.kind == "unparseable"
    assert r.metadata["decided_by"] == "judge"


def test_yaml_builds_with_verify_and_rejects_bad_values() -> None:
    from rm_service._config import build_runner, validate_yaml

    def config(verify: Any) -> dict[str, Any]:
        spec = {
            "type": "correctness",
            "verify": verify,
            "judge": {"backend": "openai", "model": "m"},
        }
        return {"graders": {"corr": spec}}

    for mode in ("auto", "never", "only"):
        cfg, _ = validate_yaml(config(mode), RewardConfig)
        assert build_runner(cfg).grader_configs["corr"].grader.verify == mode  # type: ignore[attr-defined]
    with pytest.raises(
        ConfigError, match=r"graders\.corr: verify must be one of 'auto'.*'sometimes'"
    ):
        load_config(config("sometimes"))
    assert CorrectnessGrader(FakeJudge()).verify == "auto"  # on by default


class _FailingMath:
    """Stands in for the math worker pool: every check times out."""

    async def aevaluate(self, **fields: Any) -> GraderError:
        return GraderError(name="math", error="no result within 5s", kind="timeout")


async def test_a_math_check_that_times_out_is_unscored_not_judged(gullible: JudgeServer) -> None:
    g = _correctness(gullible)
    g._math = _FailingMath()  # type: ignore[assignment]
    before = gullible.stats.requests
    r = await g.aevaluate(response=r"\boxed{\frac{1}{3}}", reference_response=r"\frac{\pi}{3}")
    assert isinstance(r, GraderError) and r.kind == "timeout"
    assert r.metadata["decided_by"] == "rule:math" and gullible.stats.requests == before
