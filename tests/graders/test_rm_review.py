"""Review of the learned reward-model graders: defects an attacker or a new user hits, each
with the test that failed before its fix (tiny local RM of :mod:`tests.rm_support`, the mock
server of :mod:`tests.rm_server`, nothing beyond 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from graders import RewardModelGrader, get_grader
from graders._rm_score import fit_score_map, score_map
from rm_service._calibrate import calibrate
from rm_service._result import GraderError, GraderScore
from tests.rm_server import RMServer, raw_score, sigmoid
from tests.rm_support import make_tiny_rm


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_rm(tmp_path_factory.mktemp("tiny-rm-review"))


class ContextLimited(RMServer):
    """Refuses a whole request with a 400 when one of its texts is over 200 characters, as vLLM
    does for an input past the model's context."""

    async def _handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        if any(len(t) > 200 for t in self._texts(request.path.removeprefix("/v1"), body)):
            self.stats.batch_sizes.append(-1)  # a refused request
            return web.json_response({"error": "maximum context length exceeded"}, status=400)
        return await super()._handle(request)


async def test_one_input_the_server_refuses_does_not_cost_its_batch_mates() -> None:
    """Before: the 400 for the batch was every record's judge_error; whether a record was scored
    depended on which records shared its request."""
    records = [("Q", f"short answer {i}") for i in range(4)] + [("Q", "long answer " * 40)]
    with ContextLimited() as server:
        grader = get_grader(
            "remote_reward_model", url=server.url("classify"), max_batch=8, pregates=False
        )
        got = await asyncio.gather(*(grader.aevaluate(query=q, response=r) for q, r in records))
    for (q, r), res in zip(records[:4], got[:4], strict=True):
        assert isinstance(res, GraderScore), res
        assert res.score == pytest.approx(sigmoid(raw_score(q + r)))
    assert isinstance(got[4], GraderError) and got[4].kind == "judge_error"
    assert "HTTP 400" in got[4].error


async def test_remote_text_input_refuses_a_conversation_it_would_drop() -> None:
    """Before: a ``messages`` record with ``input_format: text`` sent the response alone, so
    every question got the same score."""
    with RMServer() as server:
        grader = get_grader(
            "remote_reward_model", url=server.url("pooling"), format="pooling", pregates=False
        )
        got = [
            await grader.aevaluate(messages=[{"role": "user", "content": q}], response="Paris.")
            for q in ("What is the capital of France?", "Say something rude.")
        ]
        assert server.stats.requests == 0
    for res in got:
        assert isinstance(res, GraderError) and res.kind == "invalid_input", res
        assert "input_format: chat" in res.error


async def test_local_text_input_refuses_a_conversation_it_would_drop(rm_dir: Path) -> None:
    grader = RewardModelGrader(path=str(rm_dir), input_format="text", pregates=False)
    asked = [{"role": "user", "content": "What is the capital of France?"}]
    res = await grader.aevaluate(messages=asked, response="Paris.")
    assert isinstance(res, GraderError) and res.kind == "invalid_input", res
    # with a text query it still reads query + response
    ok = await grader.aevaluate(messages=asked, query="Capital?", response="Paris.")
    assert isinstance(ok, GraderScore) and ok.metadata["input"] == "text"


def test_calibrate_fits_every_raw_whatever_the_configs_map(rm_dir: Path, tmp_path: Path) -> None:
    """Before: under ``score_map: identity`` every record whose logit was outside [0, 1] was
    unscored and skipped, and the map was fitted on the rest, a biased subset."""
    reference = tmp_path / "ref.jsonl"
    rows = []
    for i in range(16):
        rnd = random.Random(i)
        text = "".join(rnd.choice("abcdefgh <>/!?XYZ") for _ in range(rnd.randint(3, 30)))
        rows.append(json.dumps({"query": f"Question {i}?", "response": text}) + "\n")
    reference.write_text("".join(rows))
    config = tmp_path / "rm.yaml"
    grader: dict[str, Any] = {"type": "reward_model", "path": str(rm_dir), "pregates": False}
    config.write_text(
        yaml.safe_dump(
            {
                "graders": {"rm": {**grader, "score_map": {"map": "identity"}}},
                "aggregators": [],
                "reward": "rm",
            }
        )
    )
    result = calibrate(reference, config, output=tmp_path / "out.yaml")
    assert result.skipped == {}
    assert len(result.raws) == 16
    assert any(not 0.0 <= r <= 1.0 for r in result.raws)  # what identity refused


def test_extreme_raws_never_map_to_a_silent_zero_or_a_nan_knot() -> None:
    """Before: knots further apart than the float range gave inf / inf, clamped to 0.0 for every
    raw between them; a two-sample quantile fit of such outputs gave a NaN knot (every score
    0.0, and a config that no longer loads); a logistic fit raised OverflowError, which
    ``rm-service calibrate`` did not catch."""
    m = score_map({"map": "quantile", "knots": [-1e308, 1e308]}, where="rm")
    scores = [m(x) for x in (-9e307, -5e307, 0.0, 5e307, 9e307)]
    assert scores == sorted(scores) and scores[2] == pytest.approx(0.5)
    fitted = fit_score_map([-1.7e308, 1.7e308], kind="quantile")
    assert fitted.knots == (-1.7e308, 1.7e308)
    assert fitted(0.0) == pytest.approx(0.5)
    score_map(fitted.describe(), where="rm")  # what calibrate writes loads again
    with pytest.raises(ValueError, match="1e150"):
        fit_score_map([-1e200, 1e200, 0.0, 1.0], kind="logistic", labels=[0, 1, 0, 1])
