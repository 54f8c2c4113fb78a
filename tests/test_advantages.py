"""``grpo_advantages``: group-relative advantages against hand-computed values."""

from __future__ import annotations

import math

import pytest

from rm_service import grpo_advantages
from tests.support import approx


def test_scaled_matches_sample_std() -> None:
    # group 1: mean 0.5, sample std sqrt(1/3); group 2: mean 0.25, sample std 0.5
    out = grpo_advantages([0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0], 4, eps=1e-4)
    s1, s2 = math.sqrt(1 / 3) + 1e-4, 0.5 + 1e-4
    expected = [-0.5 / s1, 0.5 / s1, -0.5 / s1, 0.5 / s1, 0.75 / s2, *[-0.25 / s2] * 3]
    assert out == approx(expected, abs=1e-12)


def test_unscaled_only_centres() -> None:
    # twinkle's documented example (scale='none').
    out = grpo_advantages([0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0], 4, scale=False)
    assert out == approx([-0.5, 0.5, -0.5, 0.5, 0.75, -0.25, -0.25, -0.25], abs=1e-12)


def test_unscored_members_are_excluded_from_mean_and_std() -> None:
    # scored [1.0, 0.0, 0.5]: mean 0.5, sample std 0.5
    out = grpo_advantages([1.0, None, 0.0, 0.5], 4, eps=0.01)
    assert out == approx([0.5 / 0.51, None, -0.5 / 0.51, 0.0], abs=1e-12)
    nan = grpo_advantages([1.0, float("nan"), 0.0, 0.5], 4, scale=False)
    assert nan == approx([0.5, None, -0.5, 0.0], abs=1e-12)


def test_zero_variance_and_single_member_groups_give_zero_not_nan() -> None:
    out = grpo_advantages([0.7, 0.7, 0.7, None, 0.2, None, None, None], 2)
    assert out == [0.0, 0.0, 0.0, None, 0.0, None, None, None]
    assert grpo_advantages([0.3, 0.9], 1) == [0.0, 0.0]
    assert all(a is None or math.isfinite(a) for a in out)


def test_empty_input_is_empty() -> None:
    assert grpo_advantages([], 4) == []


@pytest.mark.parametrize(
    ("rewards", "n", "match"),
    [
        ([0.1, 0.2, 0.3], 2, "not a multiple of num_generations = 2"),
        ([0.1], 0, "num_generations must be an int >= 1"),
        ([0.1], True, "num_generations must be an int >= 1"),
        ([0.1, math.inf], 2, r"rewards\[1\] is inf"),
    ],
)
def test_bad_input_raises_value_error(rewards: list[float], n: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        grpo_advantages(rewards, n)


def test_bad_eps_and_non_numbers_raise() -> None:
    with pytest.raises(ValueError, match="eps"):
        grpo_advantages([0.1, 0.2], 2, eps=0.0)
    with pytest.raises(TypeError, match=r"rewards\[1\]"):
        grpo_advantages([0.1, "0.2"], 2)  # type: ignore[list-item]
