"""Rollouts whose message content is in OpenAI's content-parts form are graded as their text."""

from __future__ import annotations

from typing import Any

import pytest

from graders import FunctionGrader
from rm_service import GradingRunner, InputError, RolloutRewardCalculator


def parts(*texts: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": t} for t in texts]


def number(response: str, query: str) -> float:
    """The turn's content is its score; the question must arrive as text too."""
    assert query == "What is 0.25 + 0.5?", query
    return float(response)


async def test_content_parts_in_a_rollout_are_read_as_their_text() -> None:
    """OpenAI-format datasets write ``content`` as parts; a rollout with them was refused
    ("'content' must be a string") although every grader reads parts as text."""
    calc = RolloutRewardCalculator(GradingRunner({"num": FunctionGrader(number)}))
    rollout: dict[str, Any] = {
        "messages": [
            {"role": "user", "content": parts("What is ", "0.25 + 0.5?")},
            {"role": "assistant", "content": parts("0.", "75")},
        ]
    }
    (turn,) = await calc.acompute(rollout)  # old code: InputError
    assert turn.reward == 0.75 and turn.completion == "0.75" and turn.errors == {}


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ([{"type": "image_url", "image_url": {"url": "x"}}], "part of type 'image_url'"),
        (5, "a string or a list of text content parts, got int"),
    ],
)
async def test_content_that_is_not_text_names_the_rollout_and_message(
    content: Any, says: str
) -> None:
    calc = RolloutRewardCalculator(GradingRunner({"num": FunctionGrader(number)}))
    bad = {
        "messages": [{"role": "user", "content": content}, {"role": "assistant", "content": "1"}]
    }
    with pytest.raises(InputError, match=rf"rollout 0, message 0: .*{says}"):
        await calc.acompute(bad)
