"""StringMatchGrader: exact, normalized (SQuAD), contains and regex modes."""

from __future__ import annotations

import re

import pytest

import graders._string  # noqa: F401  (registers "string_match")
from graders._base import get_grader
from graders._string import StringMatchGrader, normalize_answer
from rm_service import ConfigError, GraderError, GraderScore


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel Tower!", "eiffel tower"),  # case, article, punctuation
        ("  a   b\n\tc ", "b c"),  # article "a" dropped, whitespace collapsed
        ("don't", "dont"),  # punctuation deleted, not replaced (as SQuAD)
        ("3.14", "314"),  # ... which also merges numbers: SQuAD's behaviour, kept
        ("“Quoted” — text…", "quoted text"),  # Unicode punctuation too
        ("ＡＢＣ ４２", "abc 42"),  # NFKC: full-width forms
        ("Straße", "strasse"),  # casefold, not lower
        ("theory anthem", "theory anthem"),  # articles only as whole words
        ("snake_case", "snakecase"),  # underscore is punctuation, as in SQuAD
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


CASES = [
    # (mode, kwargs, response, reference, expected, why)
    ("exact", {}, "Paris", "Paris", 1.0, "identical"),
    ("exact", {}, "  Paris\n", "Paris", 1.0, "surrounding whitespace ignored"),
    ("exact", {}, "paris", "Paris", 0.0, "case-sensitive by default"),
    ("exact", {"ignore_case": True}, "PARIS", "paris", 1.0, "ignore_case"),
    ("exact", {}, "Paris.", "Paris", 0.0, "punctuation matters in exact"),
    ("normalized", {}, "The city of Paris.", "city of paris", 1.0, "SQuAD normalisation"),
    ("normalized", {}, "Paris, France", "Paris", 0.0, "still equality, not containment"),
    ("normalised", {}, "An apple!", "apple", 1.0, "British alias"),
    ("contains", {}, "I think it's Paris, France.", "Paris", 1.0, "substring"),
    ("contains", {}, "I think it's paris.", "Paris", 0.0, "case-sensitive (OpenAI like)"),
    ("contains", {"ignore_case": True}, "it's PARIS", "paris", 1.0, "OpenAI ilike"),
    ("contains", {}, "42", "4", 1.0, "plain substring: '4' is in '42' (documented)"),
    ("contains", {}, "London", "Paris", 0.0, "absent"),
    ("regex", {}, "The answer is B.", r"\b[B]\b", 1.0, "reference is the pattern; search"),
    ("regex", {}, "The answer is B.", r"answer is [AB]", 1.0, "search finds it anywhere"),
    ("regex", {}, "The answer is C.", r"answer is [AB]", 0.0, "no match"),
    ("regex", {"match": "fullmatch"}, "The answer is B.", r"[AB]", 0.0, "fullmatch: whole text"),
    ("regex", {"match": "fullmatch"}, "B", r"[AB]", 1.0, "fullmatch"),
    ("regex", {"ignore_case": True}, "answer: b", r"ANSWER: B", 1.0, "ignore_case"),
    ("exact", {}, "", "Paris", 0.0, "empty response is a plain miss"),
]


@pytest.mark.parametrize(("mode", "kwargs", "response", "reference", "expected", "why"), CASES)
async def test_modes(
    mode: str, kwargs: dict, response: str, reference: str, expected: float, why: str
) -> None:
    g = StringMatchGrader(mode=mode, **kwargs)  # type: ignore[arg-type]
    result = await g.aevaluate(response=response, reference_response=reference)
    assert isinstance(result, GraderScore), why
    assert result.score == expected, why


async def test_metadata() -> None:
    n = await StringMatchGrader(mode="normalized").aevaluate(
        response="The Answer!", reference_response="answer"
    )
    assert n.metadata == {"response_normalized": "answer", "reference_normalized": "answer"}
    r = await StringMatchGrader(mode="regex").aevaluate(
        response="Final: (C)", reference_response=r"\((?P<letter>[A-D])\)"
    )
    assert r.metadata == {"pattern": r"\((?P<letter>[A-D])\)", "matched": "(C)", "groups": ["C"]}
    assert r.reason == "regex: match"


async def test_fixed_reference_and_pattern_do_not_need_a_record_reference() -> None:
    refusal = StringMatchGrader(mode="contains", reference="I can't", ignore_case=True)
    assert refusal.required_fields == ("response",)
    assert StringMatchGrader.required_fields == ("response", "reference_response")  # untouched
    assert (await refusal.aevaluate(response="Sorry, I CAN'T help.")).score == 1.0
    # the record's reference is ignored when one was fixed at construction
    assert (await refusal.aevaluate(response="Sure!", reference_response="Sure")).score == 0.0
    letter = StringMatchGrader(mode="regex", pattern=r"^[A-D]$", match="search")
    assert (await letter.aevaluate(response="C")).score == 1.0
    assert (await letter.aevaluate(response="E")).score == 0.0


@pytest.mark.parametrize(
    ("mode", "fields", "message"),
    [
        ("exact", {"response": "x"}, "missing required field(s) 'reference_response'"),
        ("exact", {"reference_response": "x"}, "missing required field(s) 'response'"),
        ("contains", {"response": "x", "reference_response": "  "}, "reference is empty"),
        ("normalized", {"response": "x", "reference_response": "the ."}, "after normalisation"),
        ("regex", {"response": "x", "reference_response": "(unclosed"}, "invalid reference regex"),
        ("regex", {"response": "x", "reference_response": ""}, "pattern is empty"),
        ("exact", {"response": {"content": "x"}, "reference_response": "x"}, "must be a string"),
    ],
)
async def test_unscored_inputs(mode: str, fields: dict, message: str) -> None:
    result = await StringMatchGrader(mode=mode).aevaluate(**fields)  # type: ignore[arg-type]
    assert isinstance(result, GraderError)
    assert result.kind == "invalid_input"
    assert message in result.error


async def test_numeric_reference_and_extra_fields_ignored() -> None:
    g = StringMatchGrader(mode="exact")
    result = await g.aevaluate(response="42", reference_response=42, unrelated=1, query="q")
    assert isinstance(result, GraderScore) and result.score == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "fuzzy"}, "mode must be one of"),
        ({"mode": "regex", "pattern": "("}, "invalid regex"),
        ({"mode": "regex", "reference": "x"}, "takes pattern=, not reference="),
        ({"mode": "regex", "match": "prefix"}, "match must be"),
        ({"mode": "exact", "pattern": "x"}, "apply to regex mode"),
        ({"mode": "contains", "match": "search"}, "apply to regex mode"),
        ({"mode": "contains", "reference": ""}, "is empty"),  # would match everything
        ({"mode": "normalized", "reference": "The!"}, "is empty"),
        ({"mode": "exact", "reference": 42}, "must be a string"),
    ],
)
def test_config_errors_at_construction(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        StringMatchGrader(**kwargs)


async def test_constructible_by_name() -> None:
    g = get_grader("string_match", mode="normalised", name="em")
    assert isinstance(g, StringMatchGrader) and g.name == "em" and g.mode == "normalized"
    result = await g.aevaluate(response="the Beatles", reference_response="Beatles")
    assert result.score == 1.0 and result.name == "em"


# --- found by the rule graders review ------------------------------------------------------------


async def test_a_record_pattern_that_backtracks_without_bound_is_unscored_as_a_timeout() -> None:
    """A reference pattern with an ambiguous repetition (``(\\w+\\s?)+`` under ``re``,
    ``(a|aa)+b`` here) takes exponential time in the response's length, seconds at 25
    characters; it is stopped at ``match_timeout``."""
    import time

    grader = StringMatchGrader(mode="regex", match="fullmatch", match_timeout=0.1)
    started = time.monotonic()
    result = await grader.aevaluate(response="a" * 40 + "!", reference_response=r"(a|aa)+b")
    assert time.monotonic() - started < 5.0  # a hang guard, not a speed target
    assert isinstance(result, GraderError) and result.kind == "timeout", result
    fine = await grader.aevaluate(response="aaab", reference_response=r"(a|aa)+b")
    assert isinstance(fine, GraderScore) and fine.score == 1.0


@pytest.mark.parametrize("value", ["false", "true", 0, 1, None])
def test_ignore_case_must_be_a_bool(value: object) -> None:
    """``bool("false")`` is True: a quoted YAML value turned case-folding on."""
    with pytest.raises(ConfigError, match="ignore_case"):
        StringMatchGrader(mode="exact", reference="x", ignore_case=value)  # type: ignore[arg-type]


async def test_a_pattern_whose_flags_contradict_is_invalid_not_internal() -> None:
    """``(?V1)`` asks the regex module for its other mode, which the re-compatible one cannot
    be combined with: a ValueError, not regex.error, so it escaped as ``internal`` (and as a
    raw ValueError from a config)."""
    grader = StringMatchGrader(mode="regex")
    result = await grader.aevaluate(response="abc", reference_response="(?V1)a")
    assert isinstance(result, GraderError) and result.kind == "invalid_input", result
    with pytest.raises(ConfigError, match="invalid regex"):
        StringMatchGrader(mode="regex", pattern="(?V1)a")
