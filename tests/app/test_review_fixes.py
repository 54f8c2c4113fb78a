"""Edges of the HTTP face found in review: a 422 that grew with the body, ``/get_reward`` refused
after 30 s in the queue, a NaN id sent back as ``null``, a body with no Content-Type, a null field
called "missing", and the bearer scheme compared case-sensitively."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError

from rm_service._http_schemas import CHUNK, ERROR_LIMIT, ITEM_ERROR_LIMIT
from rm_service.app import _validation_error
from tests.app import MATH_CFG, client, make_app

JSON = {"content-type": "application/json"}
GOOD = "<think>hm</think><answer>42</answer>"


async def _wait_for(cond: Callable[[], bool]) -> None:
    """Poll ``cond`` (admission state has no event to wait on), for at most 10 s."""
    async with asyncio.timeout(10.0):
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def _ones(n: int) -> bytes:
    return b",".join([b"1"] * n)


# --- 1. a 422 stays small and fast -----------------------------------------------------------


async def test_a_million_non_object_records_get_a_small_fast_422() -> None:
    """A 2 MB body of a million non-objects was a million errors echoed back: a 105 MB 422 after
    about a minute, the event loop (and ``/healthz``) held meanwhile."""
    body = b'{"records": [' + _ones(1_000_000) + b"]}"
    async with client(make_app(), timeout=600) as c:
        start = time.monotonic()
        resp = await c.post("/grade", content=body, headers=JSON)
        took = time.monotonic() - start
    assert resp.status_code == 422
    assert len(resp.content) < 20_000, len(resp.content)
    detail = resp.json()["detail"]
    assert [e["loc"] for e in detail[:ITEM_ERROR_LIMIT]] == [
        ["body", "records", i] for i in range(ITEM_ERROR_LIMIT)
    ]
    assert detail[0]["type"] == "dict_type" and detail[0]["input"] == 1
    last = detail[-1]
    assert last["type"] == "too_many_errors" and last["loc"] == ["body", "records"]
    assert last["ctx"] == {"shown": ITEM_ERROR_LIMIT, "more": 1_000_000 - ITEM_ERROR_LIMIT}
    assert len(detail) == ITEM_ERROR_LIMIT + 1
    assert took < 10, took  # about 0.4 s here; 61 s before


async def test_get_reward_with_200k_non_string_queries_gets_a_small_422() -> None:
    body = b'{"query": [' + _ones(200_000) + b"]}"
    async with client(make_app({"m": MATH_CFG}), timeout=600) as c:
        resp = await c.post("/get_reward", content=body, headers=JSON)
    assert resp.status_code == 422
    assert len(resp.content) < 20_000, len(resp.content)
    detail = resp.json()["detail"]
    assert detail[0]["loc"] == ["body", "query", 0] and detail[0]["type"] == "string_type"
    assert detail[-1]["ctx"]["more"] == 200_000 - ITEM_ERROR_LIMIT


async def test_few_bad_items_are_each_reported_at_their_index() -> None:
    """Past the first chunk too: a long list is validated a chunk at a time, and an error's
    index is the item's in the whole list."""
    bad = [3, CHUNK + 5, 2 * CHUNK + 1]
    records: list[Any] = [{"response": GOOD}] * (2 * CHUNK + 10)
    for i in bad:
        records[i] = "not an object"
    async with client(make_app()) as c:
        resp = await c.post("/grade", json={"records": records})
        short = await c.post("/grade", json={"records": [{"response": GOOD}, 7, 8]})
    assert resp.status_code == 422
    assert [e["loc"] for e in resp.json()["detail"]] == [["body", "records", i] for i in bad]
    assert [e["loc"][-1] for e in short.json()["detail"]] == [1, 2]  # no count entry


async def test_a_long_valid_list_is_graded_whole() -> None:
    """The chunked validation keeps every item, in order."""
    n = 2 * CHUNK + 3
    query = [f"It is {i % 10}." for i in range(n)]
    async with client(make_app({"m": MATH_CFG}), timeout=120) as c:
        resp = await c.post("/get_reward", json={"query": query, "labels": ["7"] * n})
    assert resp.status_code == 200, resp.text[:500]
    rewards = resp.json()["rewards"]
    assert rewards == [1.0 if i % 10 == 7 else 0.0 for i in range(n)]


async def test_the_422_handler_reports_at_most_its_limit() -> None:
    """The handler's own cap, for errors that no field's cap bounds."""
    errors = [{"type": "missing", "loc": ("body", "f"), "msg": "x", "input": 1}] * 100_000
    resp = await _validation_error(None, RequestValidationError(errors))  # type: ignore[arg-type]
    assert resp.status_code == 422
    detail = json.loads(bytes(resp.body))["detail"]
    assert len(detail) == ERROR_LIMIT + 1
    assert detail[-1]["type"] == "too_many_errors"
    assert detail[-1]["ctx"] == {"shown": ERROR_LIMIT, "more": 100_000 - ERROR_LIMIT}


# --- 2. /get_reward waits for admission up to its deadline -------------------------------------


async def test_get_reward_not_admitted_answers_unscored_and_holds_no_grade_behind_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not admitted within ``queue_timeout``, ``/get_reward`` got a 429 (OpenRLHF fails a run
    after a few); it answers every record unscored instead. It leaves the queue then, as before:
    the queue admits in order, and waiting longer (to its deadline) held a 1-record ``/grade``
    behind it until that one's own 429, with a slot free all along."""
    monkeypatch.setenv("RM_TEST_DELAY", "2")
    app = make_app(max_in_flight=2, max_records=2, max_queue=10, queue_timeout=0.5)
    admission = app.state.admission
    async with client(app) as c:
        first = asyncio.ensure_future(c.post("/grade", json={"records": [{"response": "a"}]}))
        await _wait_for(lambda: admission.in_flight == 1)
        big = asyncio.ensure_future(
            c.post("/get_reward", json={"query": [GOOD, "x"], "prompts": ["", ""]})
        )
        await _wait_for(lambda: admission.queued == 2)
        await asyncio.sleep(0.3)
        small = await c.post("/grade", json={"records": [{"response": "b"}]})
        resp = await big
        assert (await first).status_code == 200
    assert small.status_code == 200, small.text
    assert resp.status_code == 200, resp.text
    assert resp.json()["extra_logs"]["rm_error"] == [1.0, 1.0]
    assert admission.in_flight == 0 and admission.queued == 0


async def test_get_reward_unadmitted_by_its_deadline_comes_back_unscored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The README: answered within the deadline, wait for admission included, what is
    unfinished unscored (``kind=timeout``, ``rm_error`` = 1), never a 429 for waiting."""
    monkeypatch.setenv("RM_TEST_DELAY", "3")
    app = make_app(
        max_in_flight=1,
        max_records=1,
        max_queue=5,
        queue_timeout=0.05,
        get_reward_deadline=0.5,
        unscored_fallback=-1.0,
    )
    admission = app.state.admission
    async with client(app) as c:
        first = asyncio.ensure_future(c.post("/grade", json={"records": [{"response": "a"}]}))
        await _wait_for(lambda: admission.in_flight == 1)
        resp = await c.post("/get_reward", json={"query": [GOOD, "x"], "prompts": ["", ""]})
        assert admission.queued == 0  # its place was given back
        assert (await first).status_code == 200
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["rewards"] == [-1.0, -1.0]
    assert body["extra_logs"]["rm_error"] == [1.0, 1.0]
    assert body["extra_logs"]["fmt/unscored"] == [1.0, 1.0]  # not graded at all
    assert b'kind="timeout"' in app.state.metrics.render()
    assert admission.in_flight == 0


# --- 3. a NaN id -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["NaN", '{"k": [1, NaN]}', "[NaN]", "Infinity"])
async def test_a_nan_id_is_a_422_naming_it(bad: str) -> None:
    """A NaN id came back as ``null`` (strict JSON has no NaN): an id that no longer joins its
    record, and two of them indistinguishable. Like ``Infinity``, a 422 naming it."""
    body = '{"records": [{"id": 1, "response": "x"}, {"id": ' + bad + ', "response": "y"}]}'
    async with client(make_app()) as c:
        resp = await c.post("/grade", content=body, headers=JSON)
    assert resp.status_code == 422, resp.text
    (err,) = resp.json()["detail"]
    assert err["loc"] == ["body", "records", 1, "id"]
    assert "NaN" in err["msg"] and "could not come back as sent" in err["msg"]


# --- 4. no Content-Type ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/grade", "/get_reward"])
async def test_a_body_with_no_content_type_is_415_saying_to_send_json(path: str) -> None:
    """It was a 422 echoing the whole body back as a string (FastAPI reads a body with no
    content type as bytes), whether or not the body was JSON."""
    body = json.dumps({"records": [{"response": GOOD}], "query": ["a"]}).encode()
    async with client(make_app({"m": MATH_CFG})) as c:
        resp = await c.post(path, content=body)
    assert "content-type" not in resp.request.headers
    assert resp.status_code == 415, resp.text
    detail = resp.json()["detail"]
    assert "no Content-Type" in detail and "application/json" in detail
    assert "records" not in detail  # the body is not echoed


async def test_a_post_elsewhere_gets_the_routers_answer_not_415() -> None:
    async with client(make_app()) as c:
        assert (await c.post("/healthz", content=b"x")).status_code == 405
        assert (await c.post("/nowhere", content=b"x")).status_code == 404


# --- 5. a null field is called null ------------------------------------------------------------


async def test_a_null_field_is_called_null_not_missing() -> None:
    """It read "missing required field(s) 'response' (record has: ..., response)"."""
    app = make_app({"m": {"graders": {"format": {"type": "format"}}}})
    records = [
        {"id": 1, "query": "q", "response": None, "ground_truth": "2"},
        {"id": 2, "query": "q"},
    ]
    async with client(app) as c:
        resp = await c.post("/grade", json={"records": records})
    assert resp.status_code == 200, resp.text
    null, absent = (r["errors"]["format"]["error"] for r in resp.json()["results"])
    assert null == (
        "required field(s) 'response', which are null in the record "
        "(record has: ground_truth, id, query)"
    )
    assert absent == "missing required field(s) 'response' (record has: id, query)"


# --- 6. the bearer scheme in any case ----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("Bearer s3cret", 200),
        ("bearer s3cret", 200),
        ("BEARER s3cret", 200),
        ("Bearer  s3cret", 200),
        ("bearer wrong", 401),
        ("Basic s3cret", 401),
        ("bearers3cret", 401),
        ("s3cret", 401),
        ("Bearer ", 401),
    ],
)
async def test_the_bearer_scheme_is_case_insensitive(header: str, status: int) -> None:
    """RFC 7235: the scheme is case-insensitive; ``bearer <key>`` got 401 with the right key."""
    async with client(make_app(api_key="s3cret")) as c:
        resp = await c.get("/graders", headers={"Authorization": header})
    assert resp.status_code == status, resp.text


@pytest.mark.parametrize("key", [" lead", "trail ", "\tboth\n"])
def test_a_key_no_header_can_carry_is_refused_at_start(key: str) -> None:
    """ " lead" started, and every client got 401: the spaces after the scheme are skipped."""
    with pytest.raises(ValueError, match="starts or ends with whitespace"):
        make_app(api_key=key)
