"""The embedded default reward: ``grade`` and ``serve`` work with no config, and say so."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rm_service._default import DEFAULT_CONFIG, DEFAULT_REWARD_NAME
from rm_service._serve import parse_configs
from rm_service.app import load_rewards
from tests.app import client, make_app

ROOT = Path(__file__).resolve().parents[1]

RIGHT = {
    "id": "right",
    "query": "What is 7*8?",
    "response": "<think>7*8=56</think>\n<answer>56</answer>",
    "ground_truth": "56",
}
WRONG = {**RIGHT, "id": "wrong", "response": "<think>7*8=54</think>\n<answer>54</answer>"}
NO_GOLD = {"id": "nogold", "query": "hi", "response": "<think>x</think><answer>1</answer>"}


def test_the_default_ships_inside_the_package() -> None:
    """Not in examples/, which a pip install does not carry: the file is package data."""
    assert DEFAULT_CONFIG.is_file()
    assert DEFAULT_CONFIG.is_relative_to(ROOT / "rm_service")
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["rm_service"]
    rel = DEFAULT_CONFIG.relative_to(ROOT / "rm_service")
    assert any(rel.match(p) for p in patterns), patterns
    load_rewards({"d": str(DEFAULT_CONFIG)})  # it builds


def test_serve_with_no_config_uses_the_default_and_logs_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("RM_SERVICE_CONFIG", raising=False)
    with caplog.at_level(logging.WARNING, logger="rm_service.serve"):
        got = parse_configs(None)
    assert got == {DEFAULT_REWARD_NAME: str(DEFAULT_CONFIG)}
    assert "embedded default reward" in caplog.text
    assert str(DEFAULT_CONFIG) in caplog.text


async def test_the_default_grades_over_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RM_SERVICE_CONFIG", raising=False)
    app = make_app(parse_configs(None))
    async with client(app) as c:
        r = await c.post("/grade", json={"records": [RIGHT, WRONG, NO_GOLD]})
    assert r.status_code == 200, r.text
    res = {x["id"]: x for x in r.json()["results"]}
    assert res["right"]["reward"] == pytest.approx(1.0)
    assert res["wrong"]["reward"] == pytest.approx(0.3)  # format and length only
    assert res["nogold"]["reward"] is None  # no gold: unscored, never 0
    assert res["nogold"]["status"] != "ok"


def test_grade_with_no_config_uses_the_default_and_says_so(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in (RIGHT, WRONG)))
    out = tmp_path / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "RM_SERVICE_CONFIG"}
    proc = subprocess.run(
        [sys.executable, "-m", "rm_service.cli", "grade", str(src), "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # no .env with RM_SERVICE_CONFIG above it
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "embedded default reward" in proc.stderr
    rewards = {r["id"]: r["reward"] for r in map(json.loads, out.read_text().splitlines())}
    assert rewards == {"right": pytest.approx(1.0), "wrong": pytest.approx(0.3)}


def test_the_readme_demo_config_is_the_default() -> None:
    """The README says ``examples/reward.yaml`` is the default; keep the two from drifting."""
    import yaml

    example = yaml.safe_load((ROOT / "examples" / "reward.yaml").read_text())
    assert yaml.safe_load(DEFAULT_CONFIG.read_text()) == example
