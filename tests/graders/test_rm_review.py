"""Review of the learned reward-model graders: defects an attacker or a new user hits, each
with the test that failed before its fix (tiny local RM of :mod:`tests.rm_support`, the mock
server of :mod:`tests.rm_server`, nothing beyond 127.0.0.1)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from graders import RewardModelGrader, get_grader
from graders._rm_score import fit_score_map, score_map
from rm_service._calibrate import calibrate
from rm_service._exceptions import ConfigError
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


def test_calibrate_leaves_a_ready_made_grader_s_map_alone(
    rm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: calibrate set the default sigmoid on the grader it graded with, which for a
    ready-made instance named by import string is the module's own object, so every later
    load of the config in the process scored with the wrong map."""
    ready = RewardModelGrader(
        path=str(rm_dir), score_map={"map": "identity"}, pregates=False, name="rm"
    )
    module = types.ModuleType("rm_review_ready_made")
    module.RM = ready  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    reference = tmp_path / "ref.jsonl"
    reference.write_text(
        "".join(json.dumps({"query": f"Q{i}?", "response": "ab " * i}) + "\n" for i in range(8))
    )
    config = tmp_path / "rm.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "graders": {"rm": {"type": f"{module.__name__}:RM"}},
                "aggregators": [],
                "reward": "rm",
            }
        )
    )
    # (a ready-made instance takes no score_map param, so the written config does not load)
    with contextlib.suppress(ConfigError):
        calibrate(reference, config, output=tmp_path / "out.yaml")
    assert ready.score_map.kind == "identity"


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


class RefusesAll(RMServer):
    """Refuses every request with a 400, as vLLM answers a request whose form it rejects (an
    ``extra_body`` field it does not know, a bad ``model``): a config error, not one record."""

    async def _handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.stats.requests += 1
        self.stats.batch_sizes.append(len(self._texts(request.path, body)))
        return web.json_response({"error": "extra fields not permitted"}, status=400)


async def test_a_lone_record_the_server_refuses_is_sent_once() -> None:
    """Before: a record alone in its request was sent again alone (``max_batch`` > 1), two
    requests for one refusal."""
    with RefusesAll() as server:
        grader = get_grader("remote_reward_model", url=server.url("classify"), pregates=False)
        res = await grader.aevaluate(query="Q", response="A")
        assert server.stats.requests == 1
    assert isinstance(res, GraderError) and res.kind == "judge_error" and "HTTP 400" in res.error


async def test_a_config_error_is_not_one_request_per_record() -> None:
    """Before: every record of every refused batch was sent again alone, 64 records in batches
    of 16 made 68 requests to a server that refuses them all (with ``rpm``, the extra requests
    waited for the limit and most records became ``timeout`` instead of the server's 400)."""
    with RefusesAll() as server:
        grader = get_grader(
            "remote_reward_model", url=server.url("classify"), max_batch=16, pregates=False
        )
        got = await asyncio.gather(
            *(grader.aevaluate(query="Q", response=f"answer {i}") for i in range(64))
        )
        requests = server.stats.requests
    assert all(isinstance(r, GraderError) and r.kind == "judge_error" for r in got)
    assert all("HTTP 400" in r.error for r in got if isinstance(r, GraderError))
    batches = sum(1 for n in server.stats.batch_sizes if n > 1)
    assert requests <= 3 * batches < 64, server.stats.batch_sizes


class SlowContextLimited(ContextLimited):
    """:class:`ContextLimited`, every answer (refusals too) after ``delay`` seconds."""

    delay = 0.4

    async def _handle(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
        return await super()._handle(request)


async def test_a_split_batch_keeps_its_deadline_and_counts_its_attempts() -> None:
    """Before: the records of a refused batch were sent alone with a fresh ``deadline`` (a
    record could take twice the deadline) and their ``attempts`` left out the batch's request."""
    long = "long answer " * 40
    with SlowContextLimited() as server:

        async def pair(**limits: Any) -> list[Any]:
            """A short and a too-long record, batched together by one grader."""
            grader = get_grader(
                "remote_reward_model",
                url=server.url("classify"),
                max_batch=8,
                max_wait_ms=50,
                pregates=False,
                **limits,
            )
            return await asyncio.gather(
                grader.aevaluate(query="Q", response="short"),
                grader.aevaluate(query="Q", response=long),
            )

        got = await pair()
        assert isinstance(got[0], GraderScore), got[0]
        assert got[0].metadata["attempts"] == 2  # the refused batch's request and its own
        assert got[0].metadata["batch_size"] == 1
        late = await pair(timeout=0.6, deadline=0.6)
        await asyncio.sleep(2 * server.delay)  # the requests cut at the deadline end
    # 0.4 s for the refused batch, 0.4 s more alone: past the 0.6 s deadline
    assert all(isinstance(r, GraderError) and r.kind == "timeout" for r in late), late


def test_a_quantile_map_on_subnormal_knots_does_not_divide_by_zero() -> None:
    """Before: the halved interpolation made knots 0 and 5e-324 one point (5e-324 / 2 is 0),
    a ZeroDivisionError for a raw of 0 (neither a score nor a ValueError the graders catch)."""
    m = score_map({"map": "quantile", "knots": [0.0, 5e-324]}, where="rm")
    assert m(0.0) == 0.0 and m(5e-324) == 1.0
    fitted = fit_score_map([0.0, 5e-324, 0.0, 5e-324], kind="quantile")
    assert fitted(0.0) == pytest.approx(1 / 3)
