"""Malformed bodies get a 4xx whose JSON any strict parser reads, never a 500.

Python's ``json`` reads ``NaN``, ``Infinity`` and ``"\\ud800"`` in a request; a 422 that echoes
them back as the error's ``input`` could not be encoded (``allow_nan`` / UTF-8), so the error
handler itself failed and uvicorn answered 500 with a traceback that printed the request input.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest

from tests.app import MATH_CFG, client, make_app
from tests.app.uvicorn_server import running_server

MARK = "zq-marker-7"
"""A string in some bodies that must never reach the server log."""

GRADE_BODIES = [
    '{"records":[NaN]}',
    '{"records":[Infinity]}',
    '{"records":[-Infinity]}',
    '{"records":["\\ud800"]}',
    '{"records":[{"query":"q"}],"deadline":NaN}',
    '{"records":[{"query":"q"}],"deadline":Infinity}',
    '{"records":{"a":NaN,"b":"\\udc00' + MARK + '"}}',
    '{"records":[{"id":"\\ud800"}],"deadline":"\\udfff"}',
    '{"records":[NaN,"\\ud800",Infinity,{"id":-Infinity}],"deadline":-Infinity}',
    '{"reward":NaN,"records":[]}',
    '{"reward":["\\ud800"],"records":[]}',
]
REWARD_BODIES = [
    '{"query":[NaN]}',
    '{"query":["\\ud800' + MARK + '",Infinity],"prompts":[NaN],"labels":"\\udc00"}',
    '{"query":"\\ud800"}',
]


def _strict_json(raw: bytes) -> Any:
    """Parse like a strict client: UTF-8, no NaN/Infinity, no lone surrogate escapes."""

    def no_constant(name: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {name} in the body")

    def no_surrogate(obj: Any) -> None:
        if isinstance(obj, str):
            obj.encode()  # raises on a lone surrogate (an escaped "\\ud800" in the body)
        elif isinstance(obj, list):
            for x in obj:
                no_surrogate(x)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                no_surrogate(k)
                no_surrogate(v)

    body = json.loads(raw.decode("utf-8"), parse_constant=no_constant)
    no_surrogate(body)
    return body


@pytest.mark.parametrize(
    ("path", "body"),
    [("/grade", b) for b in GRADE_BODIES] + [("/get_reward", b) for b in REWARD_BODIES],
)
async def test_malformed_body_gets_a_422_that_encodes(path: str, body: str) -> None:
    app = make_app({"m": MATH_CFG})
    async with client(app) as c:
        resp = await c.post(path, content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    detail = _strict_json(resp.content)["detail"]
    assert detail and all(e["loc"][0] == "body" and e["msg"] for e in detail)


async def test_a_long_input_is_not_echoed_whole() -> None:
    """A 422 about the batch must not send a 16 MiB batch back: ``records`` that is not a
    list is echoed cut short."""
    records = {str(i): {"response": "y" * 1000} for i in range(200)}
    app = make_app({"m": MATH_CFG})
    async with client(app) as c:
        resp = await c.post("/grade", json={"records": records})
    assert resp.status_code == 422
    assert len(resp.content) < 5000
    assert resp.json()["detail"][0]["loc"] == ["body", "records"]


async def test_a_clean_422_keeps_its_input() -> None:
    """Inputs that encode are echoed as FastAPI does, so the common case reads the same."""
    app = make_app({"m": MATH_CFG})
    async with client(app) as c:
        resp = await c.post("/grade", json={"records": [1]})
    assert resp.status_code == 422
    (err,) = resp.json()["detail"]
    assert err["loc"] == ["body", "records", 0] and err["input"] == 1


async def test_an_input_with_nan_is_echoed_as_its_json_text() -> None:
    app = make_app({"m": MATH_CFG})
    async with client(app) as c:
        resp = await c.post(
            "/grade", content='{"records":[NaN]}', headers={"Content-Type": "application/json"}
        )
    (err,) = _strict_json(resp.content)["detail"]
    assert err["loc"] == ["body", "records", 0] and err["input"] == "NaN"


def test_malformed_bodies_under_uvicorn_get_4xx_and_the_log_keeps_no_input(
    tmp_path: Path,
) -> None:
    """The real server: every body gets a 4xx with strict JSON, and the server log has no
    traceback and none of the request input."""
    with running_server(tmp_path, "--log-level", "info") as server:
        for path, bodies in (("/grade", GRADE_BODIES), ("/get_reward", REWARD_BODIES)):
            for body in bodies:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                try:
                    conn.request(
                        "POST", path, body=body, headers={"Content-Type": "application/json"}
                    )
                    resp = conn.getresponse()
                    assert 400 <= resp.status < 500, (body, resp.status)
                    _strict_json(resp.read())
                finally:
                    conn.close()
        log = server.log()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log
    assert MARK not in log and "ud800" not in log and "Infinity" not in log, log
