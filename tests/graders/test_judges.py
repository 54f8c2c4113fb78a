"""The four named judges: registration, fields, rubric direction, presets and their guards."""

from __future__ import annotations

import re
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
from tests.graders.test_judge import FakeJudge, verdict

JUDGES: list[tuple[str, type[LLMGrader], tuple[str, ...], tuple[str, ...]]] = [
    ("harmfulness", HarmfulnessGrader, ("response",), ("query",)),
    ("relevance", RelevanceGrader, ("query", "response"), ()),
    ("correctness", CorrectnessGrader, ("reference_response", "response"), ("query",)),
    ("instruction_following", InstructionFollowingGrader, ("instruction", "response"), ("query",)),
]

FULL_RECORD = {
    "query": "What is the capital of France?",
    "response": "Paris is the capital of France.",
    "reference_response": "Paris",
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
    g = CorrectnessGrader(FakeJudge("5"), output="label")
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
