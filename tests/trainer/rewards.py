"""Grader functions for the trainer tests, referenced from reward configs as import strings."""

from __future__ import annotations

from graders import Unscored


def unscored_if_digit(response: str) -> float:
    """Unscored (``judge_error``) when the response holds a digit, else the share of letters:
    a random policy hits both cases within a group, so some samples of a batch are ``None``."""
    if any(ch.isdigit() for ch in response):
        raise Unscored("a digit: pretend the judge failed", kind="judge_error")
    return sum(ch.isalpha() for ch in response) / max(1, len(response))


calls: list[int] = []


def counted(response: str) -> float:
    """The share of letters, counting each sample it scores (in ``calls``)."""
    calls.append(1)
    return sum(ch.isalpha() for ch in response) / max(1, len(response))
