"""Edges of the HTTP face found in an eighth review: a request bigger than ``--max-queue``
refused whenever anything was in flight, with the queue empty and slots free; a shutdown drain
that begins just after a queued request was admitted (guarded: answered, never left hanging);
and records whose text comes in OpenAI's content-parts form, refused as "not a string".

Every wait here is on an event: the grader holds each record until the test opens its gate, and
admission state changes are watched through the admission's own change hook."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from rm_service import GradingRunner
from rm_service._admission import Admission, Overloaded
from tests.app import client, make_app

ANSWER = "<think>7*8</think><answer>56</answer>"


class Gate:
    """A grader (:attr:`grade`) that holds every record until :attr:`open` is set, and says
    which records started and which were cancelled while held."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self._change = asyncio.Event()

    async def grade(self, response: str) -> float:
        self.started.append(response)
        self._change.set()
        try:
            await self.open.wait()
        except asyncio.CancelledError:
            self.cancelled.append(response)
            raise
        return 1.0

    async def until_started(self, response: str) -> None:
        async with asyncio.timeout(10):
            while response not in self.started:
                self._change.clear()
                await self._change.wait()


def watch(admission: Admission) -> Callable[[Callable[[], bool]], Any]:
    """``until(cond)``: wait (on the admission's change hook, no polling) until ``cond()``."""
    changed = asyncio.Event()
    inner = admission._on_change

    def on_change(in_flight: int, queued: int) -> None:
        if inner is not None:
            inner(in_flight, queued)
        changed.set()

    admission._on_change = on_change

    async def until(cond: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not cond():
                changed.clear()
                await changed.wait()

    return until


def gated_app(gate: Gate, **settings: Any) -> Any:
    return make_app({"g": GradingRunner({"gate": gate.grade}, max_concurrency=64)}, **settings)


# --- 1. a request bigger than --max-queue waits when nothing else does --------------------------


async def test_a_grade_bigger_than_the_queue_waits_instead_of_a_429() -> None:
    """``--max-queue 2 --max-in-flight 8 --max-records 8``: a full 8-record request arriving
    while one record was graded got a 429 ("0 queued (max_queue=2); this request has 8"), with
    the queue empty and 7 slots free, and so on every retry while anything ran. It waits alone,
    then runs."""
    gate = Gate()
    app = gated_app(gate, max_in_flight=8, max_records=8, max_queue=2)
    admission = app.state.admission
    until = watch(admission)
    async with client(app) as c:
        first = asyncio.ensure_future(c.post("/grade", json={"records": [{"response": "a"}]}))
        await gate.until_started("a")
        big = asyncio.ensure_future(c.post("/grade", json={"records": [{"response": "b"}] * 8}))
        await until(lambda: admission.queued == 8 or big.done())
        assert not big.done(), big.result().text  # the 429 came back at once
        gate.open.set()
        assert (await first).status_code == 200
        resp = await big
    assert resp.status_code == 200, resp.text
    assert [r["reward"] for r in resp.json()["results"]] == [1.0] * 8
    assert admission.in_flight == 0 and admission.queued == 0


async def test_a_get_reward_batch_bigger_than_the_queue_is_not_refused_for_its_size() -> None:
    """The README's promise for ``/get_reward`` ("never refused for its size") held only with
    ``max_queue >= max_in_flight``: a batch weighed as ``max_in_flight`` records was a 429
    whenever one record was in flight, and OpenRLHF fails the run after five."""
    gate = Gate()
    app = gated_app(gate, max_in_flight=4, max_records=4, max_queue=1, get_reward_max_records=10)
    admission = app.state.admission
    until = watch(admission)
    async with client(app) as c:
        first = asyncio.ensure_future(c.post("/grade", json={"records": [{"response": "a"}]}))
        await gate.until_started("a")
        body = {"query": ["b"] * 10, "prompts": [""] * 10}
        batch = asyncio.ensure_future(c.post("/get_reward", json=body))
        await until(lambda: admission.queued == 4 or batch.done())
        assert not batch.done(), batch.result().text
        gate.open.set()
        await first
        resp = await batch
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["rewards"] == [1.0] * 10 and body["extra_logs"]["rm_error"] == [0] * 10


async def test_the_queue_bound_still_holds_for_what_comes_behind() -> None:
    """What the queue admits beyond ``max_queue`` is one request alone: with anything waiting,
    a request that would pass the bound is refused at once, and ``max_queue=0`` still means
    that nothing waits."""
    adm = Admission(max_in_flight=8, max_queue=2)
    until = watch(adm)
    await adm.acquire(1)
    big = asyncio.ensure_future(adm.acquire(8))  # bigger than the queue: waits alone
    await until(lambda: adm.queued == 8)
    with pytest.raises(Overloaded, match="max_queue=2") as refused:
        await adm.acquire(1)
    assert refused.value.queue_full
    adm.release(1)
    await big
    assert adm.in_flight == 8 and adm.queued == 0
    small = asyncio.ensure_future(adm.acquire(2))  # fits the queue: waits as before
    await until(lambda: adm.queued == 2)
    with pytest.raises(Overloaded):
        await adm.acquire(1)  # 2 + 1 > max_queue
    adm.release(8)
    await small
    none = Admission(max_in_flight=8, max_queue=0)
    await none.acquire(1)
    await none.acquire(7)  # slots are always usable
    with pytest.raises(Overloaded, match="max_queue=0"):
        await none.acquire(1)


# --- 2. a drain that begins just after a queued request was admitted ---------------------------


@pytest.mark.parametrize("grace", [60.0, 0.0])
async def test_a_request_admitted_just_before_the_drain_is_answered(grace: float) -> None:
    """A guard (it passes on the old code too): the shutdown begins in the same loop step that
    handed a queued request its slots, before that request runs again. It is graded within the
    grace (200), or, past it, answered 503 with its grading cancelled: never left hanging, and
    never graded to the end behind a 503."""
    gate = Gate()
    app = gated_app(gate, max_in_flight=1, max_records=1, max_queue=5, shutdown_grace=grace)
    admission = app.state.admission
    until = watch(admission)
    release = admission.release

    def release_then_drain(n: int) -> None:
        release(n)  # admits the queued request: its future is set, it has not run yet
        admission.drain()

    admission.release = release_then_drain  # type: ignore[method-assign]
    async with client(app) as c:
        first = asyncio.ensure_future(c.post("/grade", json={"records": [{"response": "a"}]}))
        await gate.until_started("a")
        second = asyncio.ensure_future(c.post("/grade", json={"records": [{"response": "b"}]}))
        await until(lambda: admission.queued == 1)
        gate.open.set()  # "a" ends; its release admits "b" and the drain begins
        assert (await first).status_code == 200
        async with asyncio.timeout(10):
            resp = await second
        late = await c.post("/grade", json={"records": [{"response": "c"}]})
    assert late.status_code == 503
    assert admission.in_flight == 0 and admission.queued == 0
    if grace:
        assert resp.status_code == 200, resp.text  # graded: the gate was open
        assert gate.cancelled == []
    else:
        assert resp.status_code == 503, resp.text
        assert "b" not in gate.started or gate.cancelled == ["b"]


# --- 3. text in OpenAI's content-parts form ---------------------------------------------------

REWARD = {
    "graders": {
        "format": {"type": "format", "mode": "think_answer"},
        "num": {"type": "number", "mapper": {"reference_response": "label"}},
        "length": {"type": "length_penalty", "max_len": 100},
    },
    "aggregators": [
        {"type": "weighted_sum", "name": "reward", "weights": {"num": 0.8, "format": 0.2}}
    ],
}


def _parts(*texts: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": t} for t in texts]


async def test_grade_reads_a_response_and_query_in_content_parts_as_their_text() -> None:
    """An OpenAI-format record (``content`` as a list of parts) was ``status: error``, every
    component "must be a string, got list"; it is graded as its text, the same as the string."""
    app = make_app({"r": REWARD})
    records = [
        {"id": "text", "query": "7*8?", "response": ANSWER, "label": "56"},
        {"id": "parts", "query": _parts("7*8?"), "response": _parts(ANSWER), "label": "56"},
        {
            "id": "split",
            "query": _parts("7*", "8?"),
            "response": _parts("<think>7*8</think>", "<answer>56</answer>"),
            "label": _parts("56"),
        },
    ]
    async with client(app) as c:
        resp = await c.post("/grade", json={"records": records})
    assert resp.status_code == 200, resp.text
    got = resp.json()["results"]
    assert [r["id"] for r in got] == ["text", "parts", "split"]
    for rec in got:
        assert rec["status"] == "ok" and rec["errors"] == {}, rec
        assert rec["scores"] == got[0]["scores"] and rec["reward"] == 1.0


async def test_grade_refuses_an_image_part_naming_the_field() -> None:
    """A part that is not text is the record's fault: unscored, ``null``, naming the field and
    the part, never a score of what text is left."""
    app = make_app({"r": REWARD})
    response = [*_parts(ANSWER), {"type": "image_url", "image_url": {"url": "http://x/a.png"}}]
    async with client(app) as c:
        resp = await c.post("/grade", json={"records": [{"response": response, "label": "56"}]})
    assert resp.status_code == 200, resp.text
    rec = resp.json()["results"][0]
    assert rec["status"] == "error" and rec["reward"] is None
    for name in ("format", "num", "length"):
        assert rec["scores"][name] is None
        error = rec["errors"][name]
        assert error["kind"] == "invalid_input"
        assert "'response'" in error["error"] and "'image_url'" in error["error"], error
