"""A key sent as a query parameter never reaches the access log.

uvicorn's access log prints each request's path with its query string, so
``GET /graders?api_key=sk-...`` wrote the key in clear. The service reads no query parameters:
every value is logged as ``***``, parameter names stay for debugging.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from rm_service._http_middleware import RedactQueryFilter, redact_query
from tests.app.uvicorn_server import running_server

SECRETS = ("sk-live-0001", "tok-0002", "hunter2-0003", "bare-0004")


def test_query_values_never_reach_the_real_access_log(tmp_path: Path) -> None:
    with running_server(tmp_path, "--log-level", "info") as server:
        with httpx.Client(base_url=server.base_url, timeout=10) as c:
            assert c.get(f"/healthz?api_key={SECRETS[0]}").status_code == 200
            assert c.get(f"/graders?token={SECRETS[1]}&verbose=1").status_code == 200
            resp = c.post(f"/grade?password={SECRETS[2]}", json={"records": []})
            assert resp.status_code == 200
            assert c.get(f"/nowhere?{SECRETS[3]}").status_code == 404
        log = server.log()
    for secret in SECRETS:
        assert secret not in log, log
    assert '"GET /healthz?api_key=*** HTTP/1.1" 200' in log, log
    assert "/graders?token=***&verbose=***" in log and "/nowhere?***" in log, log


def test_redact_query() -> None:
    assert redact_query("/grade") == "/grade"
    assert redact_query("/grade?") == "/grade?"
    assert redact_query("/g?key=a&x=&&sk-1") == "/g?key=***&x=***&&***"


def test_the_filter_rewrites_only_query_strings() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/graders?api_key=sk-x", "1.1", 200),
        None,
    )
    assert RedactQueryFilter().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /graders?api_key=*** HTTP/1.1" 200'
