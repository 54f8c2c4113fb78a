"""LengthPenalty: the piecewise-linear length window."""

from __future__ import annotations

import re

import pytest

import graders._length  # noqa: F401  (registers "length_penalty")
from graders._base import get_grader
from graders._length import LengthPenalty, length_score
from rm_service import ConfigError, GraderError, GraderScore


@pytest.mark.parametrize(
    ("length", "kwargs", "expected"),
    [
        (0, {"max_len": 10}, 1.0),  # no min_len: empty is not too long
        (10, {"max_len": 10}, 1.0),  # max_len itself is still full reward
        (11, {"max_len": 10}, 0.0),  # buffer 0: hard cut-off
        (10, {"max_len": 10, "buffer": 4}, 1.0),
        (11, {"max_len": 10, "buffer": 4}, 0.75),  # 1 - 1/4
        (12, {"max_len": 10, "buffer": 4}, 0.5),
        (13, {"max_len": 10, "buffer": 4}, 0.25),
        (14, {"max_len": 10, "buffer": 4}, 0.0),  # max_len + buffer: zero (DAPO's -1)
        (1000, {"max_len": 10, "buffer": 4}, 0.0),
        (0, {"min_len": 4}, 0.0),  # empty is as short as it gets
        (2, {"min_len": 4}, 0.5),  # proportional ramp below min_len
        (4, {"min_len": 4}, 1.0),
        (10**6, {"min_len": 4}, 1.0),  # no max_len: no upper limit
        (3, {"min_len": 4, "max_len": 8, "buffer": 2}, 0.75),  # both sides
        (9, {"min_len": 4, "max_len": 8, "buffer": 2}, 0.5),
    ],
)
def test_length_score(length: int, kwargs: dict, expected: float) -> None:
    assert length_score(length, max_len=kwargs.pop("max_len", None), **kwargs) == expected


def test_matches_dapo_soft_overlong_punishment() -> None:
    # DAPO eq. 13 with L_max=20, L_cache=8, shifted from [-1, 0] into [0, 1].
    l_max, l_cache = 20, 8

    def dapo(y: int) -> float:
        if y <= l_max - l_cache:
            return 0.0
        if y <= l_max:
            return ((l_max - l_cache) - y) / l_cache
        return -1.0

    for y in range(30):
        assert length_score(y, max_len=l_max - l_cache, buffer=l_cache) == pytest.approx(
            1 + dapo(y)
        )


async def test_chars_and_words_units() -> None:
    text = "one two  three\nfour"  # 19 characters, 4 words
    chars = await LengthPenalty(max_len=10, buffer=18).aevaluate(response=text)
    assert chars.score == pytest.approx(1 - 9 / 18)
    assert chars.metadata == {"length": 19, "unit": "chars"}
    words = await LengthPenalty(max_len=3, buffer=2, unit="words").aevaluate(response=text)
    assert words.score == 0.5
    assert words.metadata == {"length": 4, "unit": "words"}


async def test_reasons() -> None:
    g = LengthPenalty(min_len=2, max_len=3, unit="words")
    assert "under min_len 2" in (await g.aevaluate(response="one")).reason
    assert "over max_len 3" in (await g.aevaluate(response="a b c d")).reason
    assert "within limits" in (await g.aevaluate(response="a b")).reason


async def test_invalid_input_and_extra_fields() -> None:
    g = LengthPenalty(max_len=5)
    missing = await g.aevaluate(reference_response="x")
    assert isinstance(missing, GraderError) and missing.kind == "invalid_input"
    not_text = await g.aevaluate(response=None)
    assert isinstance(not_text, GraderError) and not_text.kind == "invalid_input"
    messages = await g.aevaluate(response=[{"role": "assistant", "content": "hi"}])
    assert isinstance(messages, GraderError) and messages.kind == "invalid_input"
    ok = await g.aevaluate(response="hello", reference_response="x", unrelated=1)
    assert isinstance(ok, GraderScore) and ok.score == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs max_len, min_len or both"),
        ({"max_len": -1}, "max_len must be an integer"),
        ({"max_len": 10.5}, "max_len must be an integer"),
        ({"max_len": True}, "max_len must be an integer"),
        ({"max_len": 10, "buffer": -2}, "buffer must be an integer"),
        ({"min_len": 0}, "min_len must be an integer ≥ 1"),  # would divide by zero
        ({"min_len": 20, "max_len": 10}, "must not exceed max_len"),
        ({"min_len": 5, "buffer": 3}, "set max_len too"),
        ({"max_len": 10, "unit": "tokens"}, "unit must be one of"),
    ],
)
def test_config_errors_at_construction(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        LengthPenalty(**kwargs)


async def test_constructible_by_name() -> None:
    g = get_grader("length_penalty", max_len=4, buffer=4, unit="chars", name="len")
    assert isinstance(g, LengthPenalty) and g.name == "len"
    result = await g.aevaluate(response="abcdef")
    assert result.score == 0.5 and result.name == "len"


async def test_words_joined_by_invisible_characters_are_counted_as_words() -> None:
    """5,000 words joined by zero-width spaces counted as one word, so an over-long response
    dodged the penalty (1.0 instead of 0.0)."""
    grader = LengthPenalty(unit="words", max_len=50)
    result = await grader.aevaluate(response="\u200b".join(["word"] * 5000))
    assert isinstance(result, GraderScore) and result.score == 0.0, result
    assert result.reason.startswith("5000 words")
