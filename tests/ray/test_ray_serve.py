"""``rm_service.integrations.ray_serve``: the service as a Ray Serve application.

One test runs it for real on the session's ``ray_instance``: Serve's HTTP proxy on a free
loopback port, /grade and /get_reward over HTTP, and the app's lifespan (warm-up, then closing
graders) run inside the replica process. The others check what :func:`deployment` and the
``import_path`` builder :func:`app` build, without starting Serve.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from graders._base import BaseGrader
from rm_service._exceptions import ConfigError
from rm_service.integrations.ray_serve import RewardService, app, deployment, serve
from tests.app.uvicorn_server import REWARD_YAML, free_port
from tests.ray.conftest import ROOT, RayInstance


class Marker(BaseGrader):
    """Scores 1.0 when the response holds a 7; leaves ``load-<pid>`` and ``close-<pid>`` files
    in ``folder`` when warmed up and when closed, so a test sees which process ran the app's
    lifespan."""

    def __init__(self, *, folder: str, name: str | None = None) -> None:
        super().__init__(name=name)
        self.folder = Path(folder)

    async def aload(self) -> None:
        (self.folder / f"load-{os.getpid()}").touch()

    async def aclose(self) -> None:
        (self.folder / f"close-{os.getpid()}").touch()

    async def _aevaluate(self, response: str) -> float:
        return 1.0 if "7" in response else 0.0


def marker_config(tmp_path: Path) -> Path:
    path = tmp_path / "reward.yaml"
    path.write_text(
        "graders:\n"
        f"  mark: {{type: 'tests.ray.test_ray_serve:Marker', folder: '{tmp_path}'}}\n"
        "  num: {type: number, mapper: {reference_response: label}}\n"
    )
    return path


def options(application: Any) -> Any:
    """The deployment a bound application runs, as Serve will deploy it."""
    return application._bound_deployment


def test_served_by_ray_serve_with_the_lifespan_in_the_replica(
    ray_instance: RayInstance, tmp_path: Path
) -> None:
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(
            deployment(marker_config(tmp_path), min_replicas=1, max_replicas=1),
            name="rm-service-test",
            route_prefix="/",
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            resp = client.post("/grade", json={"records": [{"response": "7", "label": "7"}]})
            assert resp.status_code == 200, resp.text
            scores = resp.json()["results"][0]["scores"]
            assert (scores["mark"], scores["num"]) == (1.0, 1.0)
            resp = client.post(
                "/get_reward", json={"query": ["P 7"], "prompts": ["P"], "labels": ["7"]}
            )
            assert resp.status_code == 200, resp.text
            assert resp.json()["extra_logs"]["num"] == [1.0]
            # /readyz reports a warm-up only when the lifespan ran; wait for it to finish.
            deadline = time.monotonic() + 20
            while (ready := client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, ready.text
                time.sleep(0.1)
            assert ready.json()["warm"] == {"done": True, "errors": {}}
        loads = [p.name for p in tmp_path.glob("load-*")]
        assert len(loads) == 1 and loads[0] != f"load-{os.getpid()}"  # in the replica
    finally:
        serve.shutdown()
    # Stopping the replica ran the lifespan's shutdown there: the grader was closed.
    assert [p.name.split("-")[1] for p in tmp_path.glob("close-*")] == [loads[0].split("-")[1]]


def test_deployment_scales_on_ongoing_requests_and_waits_out_a_grading(tmp_path: Path) -> None:
    (tmp_path / "reward.yaml").write_text(REWARD_YAML)
    built = options(
        deployment(
            tmp_path / "reward.yaml",
            min_replicas=2,
            max_replicas=6,
            target_ongoing_requests=3,
            max_ongoing_requests=12,
            max_queued_requests=100,
            num_cpus=2,
            ray_actor_options={"num_gpus": 1},
        )
    )
    config = built._deployment_config
    auto = config.autoscaling_config
    assert (auto.min_replicas, auto.max_replicas, auto.target_ongoing_requests) == (2, 6, 3)
    assert (config.max_ongoing_requests, config.max_queued_requests) == (12, 100)
    # A replica scaled down gets longer than OpenRLHF's client waits to finish what it holds.
    assert config.graceful_shutdown_timeout_s > 180
    assert built.ray_actor_options == {"num_cpus": 2, "num_gpus": 1}
    assert built.name == "rm-service"
    # Each replica builds its app from absolute paths, named as `serve --config` names them.
    assert built.init_args == ({"reward": str((tmp_path / "reward.yaml").resolve())},)


async def test_each_replica_builds_the_service_app(tmp_path: Path) -> None:
    from ray.serve._private.http_util import ASGIAppReplicaWrapper  # Serve is imported by now

    (tmp_path / "reward.yaml").write_text(REWARD_YAML)
    rewards = options(deployment({"math": tmp_path / "reward.yaml"})).init_args[0]
    # The ingress is late-bound (nothing built in the driver, nothing pickled but the paths):
    # Serve constructs the class in the replica, then asks it for the app.
    assert issubclass(RewardService, ASGIAppReplicaWrapper)
    user_class = RewardService.__mro__[1]  # what @serve.ingress() wrapped
    built = user_class(rewards).__serve_build_asgi_app__()
    paths = {getattr(route, "path", None) for route in built.routes}
    assert {"/grade", "/get_reward", "/graders", "/healthz", "/readyz", "/metrics"} <= paths
    assert list(built.state.rewards) == ["math"]


def test_a_bad_config_fails_in_the_caller_naming_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("graders:\n  f: {type: format, call_timeout: -1}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*graders\.f\.call_timeout"):
        deployment(bad)


def test_bad_scaling_options_are_refused(tmp_path: Path) -> None:
    (tmp_path / "reward.yaml").write_text(REWARD_YAML)
    with pytest.raises(ValueError, match="min_replicas <= max_replicas"):
        deployment(tmp_path / "reward.yaml", min_replicas=3, max_replicas=2)
    with pytest.raises(ValueError, match="target_ongoing_requests <= max_ongoing_requests"):
        deployment(tmp_path / "reward.yaml", target_ongoing_requests=8, max_ongoing_requests=4)


def test_the_import_path_builder_reads_args_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "reward.yaml").write_text(REWARD_YAML)
    path = str(tmp_path / "reward.yaml")
    # A Serve config's args arrive as YAML values, often strings.
    built = options(app({"config": f"math={path}", "max_replicas": "3", "num_cpus": "0.5"}))
    assert built.init_args == ({"math": str(Path(path).resolve())},)
    assert built._deployment_config.autoscaling_config.max_replicas == 3
    assert built.ray_actor_options["num_cpus"] == 0.5
    monkeypatch.setenv("RM_SERVICE_CONFIG", path)
    assert options(app({})).init_args == ({"reward": str(Path(path).resolve())},)
    with pytest.raises(ValueError, match=r"unknown args \['replicas'\]"):
        app({"replicas": 3})


def test_import_rm_service_does_not_import_ray() -> None:
    code = (
        "import sys, rm_service, rm_service.integrations, rm_service.integrations.verl\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
