"""Shared by the verl and OpenRLHF shim tests: a small reward, a grader that shows what it was
given, and a fixture isolating the process-wide backend cache and the RM_SERVICE_* environment."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

SHIM_CONFIG: dict[str, Any] = {
    "graders": {
        "short": {"type": "tests.support:short_or_unscored"},
        "num": {"type": "number", "mapper": {"reference_response": "ground_truth"}},
    },
    "aggregators": [{"type": "weighted_sum", "name": "reward", "weights": {"short": 1, "num": 1}}],
}
"""``short``: ``1 - len/20``, unscored (judge_error) on FAIL; ``num``: the response's number
equals ``ground_truth`` (unscored when there is none); ``reward``: their mean, unscored when
either is."""

SHIM_ENV = (
    "RM_SERVICE_CONFIG",
    "RM_SERVICE_URL",
    "RM_SERVICE_API_KEY",
    "RM_SERVICE_REWARD",
    "RM_SERVICE_LABEL_FIELD",
    "RM_SERVICE_STRIP_PATTERNS",
    "RM_SERVICE_UNSCORED_FALLBACK",
)

SEEN: list[dict[str, Any]] = []
_seen_lock = threading.Lock()


def seen(**fields: Any) -> float:
    """A grader that keeps every record it is given (in ``SEEN``) and scores 1."""
    with _seen_lock:
        SEEN.append(fields)
    return 1.0


@pytest.fixture
def shim_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No RM_SERVICE_* variable set, an empty backend cache, ``SEEN`` cleared."""
    from rm_service.integrations import _targets

    for name in SHIM_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_targets, "_targets", {})
    SEEN.clear()
    yield monkeypatch
