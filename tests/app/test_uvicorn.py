"""The real thing: ``rm-service serve`` (``python -m rm_service.cli serve``) under uvicorn on
127.0.0.1, called with httpx; plus start-up failures of ``serve`` (no server started)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rm_service._exceptions import ConfigError
from rm_service._serve import parse_configs
from rm_service.cli import main
from tests.app.uvicorn_server import REWARD_YAML
from tests.app.uvicorn_server import free_port as _free_port

SLOW_YAML = "graders:\n  slow: {type: 'tests.support:slow_len'}\n"
ROOT = Path(__file__).resolve().parents[2]


def _in_flight(c: httpx.Client) -> float:
    for line in c.get("/metrics").text.splitlines():
        if line.startswith("rm_records_in_flight "):
            return float(line.split()[1])
    raise AssertionError("rm_records_in_flight not exported")


def test_serve_runs_uvicorn_and_grades_over_a_socket(tmp_path: Path) -> None:
    """Start-up, auth from the env, /grade and /get_reward, and a client that hangs up
    (its grading is cancelled: the records in flight drop to 0 long before the grader's 30 s)."""
    (tmp_path / "reward.yaml").write_text(REWARD_YAML)
    (tmp_path / "slow.yaml").write_text(SLOW_YAML)
    port = _free_port()
    env = {**os.environ, "RM_SERVICE_API_KEY": "k", "RM_TEST_DELAY": "30"}
    env["PYTHONPATH"] = str(ROOT)  # tests.support, for the slow grader
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rm_service.cli",
            "serve",
            "--config",
            f"math={tmp_path / 'reward.yaml'}",
            "--config",
            str(tmp_path / "slow.yaml"),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=5, headers={"Authorization": "Bearer k"}) as c:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, (tmp_path / "server.log").read_text()
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server did not come up in 30 s"
                time.sleep(0.1)
            good = "<think>3+4</think><answer>7</answer>"
            resp = c.post(
                "/grade",
                json={"records": [{"response": good, "label": "7"}, {"response": good}]},
            )
            assert resp.status_code == 200, resp.text
            ok, bad = resp.json()["results"]
            assert ok["reward"] == pytest.approx(1.0) and ok["status"] == "ok"
            assert bad["reward"] is None and bad["status"] == "error"
            resp = c.post("/get_reward", json={"query": ["P 7"], "prompts": ["P"], "labels": ["7"]})
            assert resp.json()["extra_logs"]["num"] == [1.0]
            assert httpx.get(f"{base}/graders").status_code == 401  # the key came from the env

            with pytest.raises(httpx.ReadTimeout):
                c.post(
                    "/grade",
                    json={"reward": "slow", "records": [{"response": "x"}]},
                    timeout=0.5,
                )
            deadline = time.monotonic() + 10
            while _in_flight(c) != 0:
                assert time.monotonic() < deadline, "the abandoned request was not cancelled"
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_a_bad_config_fails_start_up_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("graders:\n  f: {type: format, call_timeout: -1}\n")
    assert main(["serve", "--config", str(bad), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "graders.f.call_timeout" in err


def test_bad_settings_fail_start_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "r.yaml").write_text(REWARD_YAML)
    args = ["--config", str(tmp_path / "r.yaml"), "--max-records", "10", "--max-in-flight", "5"]
    assert main(["serve", *args]) == 1
    assert "max_records (10) <= max_in_flight (5)" in capsys.readouterr().err


def test_parse_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = tmp_path / "a.yaml"
    a.touch()
    weird = tmp_path / "x=y.yaml"
    weird.touch()
    got = parse_configs([str(a), f"chat={a}", str(weird)])
    assert list(got) == ["a", "chat", "x=y"]
    assert got["chat"] == str(a.resolve())
    with pytest.raises(ConfigError, match="'a' is used twice"):
        parse_configs([str(a), f"a={a}"])
    monkeypatch.delenv("RM_SERVICE_CONFIG", raising=False)
    assert list(parse_configs(None)) == ["default"]  # the embedded default reward
    monkeypatch.setenv("RM_SERVICE_CONFIG", str(a))
    assert list(parse_configs(None)) == ["a"]


async def test_workers_build_the_app_from_the_spec_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from rm_service._serve import SPEC_ENV, app_from_env
    from tests.app import client

    (tmp_path / "r.yaml").write_text(REWARD_YAML)
    spec = {"configs": {"m": str(tmp_path / "r.yaml")}, "settings": {"max_records": 1}}
    monkeypatch.setenv(SPEC_ENV, json.dumps(spec))
    monkeypatch.delenv("RM_SERVICE_API_KEY", raising=False)
    app = app_from_env()
    assert app.state.settings.max_records == 1
    async with client(app) as c:
        assert (await c.get("/graders")).json()["default"] == "m"
