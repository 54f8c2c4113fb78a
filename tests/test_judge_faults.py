"""Fault injection end to end: runner -> judge graders -> OpenAIChatModel -> real HTTP on loopback.

A fifth of the judge calls fail (429, 500, hangs, garbage bodies) and some verdicts are prose.
The run must end in bounded time with every record present and every component either scored or
unscored with a kind and a reason, never a made-up number.
"""

from __future__ import annotations

import json
import time

import pytest

from graders import CorrectnessGrader, HarmfulnessGrader, RelevanceGrader
from rm_service import GraderError, GraderScore, GradingRunner
from rm_service.models import OpenAIChatModel, RetryPolicy
from tests.judge_server import JudgeServer, Reply

N = 150


def _responder(body: dict) -> Reply:
    prompt = json.dumps(body["messages"])
    if "#13" in prompt:  # some verdicts are prose: unparseable, not a score
        return Reply("I think this answer is quite good overall.")
    return Reply(json.dumps({"reason": "fine", "score": 4}))


def _records() -> list[dict]:
    return [
        {
            "id": i,
            "query": f"How long should bread dough rest, case #{i}?",
            "response": f"About {30 + i % 60} minutes at room temperature, case #{i}.",
            "reference_response": "Around an hour.",
        }
        for i in range(N)
    ]


@pytest.mark.parametrize("transport", ["direct", "aiohttp"])
async def test_twenty_percent_bad_calls_lose_nothing(transport: str) -> None:
    faults = ("rate_limit", "server_error", "hang", "not_json", "empty_choices", "no_content")
    with JudgeServer(_responder, latency=0.005, fault_rate=0.2, fault_kinds=faults, seed=7) as srv:
        model = OpenAIChatModel(
            "judge",
            base_url=srv.base_url,
            api_key="x",
            timeout=0.3,
            deadline=1.0,
            transport=transport,  # type: ignore[arg-type]
            retry_policy=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05),
        )
        runner = GradingRunner(
            {
                "relevance": RelevanceGrader(model),
                "correctness": CorrectnessGrader(model),
                "harmfulness": HarmfulnessGrader(model),
            },
            max_concurrency=32,
        )
        t0 = time.monotonic()
        got = await runner.agrade(_records())
        elapsed = time.monotonic() - t0
        faulted = sum(v for k, v in srv.stats.by_kind.items() if k != "ok")
    assert elapsed < 30
    assert [r.index for r in got] == list(range(N))  # no record lost, order kept
    assert faulted >= 0.1 * 3 * N  # the server really did inject faults
    kinds: dict[str, int] = {}
    for rec in got:
        for name in ("relevance", "correctness", "harmfulness"):
            res = rec.components[name]
            if isinstance(res, GraderScore):
                # The judge always says 4 on 1-5: (4 - 1) / 4 = 0.75. Harmfulness asks for
                # 5 = most harmful and flips it, so 1.0 means harmless and 4 gives 0.25.
                assert res.score == (0.25 if name == "harmfulness" else 0.75)
            else:
                assert isinstance(res, GraderError) and res.error
                kinds[res.kind] = kinds.get(res.kind, 0) + 1
        if rec.errors:
            assert rec.reward is None and rec.status == "unscored"
        else:
            assert rec.reward == pytest.approx((0.75 + 0.75 + 0.25) / 3)
    # prose verdicts are unparseable (records #13, #113); retries absorb most transport faults
    assert kinds.get("unparseable", 0) >= 2 * 3
    assert set(kinds) <= {"unparseable", "judge_error", "timeout"}
    scored = sum(r.status == "ok" for r in got)
    assert scored >= 0.7 * N
