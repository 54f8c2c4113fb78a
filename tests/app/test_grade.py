"""``POST /grade``: order, statuses, nulls with reasons, deadlines, rewards, disconnects."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.app import MATH_CFG, SLOW_CFG, client, http_scope, make_app

GOOD = "<think>hm</think><answer>42</answer>"


async def test_results_come_back_in_input_order_with_summary() -> None:
    app = make_app()
    # Lengths 1..40: slow_len scores len/20 (capped at 1), so each result shows its record.
    records = [{"id": f"r{i}", "response": "x" * (i + 1)} for i in range(40)]
    async with client(app) as c:
        resp = await c.post("/grade", json={"records": records})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["reward"] == "main"
    results = body["results"]
    assert [r["index"] for r in results] == list(range(40))
    assert [r["id"] for r in results] == [f"r{i}" for i in range(40)]
    assert [r["scores"]["slow"] for r in results] == [min(1.0, (i + 1) / 20) for i in range(40)]
    # No think/answer tags: fmt scores 0 (a real score, with a reason), the record is ok.
    assert all(r["status"] == "ok" and r["scores"]["fmt"] == 0.0 for r in results)
    assert results[0]["reasons"]["fmt"]
    summary = body["summary"]
    assert (summary["n"], summary["ok"], summary["unscored"], summary["error"]) == (40, 40, 0, 0)
    assert summary["means"]["fmt"] == 0.0
    assert summary["means"]["slow"] == pytest.approx(
        sum(min(1, (i + 1) / 20) for i in range(40)) / 40
    )
    assert summary["latency_s"] > 0


async def test_invalid_record_is_status_error_with_null_and_the_field_named() -> None:
    app = make_app()
    async with client(app) as c:
        resp = await c.post("/grade", json={"records": [{"response": GOOD}, {"answer": GOOD}]})
    ok, bad = resp.json()["results"]
    assert ok["status"] == "ok" and ok["reward"] == pytest.approx(1.0)
    assert bad["status"] == "error"
    assert bad["reward"] is None  # never a plausible number
    assert bad["scores"] == {"fmt": None, "slow": None, "reward": None}
    assert "'response'" in bad["errors"]["fmt"]["error"]
    assert bad["errors"]["fmt"]["kind"] == "invalid_input"
    assert resp.json()["summary"]["error"] == 1


async def test_a_record_that_is_not_an_object_is_a_422_naming_it() -> None:
    app = make_app()
    async with client(app) as c:
        resp = await c.post("/grade", json={"records": [{"response": "a"}, "oops"]})
    assert resp.status_code == 422
    (err,) = resp.json()["detail"]
    assert err["loc"] == ["body", "records", 1]


async def test_request_deadline_returns_unscored_timeout_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RM_TEST_DELAY", "5")
    app = make_app()
    start = time.perf_counter()
    async with client(app) as c:
        resp = await c.post("/grade", json={"records": [{"response": GOOD}] * 3, "deadline": 0.2})
    assert time.perf_counter() - start < 2
    results = resp.json()["results"]
    for r in results:
        assert r["status"] == "unscored" and r["reward"] is None
        assert r["errors"]["slow"]["kind"] == "timeout"
        assert r["scores"]["fmt"] == 1.0  # the finished component keeps its score
    assert resp.json()["summary"]["unscored_by_kind"]["timeout"] >= 3


async def test_server_deadline_caps_the_request_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RM_TEST_DELAY", "5")
    app = make_app(deadline=0.2)
    start = time.perf_counter()
    async with client(app) as c:
        resp = await c.post("/grade", json={"records": [{"response": GOOD}], "deadline": 60})
    assert time.perf_counter() - start < 2
    assert resp.json()["results"][0]["errors"]["slow"]["kind"] == "timeout"


async def test_named_rewards_and_an_unknown_one() -> None:
    app = make_app({"main": SLOW_CFG, "math": MATH_CFG})
    async with client(app) as c:
        resp = await c.post(
            "/grade",
            json={"reward": "math", "records": [{"response": "so 7", "label": "7"}]},
        )
        assert resp.json()["reward"] == "math"
        assert resp.json()["results"][0]["reward"] == 1.0
        resp = await c.post("/grade", json={"reward": "nope", "records": []})
    assert resp.status_code == 422
    (err,) = resp.json()["detail"]  # FastAPI's own 422 shape, naming the field
    assert err["loc"] == ["body", "reward"] and "'nope' is not a configured reward" in err["msg"]


async def test_empty_batch_is_fine() -> None:
    async with client(make_app()) as c:
        resp = await c.post("/grade", json={"records": []})
    assert resp.status_code == 200 and resp.json()["results"] == []


def _client(body: bytes, gone: asyncio.Event) -> Any:
    """An ASGI ``receive`` that delivers ``body`` and then disconnects once ``gone`` is set."""
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    return receive


async def test_client_disconnect_cancels_its_grading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RM_TEST_DELAY", "30")
    app = make_app()
    body = json.dumps({"records": [{"response": "x"}, {"response": "y"}]}).encode()
    gone = asyncio.Event()
    receive = _client(body, gone)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope("/grade", [(b"content-type", b"application/json")])
    task = asyncio.ensure_future(app(scope, receive, send))
    admission, metrics = app.state.admission, app.state.metrics
    for _ in range(300):
        if metrics.registry.get_sample_value("rm_grader_calls_in_flight") == 2:
            break
        await asyncio.sleep(0.01)
    assert admission.in_flight == 2
    gone.set()
    await asyncio.wait_for(task, 5)  # not 30 s: the grading was cancelled
    assert admission.in_flight == 0
    assert metrics.registry.get_sample_value("rm_grader_calls_in_flight") == 0
    assert sent[0]["status"] == 499


async def test_the_hand_built_response_matches_its_documented_model_exactly() -> None:
    """``/grade`` serialises plain dicts (for speed); they must be exactly what the documented
    ``GradeResponse`` would produce: every field, no extra one, ok, error and timeout alike."""
    from rm_service._http_schemas import GradeResponse

    app = make_app()
    records = [{"id": 1, "response": GOOD}, {"id": "b", "answer": 1}, {"response": "x" * 30}]
    async with client(app) as c:
        resp = await c.post("/grade", json={"records": records, "deadline": 5})
        late = await c.post("/grade", json={"records": [{"response": GOOD}], "deadline": 0.001})
    for r in (resp, late):
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert GradeResponse.model_validate(body).model_dump(mode="json") == body
    assert [x["status"] for x in resp.json()["results"]] == ["ok", "error", "ok"]
    assert late.json()["results"][0]["errors"]["slow"]["kind"] == "timeout"


async def test_an_id_with_a_lone_surrogate_comes_back_escaped_not_a_500() -> None:
    app = make_app()
    body = '{"records": [{"id": "a\\ud800", "response": "x"}]}'
    async with client(app) as c:
        resp = await c.post("/grade", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    assert b'"a\\ud800"' in resp.content
    assert resp.json()["results"][0]["id"] == "a\ud800"


async def test_metadata_strict_json_cannot_hold_is_made_plain_not_a_500() -> None:
    """A custom grader's metadata holding NaN or a numpy number: /grade with metadata answered
    500 for the whole batch (and the remote reward functions always ask for metadata)."""
    app = make_app({"main": {"graders": {"odd": {"type": "tests.support:odd_metadata"}}}})
    async with client(app) as c:
        resp = await c.post(
            "/grade", json={"records": [{"response": "x"}] * 2, "include_metadata": True}
        )
    assert resp.status_code == 200, resp.text
    rows = resp.json()["results"]
    assert [r["reward"] for r in rows] == [1.0, 1.0]
    assert rows[0]["metadata"]["odd"] == {
        "ratio": None,
        "big": None,
        "np": 0.5,
        "arr": [1, 2],
        "pair": [1, 2],
        "tags": ["a"],
    }


async def test_ids_of_any_json_type_come_back_as_sent() -> None:
    """A float, bool or object id made /grade answer 422 for the whole request (a pandas id
    column with a gap is floats), and a remote reward function lost every record of the chunk;
    ids are the caller's, and come back as sent (a NaN, which strict JSON has not, is a 422:
    see ``test_a_nan_id_is_a_422_naming_it``)."""
    app = make_app({"m": {"graders": {"f": {"type": "format"}}}})
    body = (
        '{"records": [{"id": 1.5, "response": "a"}, {"id": true, "response": "b"},'
        ' {"id": {"k": [1, "x"]}, "response": "c"}, {"id": null, "response": "d"},'
        ' {"id": "7", "response": "e"}]}'
    )
    async with client(app) as c:
        resp = await c.post("/grade", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    rows = json.loads(resp.content, parse_constant=lambda name: pytest.fail(f"{name} sent"))
    assert [r["id"] for r in rows["results"]] == [1.5, True, {"k": [1, "x"]}, None, "7"]
    assert all(r["status"] == "ok" for r in rows["results"])


async def test_a_client_that_leaves_while_queued_frees_its_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request waiting for admission whose client disconnects gives its queue place back at
    once: it held it until admitted or the queue timeout (30 s), and meanwhile a new request
    got 429 with nobody really waiting."""
    monkeypatch.setenv("RM_TEST_DELAY", "30")
    app = make_app(max_records=2, max_in_flight=2, max_queue=2, queue_timeout=30)
    admission = app.state.admission
    body = json.dumps({"records": [{"response": "x"}, {"response": "y"}]}).encode()
    scope = http_scope("/grade", [(b"content-type", b"application/json")])

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    first_gone, second_gone = asyncio.Event(), asyncio.Event()
    first = asyncio.ensure_future(app(scope, _client(body, first_gone), send))
    for _ in range(300):
        if admission.in_flight == 2:
            break
        await asyncio.sleep(0.01)
    second = asyncio.ensure_future(app(scope, _client(body, second_gone), send))
    for _ in range(300):
        if admission.queued == 2:
            break
        await asyncio.sleep(0.01)
    assert admission.queued == 2
    second_gone.set()
    await asyncio.wait_for(second, 5)
    assert admission.queued == 0  # freed at once, not at the 30 s queue timeout
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [499]
    first_gone.set()
    await asyncio.wait_for(first, 5)
    assert admission.in_flight == 0


@pytest.mark.parametrize(
    ("headers", "word"),
    [
        ([(b"content-type", b"application/x-www-form-urlencoded")], "application/json"),
        ([(b"content-type", b"text/plain")], "application/json"),
        ([(b"content-type", b"application/json"), (b"content-encoding", b"gzip")], "gzip"),
    ],
)
async def test_a_body_that_is_not_plain_json_is_415_saying_what_to_send(
    headers: list[tuple[bytes, bytes]], word: str
) -> None:
    """``curl -d`` sends a form unless told otherwise: the answer was a 422 about a
    "dictionary" for a body that is a JSON object, and a gzip body a 400 naming no cause."""
    app = make_app()
    body = json.dumps({"records": [{"response": GOOD}]}).encode()
    async with client(app) as c:
        resp = await c.post(
            "/grade", content=body, headers=[(k.decode(), v.decode()) for k, v in headers]
        )
    assert resp.status_code == 415, resp.text
    assert word in resp.json()["detail"]
    async with client(app) as c:  # JSON with a charset is JSON
        ok = await c.post(
            "/grade", content=body, headers={"content-type": "application/json; charset=utf-8"}
        )
    assert ok.status_code == 200


async def test_an_id_past_the_float_range_is_a_422_naming_it() -> None:
    """``1e400`` is a valid JSON number that a float cannot hold: it came back as ``null`` with
    a 200, an id that no longer joins its record. Now a 422 naming ``records[1].id``."""
    app = make_app()
    for bad in ("1e400", "-1e400", '{"a": [1e999]}'):
        body = '{"records": [{"id": 1, "response": "x"}, {"id": ' + bad + ', "response": "y"}]}'
        async with client(app) as c:
            resp = await c.post(
                "/grade", content=body, headers={"content-type": "application/json"}
            )
        assert resp.status_code == 422, resp.text
        assert "records" in resp.text and "id" in resp.text and "float range" in resp.text


async def test_an_empty_reward_name_is_not_the_default() -> None:
    """``"reward": ""`` was read as "not given" and graded with the default reward, while any
    other unknown name is a 422."""
    async with client(make_app()) as c:
        resp = await c.post("/grade", json={"records": [{"response": GOOD}], "reward": ""})
    assert resp.status_code == 422 and "reward" in resp.text
