"""A judge cache whose SQLite file fails: every verdict is kept and every real call is counted.

Why: the cache is an optimisation. A corrupt file or a disk that fills mid-run once turned 589 of
600 paid verdicts into ``internal`` unscored results and the summary said "judge calls: 11". These
tests grade through the real config path (``cache: {path: ...}``) against the loopback judge
server, and compare the summary's call count with the requests the server actually received.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rm_service import agrade_file
from rm_service._config import build_runner, load_config
from tests.judge_server import JudgeServer, Reply

N_RECORDS = 16
N_DISTINCT = 12  # the last 4 records repeat earlier ones: the memory cache must still serve them


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _garbage_after_the_schema(path: Path) -> None:
    """A file SQLite opens (page 1, the schema, is intact) but cannot read a row from."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA page_size = 4096")
        db.execute(
            "CREATE TABLE judge_cache "
            "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
        )
        db.executemany(
            "INSERT INTO judge_cache VALUES (?, ?, 0)",
            ((f"{i:064x}", "x" * 500) for i in range(200)),
        )
    db.close()
    with path.open("r+b") as f:
        f.seek(4096)
        size = path.stat().st_size - 4096
        f.write(os.urandom(size))


def _records(tmp_path: Path) -> Path:
    src = tmp_path / "in.jsonl"
    rows = [
        {"id": i, "query": "Capital of France?", "response": f"Paris, answer {i % N_DISTINCT}."}
        for i in range(N_RECORDS)
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return src


def _config(server: JudgeServer, cache_path: Path) -> Any:
    server.responder = lambda body: Reply(json.dumps({"reason": "ok " * 300, "score": 4}))
    return load_config(
        {
            "judge": {"backend": "openai", "base_url": server.base_url, "model": "m"},
            "cache": {"path": str(cache_path)},
            "graders": {"rel": {"type": "relevance"}},
        }
    )


async def _grade_and_check(
    server: JudgeServer, cache_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> list[logging.LogRecord]:
    """Grade the records; assert every verdict is scored and the calls counted are the real ones.

    Returns the cache's warnings.
    """
    cfg = _config(server, cache_path)
    out = tmp_path / "out.jsonl"
    with caplog.at_level(logging.WARNING, logger="rm_service.models._cache"):
        res = await agrade_file(build_runner(cfg), _records(tmp_path), out, progress=False)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == N_RECORDS
    for line in lines:
        assert line["reward"] == pytest.approx(0.75), line
    comp = res.summary.components["rel"]
    assert comp.n_unscored == 0, dict(comp.unscored)
    totals = res.summary.judge
    assert totals.calls == server.stats.requests == N_DISTINCT
    assert totals.calls + totals.cached == N_RECORDS
    assert f"judge calls: {N_DISTINCT} " in res.summary.table()
    return [r for r in caplog.records if r.name == "rm_service.models._cache"]


@pytest.mark.parametrize(
    "corrupt",
    [_random_bytes, _garbage_after_the_schema],
    ids=["fails-at-open", "fails-on-first-read"],
)
async def test_a_corrupt_cache_file_keeps_every_verdict(
    judge_server: JudgeServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    corrupt: Callable[[Path], None],
) -> None:
    path = tmp_path / "judge.sqlite"
    corrupt(path)
    before = path.read_bytes()
    warnings = await _grade_and_check(judge_server, path, tmp_path, caplog)
    assert len(warnings) == 1  # once per cache, not once per call
    assert str(path) in warnings[0].getMessage()
    # The user's file is left as it was (SQLite may flag WAL mode in the 100-byte header).
    assert path.read_bytes()[100:] == before[100:]


async def test_a_cache_disk_that_fills_mid_run_keeps_every_verdict(
    judge_server: JudgeServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``PRAGMA max_page_count`` makes SQLite raise SQLITE_FULL ("database or disk is full"),
    the same error a full disk gives, after a few puts have succeeded."""
    path = tmp_path / "judge.sqlite"
    connect = sqlite3.connect

    def small_disk(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = connect(*args, **kwargs)
        db.execute("PRAGMA max_page_count = 6")
        return db

    monkeypatch.setattr(sqlite3, "connect", small_disk)
    warnings = await _grade_and_check(judge_server, path, tmp_path, caplog)
    monkeypatch.undo()
    assert len(warnings) == 1
    assert "full" in warnings[0].getMessage()
    with connect(path) as db:
        stored = db.execute("SELECT COUNT(*) FROM judge_cache").fetchone()[0]
    db.close()
    assert 0 < stored < N_DISTINCT  # the writes did start failing mid-run


@pytest.mark.parametrize(
    "row",
    [
        '{"text": "x", "model": "m", "usage": [1], "logprobs": null}',
        '{"text": "x", "model": "m", "usage": [1e400, 0], "logprobs": null}',
        '{"text": "x", "model": "m", "usage": [1, 2], "logprobs": [[1, 2]]}',
    ],
)
def test_a_corrupt_cache_row_is_a_miss_never_a_failed_record(row: str) -> None:
    """A short usage list or a number too large for a float raised IndexError/OverflowError,
    which neither store treats as a miss: the record failed as internal on every try."""
    from rm_service.models._cache import decode_result

    with pytest.raises(ValueError, match="a corrupt cache entry"):
        decode_result(row)
