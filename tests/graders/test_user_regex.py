"""A user pattern is bounded before it is compiled, not only while it matches.

``regex`` lays out a copy of what a counted repeat repeats: a record's ``a{10000000}`` took
2.6 GB and a 4 s event-loop stall to compile, ``a{1000000000}`` an OOM kill. These tests never
compile a large pattern: where the pattern must be refused, ``regex.compile`` is replaced by a
function that fails, so the old code (which compiled it) fails the test without allocating.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import regex

from graders import FormatGrader, StringMatchGrader
from graders._user_regex import UserRegex
from rm_service import ConfigError, GraderError, GraderScore

# The bounds (graders._user_regex.MAX_PATTERN_SIZE and MAX_PATTERN_CHARS), written out so that
# the grader-level tests below also run, and fail, on code that predates them.
MAX_PATTERN_SIZE = 10_000
MAX_PATTERN_CHARS = 20_000

BOMBS = [
    "a{10000000}",  # 2.6 GB and a 4 s stall before the fix
    "a{50000000}",  # 13 GB
    "a{1000000000}",  # an OOM kill
    "((a{1000}){1000}){1000}",  # nesting multiplies
    "(?:a{1000}){1000}",
    "a{9000}" * 10,  # siblings add: a product bound alone lets a row of them through
    "(?x) a{1 0 0 0 0 0 0}",  # verbose mode: regex reads a{1000000}
    "[ab]{1000000}",
    "a{1000000,}",
    "(?=a{1000000})",
    "(?(1)a{1000000}|b)",
    r"\p{L}{1000000}",  # regex-only syntax is parsed by regex's own parser
]


class CompiledAnyway(Exception):
    """``regex.compile`` was called on a pattern that should have been refused first."""


@pytest.fixture
def no_compile(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make compiling fail: a refused pattern must never reach ``regex.compile``."""

    def refuse(pattern: str, *args: object, **kwargs: object) -> None:
        raise CompiledAnyway(f"compiled {pattern[:40]!r}")

    monkeypatch.setattr(regex, "compile", refuse)
    yield


@pytest.mark.parametrize("pattern", BOMBS)
async def test_a_record_pattern_too_large_to_compile_is_invalid_input(
    pattern: str, no_compile: None
) -> None:
    result = await StringMatchGrader(mode="regex").aevaluate(
        response="abc", reference_response=pattern
    )
    assert isinstance(result, GraderError) and result.kind == "invalid_input", result
    assert "reference_response" in result.error and "refused before compiling" in result.error
    assert "limit 10,000" in result.error


async def test_the_bound_is_on_the_pattern_not_on_the_engines_memory() -> None:
    """At the bound the pattern compiles (cheaply: ``a{10000}`` is about 1 ms) and scores; one
    item more is refused. Before the fix both compiled and scored 0 on ``abc``."""
    grader = StringMatchGrader(mode="regex")
    at = await grader.aevaluate(response="a" * MAX_PATTERN_SIZE, reference_response="a{10000}")
    assert isinstance(at, GraderScore) and at.score == 1.0, at
    over = await grader.aevaluate(response="abc", reference_response="a{10001}")
    assert isinstance(over, GraderError) and over.kind == "invalid_input", over
    assert "10,001 items" in over.error


async def test_an_overlong_record_pattern_is_invalid_input() -> None:
    result = await StringMatchGrader(mode="regex").aevaluate(
        response="abc", reference_response="x" * (MAX_PATTERN_CHARS + 1)
    )
    assert isinstance(result, GraderError) and result.kind == "invalid_input", result
    assert f"{MAX_PATTERN_CHARS + 1:,} characters long" in result.error
    assert len(result.error) < 600  # the pattern is clipped in the reason


async def test_a_pattern_nested_too_deeply_to_parse_is_invalid_not_internal() -> None:
    """The parser recurses per group: a RecursionError escaped as ``internal``."""
    pattern = "(?:" * 1000 + "a" + ")" * 1000
    result = await StringMatchGrader(mode="regex").aevaluate(
        response="a", reference_response=pattern
    )
    assert isinstance(result, GraderError) and result.kind == "invalid_input", result
    assert "nested too deeply" in result.error


async def test_a_list_of_refused_golds_is_invalid_input(no_compile: None) -> None:
    result = await StringMatchGrader(mode="regex").aevaluate(
        response="abc", reference_response=["a{1000000000}", "x{1000000000}"]
    )
    assert isinstance(result, GraderError) and result.kind == "invalid_input", result
    assert "reference_response[0]" in result.error


async def test_a_refused_gold_in_a_list_leaves_the_others() -> None:
    result = await StringMatchGrader(mode="regex").aevaluate(
        response="abc", reference_response=["a{20000}", "b"]
    )
    assert isinstance(result, GraderScore) and result.score == 1.0, result
    assert result.metadata["golds_skipped"] == [0]


@pytest.mark.parametrize(
    "make",
    [
        lambda p: StringMatchGrader(mode="regex", pattern=p),
        lambda p: FormatGrader(mode="regex", pattern=p),
    ],
    ids=["string_match", "format"],
)
def test_a_config_pattern_too_large_is_a_config_error(make: object, no_compile: None) -> None:
    with pytest.raises(ConfigError, match="limit 10,000"):
        make("a{1000000000}")  # type: ignore[operator]


def test_the_documented_bounds() -> None:
    from graders import _user_regex

    assert _user_regex.MAX_PATTERN_SIZE == MAX_PATTERN_SIZE
    assert _user_regex.MAX_PATTERN_CHARS == MAX_PATTERN_CHARS


def test_expanded_size_multiplies_nesting_and_adds_siblings() -> None:
    from graders._user_regex import expanded_size

    flags = regex.VERSION0
    assert expanded_size(r"\d{4}-\d{2}-\d{2}", flags) == 10
    assert expanded_size("(?:ab){5000}", flags) == MAX_PATTERN_SIZE
    assert expanded_size("((a{10}){10}){10}", flags) == 1000
    assert expanded_size("a{5}b{5}", flags) == 10
    assert expanded_size("a{2,50}", flags) == 2  # the engine lays out the minimum; the rest loops
    assert expanded_size("a{0,1000000}", flags) == 1
    assert expanded_size("a*b+c?", flags) == 3  # unbounded quantifiers count once


@pytest.mark.parametrize(
    "pattern",
    [
        r"(\w+\s?)+",
        r"\d{1,3}(,\d{3})*",
        r"(?i)answer:\s*[A-D]",
        r"^.{0,200}$",
        r"^(?s).{200,15000}$",  # a length bound (refused while {m,n} counted n)
        r"^[\s\S]{0,12000}$",
    ],
)
def test_ordinary_patterns_pass(pattern: str) -> None:
    from graders._user_regex import check_pattern_size

    check_pattern_size(pattern, regex.VERSION0)
    assert UserRegex(pattern).pattern == pattern


def test_user_regex_raises_pattern_too_large_as_a_value_error(no_compile: None) -> None:
    from graders._user_regex import PatternTooLarge

    with pytest.raises(PatternTooLarge) as caught:
        UserRegex("a{1000000000}")
    assert isinstance(caught.value, ValueError)  # callers already treat ValueError as bad input
