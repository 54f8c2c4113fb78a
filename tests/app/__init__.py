"""Tests of the HTTP face (``rm_service.app``); shared helpers for them.

Endpoints are called in process through ``httpx.ASGITransport`` (no socket, no lifespan needed);
one test in ``test_uvicorn.py`` runs the real server.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from rm_service._http_schemas import ServiceSettings
from rm_service.app import create_app

__all__ = ["MATH_CFG", "SLOW_CFG", "client", "http_scope", "make_app"]

SLOW_CFG: dict[str, Any] = {
    "graders": {
        "fmt": {"type": "format", "mode": "think_answer"},
        "slow": {"type": "tests.support:slow_len"},
    },
    "aggregators": [
        {"type": "weighted_sum", "name": "reward", "weights": {"fmt": 0.5, "slow": 0.5}}
    ],
    "max_concurrency": 8,
}
"""A format check plus ``slow_len`` (sleeps ``RM_TEST_DELAY`` s, scores ``len/20``)."""

MATH_CFG: dict[str, Any] = {
    "graders": {"num": {"type": "number", "mapper": {"reference_response": "label"}}},
}
"""The GSM8K-style number check, reading the gold answer from the record's ``label``."""


def make_app(rewards: Any = None, **settings: Any) -> Any:
    """An app over ``rewards`` (default: ``SLOW_CFG`` as ``main``) with explicit settings."""
    return create_app(
        rewards if rewards is not None else {"main": SLOW_CFG}, ServiceSettings(**settings)
    )


@contextlib.asynccontextmanager
async def client(app: Any, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client that calls ``app`` in process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rm", **kwargs) as c:
        yield c


def http_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI scope of a POST to ``path``, for calling the app directly (no socket, no
    client): tests that script ``receive`` themselves, and ``bench/grade_path.py``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
