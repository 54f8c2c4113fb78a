"""Review of 9671454 (``pytest -n 2 --dist loadfile``): two test files that share Ray's machine-wide
bootstrap file, ``/tmp/ray/ray_current_cluster``, can now run at the same time.

* ``tests/ray/test_ray_grade.py::test_two_nodes_share_the_grading`` starts a
  ``ray.cluster_utils.Cluster`` in a subprocess; its head node writes the file
  (``ray/cluster_utils.py``: ``write_ray_address``) until ``cluster.shutdown()``.
* ``tests/integrations/test_verl_real.py::test_every_reward_loop_manager_gives_the_same_numbers
  [remote]`` calls ``ray.init(num_cpus=1, ...)`` with no ``address``; Ray then reads that file
  (``ray/_private/services.py``: ``get_ray_address_from_environment``) and joins the cluster
  named there, where ``num_cpus`` is refused (``ValueError: When connecting to an existing
  cluster, num_cpus and num_gpus must not be provided``), or, without ``num_cpus``, would run
  verl's workers on the other test's cluster.

Run one after the other (one process, before 9671454) they never overlap; in two xdist workers
they can. This test makes them overlap on purpose: it starts the same kind of cluster, then runs
the ``ray.init`` call exactly as ``test_verl_real.py`` writes it (read from its source), which
must start an instance of its own (``address="local"``, as ``tests/ray/conftest.py`` does).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_support import ROOT

VERL_REAL = ROOT / "tests" / "integrations" / "test_verl_real.py"

CLUSTER = """
import sys
from ray.cluster_utils import Cluster
c = Cluster()
c.add_node(num_cpus=1, include_dashboard=False)
print(c.address, flush=True)
sys.stdin.read()
c.shutdown()
"""


def ray_init_calls(path: Path) -> list[str]:
    """The source of every ``ray.init(...)`` call in ``path``."""
    source = path.read_text(encoding="utf-8")
    return [
        ast.get_source_segment(source, node) or ""
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "init"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "ray"
    ]


@pytest.mark.slow
def test_verl_reals_ray_init_does_not_join_another_tests_cluster() -> None:
    pytest.importorskip("ray")
    calls = ray_init_calls(VERL_REAL)
    assert calls, "test_verl_real.py no longer calls ray.init"
    cluster = subprocess.Popen(
        [sys.executable, "-c", CLUSTER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert cluster.stdout is not None
        other = cluster.stdout.readline().strip()
        assert other, "the Cluster subprocess did not start"
        for call in calls:
            shown = "print(ray.get_runtime_context().gcs_address)"
            code = f"import ray\n{call}\n{shown}\nray.shutdown()"
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, f"{call}:\n{done.stderr[-1500:]}"
            assert done.stdout.strip().splitlines()[-1] != other, f"{call} joined {other}"
    finally:
        if cluster.stdin is not None:
            cluster.stdin.close()
        try:
            cluster.wait(60)
        except subprocess.TimeoutExpired:
            cluster.kill()
            cluster.wait(10)
        if cluster.stdout is not None:
            cluster.stdout.close()
