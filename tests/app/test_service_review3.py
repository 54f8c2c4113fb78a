"""Edges of the HTTP face found in a third review: a ``/grade`` deadline that did not bound its
wait for admission, a misspelt ``/grade`` field silently ignored, ``RM_SERVICE_STRIP_PATTERNS``
unread by the service, a 400 that named no cause, and a shutdown that waited for every request
in flight to reach its deadline."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from rm_service._http_schemas import ServiceSettings
from tests.app import client, make_app
from tests.app.uvicorn_server import running_server

JSON = {"content-type": "application/json"}
GOOD = "<think>hm</think><answer>42</answer>"

SLOW_YAML = """\
graders:
  slow: {type: "tests.support:slow_len"}
"""
"""One grader that sleeps ``RM_TEST_DELAY`` seconds, for the real server."""


async def _wait_for(cond: Callable[[], bool]) -> None:
    """Poll ``cond`` (admission state has no event to wait on), for at most 10 s."""
    async with asyncio.timeout(10.0):
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


# --- 1. a /grade deadline bounds its wait for admission ----------------------------------------


async def test_a_grade_deadline_bounds_its_wait_for_admission(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``/grade`` asking for 0.5 s behind a busy service waited the whole ``queue_timeout``
    (30 s) and then got a 429; it is answered at its deadline, every record unscored
    (``timeout``), as the README says of any deadline."""
    monkeypatch.setenv("RM_TEST_DELAY", "3")
    app = make_app(max_in_flight=1, max_records=1, max_queue=5)
    admission = app.state.admission
    async with client(app) as c:
        first = asyncio.ensure_future(c.post("/grade", json={"records": [{"response": "a"}]}))
        await _wait_for(lambda: admission.in_flight == 1)
        start = time.monotonic()
        resp = await c.post("/grade", json={"records": [{"response": GOOD}], "deadline": 0.5})
        took = time.monotonic() - start
        assert admission.queued == 0  # its place was given back
        assert (await first).status_code == 200
    assert took < 2.0, took
    assert resp.status_code == 200, resp.text
    rec = resp.json()["results"][0]
    assert rec["reward"] is None and rec["status"] == "unscored"
    assert {e["kind"] for e in rec["errors"].values()} == {"timeout"}
    assert "waiting for admission" in rec["errors"]["reward"]["error"]


async def test_a_grade_deadline_past_the_queue_timeout_still_gets_a_429(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shedding load is unchanged: past ``queue_timeout`` (shorter than the deadline) a
    ``/grade`` gets the 429 with ``Retry-After``."""
    monkeypatch.setenv("RM_TEST_DELAY", "2")
    app = make_app(max_in_flight=1, max_records=1, max_queue=5, queue_timeout=0.2)
    admission = app.state.admission
    async with client(app) as c:
        first = asyncio.ensure_future(c.post("/grade", json={"records": [{"response": "a"}]}))
        await _wait_for(lambda: admission.in_flight == 1)
        resp = await c.post("/grade", json={"records": [{"response": "b"}], "deadline": 10})
        await first
    assert resp.status_code == 429, resp.text
    assert resp.headers["retry-after"] == "1"


# --- 2. an unknown /grade field is a 422 -------------------------------------------------------


@pytest.mark.parametrize("field", ["rewards", "Reward", "dedline", "includeMetadata"])
async def test_an_unknown_grade_field_is_a_422_naming_it(field: str) -> None:
    """A misspelt ``reward`` was ignored and the batch graded by the default reward: a
    plausible number from a reward nobody asked for. Our own client sends only known fields."""
    app = make_app({"a": {"graders": {"n": {"type": "length_penalty", "max_len": 5}}}})
    async with client(app) as c:
        resp = await c.post("/grade", json={"records": [{"response": "x"}], field: "a"})
    assert resp.status_code == 422, resp.text
    (err,) = resp.json()["detail"]
    assert err["loc"] == ["body", field]
    assert "records, reward, deadline, include_metadata" in err["msg"]


# --- 3. RM_SERVICE_STRIP_PATTERNS --------------------------------------------------------------


def test_the_service_reads_the_strip_patterns_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The README's ``/get_reward``: "``RM_SERVICE_STRIP_PATTERNS`` replaces the list"; only
    OpenRLHF's ``reward_func`` read it, and ``rm-service serve`` kept the default list."""
    monkeypatch.chdir(tmp_path)  # no .env of the checkout's
    monkeypatch.setenv("RM_SERVICE_STRIP_PATTERNS", "<stop> <\\|x\\|>")
    settings = ServiceSettings.from_env()
    assert settings.strip_patterns == ("<stop>", "<\\|x\\|>")
    text = "a<stop>b<|x|><|im_end|>"
    assert settings.stripper.strip(text) == "ab<|im_end|>"
    monkeypatch.setenv("RM_SERVICE_STRIP_PATTERNS", "")  # as reward_func: strip nothing
    assert ServiceSettings.from_env().stripper.strip(text) == text
    monkeypatch.setenv("RM_SERVICE_STRIP_PATTERNS", "(unclosed")
    with pytest.raises(ValueError, match=r"RM_SERVICE_STRIP_PATTERNS\): invalid regex"):
        ServiceSettings.from_env()


async def test_get_reward_strips_what_the_environment_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RM_SERVICE_STRIP_PATTERNS", "")
    cfg = {"graders": {"m": {"type": "string_match", "mapper": {"reference_response": "label"}}}}
    from rm_service.app import create_app

    app = create_app({"r": cfg}, ServiceSettings.from_env())
    body = {"query": ["Q: hi? A: ok<|im_end|>"], "prompts": ["Q: hi? A: "], "labels": ["ok"]}
    async with client(app) as c:
        resp = await c.post("/get_reward", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["rewards"] == [0.0]  # "ok<|im_end|>" kept whole: it is not "ok"


# --- 4. a body that cannot be read says why ----------------------------------------------------


@pytest.fixture
def int_digit_limit() -> Iterator[None]:
    """Python's default limit on int/str conversion, which the service relies on (``rm-service``'s
    other commands lift it process-wide, and a test may have run one)."""
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(4300)
    yield
    sys.set_int_max_str_digits(before)


@pytest.mark.usefixtures("int_digit_limit")
@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"records": [{"response": "caf\xe9"}]}', "not UTF-8 (byte 0xe9 at offset 30)"),
        (b'{"records": [{"id": ' + b"9" * 5000 + b"}]}", "integer of more than 4300 digits"),
        (b'{"records": [{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}", "too deeply"),
    ],
    ids=["latin-1", "huge-int", "deep"],
)
async def test_a_body_that_cannot_be_read_is_a_400_saying_why(body: bytes, says: str) -> None:
    """Each was FastAPI's 400 "There was an error parsing the body", which names no cause: a
    Windows tool's Latin-1 text looked like a server bug."""
    async with client(make_app()) as c:
        resp = await c.post("/grade", content=body, headers=JSON)
    assert resp.status_code == 400, resp.text
    assert says in resp.json()["detail"]


# --- 5. shutdown answers what is in flight -----------------------------------------------------


async def test_a_drain_answers_queued_requests_at_once_and_in_flight_ones_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvicorn waits for every request in flight before it exits, and a request was graded
    for up to its whole deadline: the process outlived ``docker stop``'s 10 s and was killed,
    its clients reset with no answer. Draining (the server's shutdown) answers a queued request
    503 at once, and one in flight 503 after ``shutdown_grace``; its slots are given back."""
    monkeypatch.setenv("RM_TEST_DELAY", "30")
    app = make_app(max_in_flight=1, max_records=1, max_queue=5, shutdown_grace=1.5)
    admission = app.state.admission
    async with client(app) as c:
        first = asyncio.ensure_future(c.post("/grade", json={"records": [{"response": "a"}]}))
        await _wait_for(lambda: admission.in_flight == 1)
        queued = asyncio.ensure_future(c.post("/get_reward", json={"query": ["b"]}))
        await _wait_for(lambda: admission.queued == 1)
        start = time.monotonic()
        admission.drain()
        resp = await queued
        assert resp.status_code == 503, resp.text
        assert time.monotonic() - start < 1.0  # at once: well before the grace
        resp = await first
        assert 1.45 < time.monotonic() - start < 5.0
        assert resp.status_code == 503, resp.text
        assert resp.headers["retry-after"] == "1"
        assert "shutting down" in resp.json()["detail"]
        late = await c.post("/grade", json={"records": [{"response": "c"}]})
        assert late.status_code == 503
        assert (await c.get("/healthz")).status_code == 200
    assert admission.in_flight == 0 and admission.queued == 0


def test_sigterm_answers_a_request_in_flight_and_the_server_exits(tmp_path: Path) -> None:
    """Against the real server: a request graded for 60 s when SIGTERM comes is answered 503
    within the default ``--shutdown-grace`` (5 s, below ``docker stop``'s 10), and the process
    exits, instead of both waiting a minute."""
    with running_server(tmp_path, config=SLOW_YAML, env={"RM_TEST_DELAY": "60"}) as srv:

        async def main() -> tuple[httpx.Response, float]:
            async with httpx.AsyncClient(timeout=30) as c:
                req = asyncio.ensure_future(
                    c.post(f"{srv.base_url}/grade", json={"records": [{"response": "a"}]})
                )
                await asyncio.sleep(1.0)
                start = time.monotonic()
                srv.proc.send_signal(signal.SIGTERM)
                resp = await req
                return resp, time.monotonic() - start

        resp, took = asyncio.run(main())
        assert resp.status_code == 503, resp.text
        assert 4 < took < 20, took  # the grace (5 s), far below the 60 s the grading would take
        srv.proc.wait(timeout=10)
        log = srv.log()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log


async def test_a_server_shutting_down_drains_its_own_app_only() -> None:
    """The protocol drains the admission of the app it serves, found under uvicorn's wrappers:
    a process-wide drain would leave every other app in the process (an embedding program, the
    next test) refusing all requests as "shutting down" for good."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from rm_service._http_protocol import _admission_of

    a, b = make_app(), make_app()
    wrapped = ProxyHeadersMiddleware(a)
    assert _admission_of(wrapped) is a.state.admission
    assert _admission_of(b) is b.state.admission
    assert _admission_of(object()) is None
    a.state.admission.drain()
    assert a.state.admission.draining and not b.state.admission.draining
