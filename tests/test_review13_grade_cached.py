"""Review 13: ``POST /grade``'s one walk (7f2c6c6, ``RunSummary.add_results``/``_unjudged``).

To decide whether a record is "plain", ``_unjudged`` now takes the truth value of every
component's ``metadata["cached"]``, aggregators' included. Before, only the metrics read
``cached``, and only for graders (``observe_results`` skips a name that is not a grader); the
wire record and the summary read ``usage`` alone. A custom aggregator's metadata whose
``cached`` has no truth value (a numpy array, pandas.NA) now fails the whole batch with 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rm_service import GradingRunner
from rm_service._result import GraderScore
from tests.app import client, make_app


def exact(response: str, reference_response: str) -> float:
    return float(response == reference_response)


def reward(results: Mapping[str, Any]) -> GraderScore:
    """A user's aggregator that reports, per component, which came from a cache."""
    s = results["exact"].score
    return GraderScore(name="reward", score=s, metadata={"cached": np.array([False, True])})


async def test_aggregator_metadata_cached_array_does_not_fail_the_batch() -> None:
    runner = GradingRunner({"exact": exact}, aggregators=reward)
    app = make_app({"main": runner})
    records = [{"response": "a", "reference_response": "a"}]
    async with client(app) as c:
        resp = await c.post("/grade", json={"records": records})
    assert resp.status_code == 200, resp.text
    assert resp.json()["results"][0]["reward"] == 1.0


def bad_usage(results: Mapping[str, Any]) -> GraderScore:
    """An aggregator whose metadata carries a 'usage' that is no token count."""
    s = results["exact"].score
    return GraderScore(name="reward", score=s, metadata={"usage": {"prompt_tokens": "n/a"}})


async def test_records_are_counted_in_metrics_before_the_wire_record_is_built() -> None:
    """Before 7f2c6c6 the metrics observed a batch as soon as it was graded, before the wire
    records were built; a batch whose wire record fails (500) was still counted. Now the
    observation comes after ``add_results``, so a failing batch leaves no trace in /metrics."""
    bad_usage.__name__ = "reward"
    runner = GradingRunner({"exact": exact}, aggregators=bad_usage)
    app = make_app({"main": runner})
    records = [{"response": "a", "reference_response": "a"}]
    async with client(app) as c:
        try:
            resp = await c.post("/grade", json={"records": records})
            assert resp.status_code == 500
        except ValueError:  # the in-process transport raises the app's exception
            pass
        text = (await c.get("/metrics")).text
    assert 'rm_records_total{reward="main",status="ok"} 1.0' in text
