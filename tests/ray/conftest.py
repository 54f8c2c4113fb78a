"""One real local Ray instance for every test under ``tests/ray`` in a test process (the test
command runs two, ``-n 2``; each starts its own instance for the Ray files it is given).

``ray_instance`` (session-scoped) starts Ray once with ``ray.init(address="local",
num_cpus=4, include_dashboard=False)`` and shuts it down after the last test; it yields a
:class:`RayInstance` with the instance's ``address`` (its GCS address, ``host:port``).

* In-process tests just take the fixture and use ``ray`` / ``ray.data`` (or ``ray.serve``)
  directly: Ray is already initialised in the test process.
* A subprocess (the ``rm-service`` CLI, a script) joins the same instance with
  ``--address ADDRESS`` / ``ray.init(address=ADDRESS)``: about a second instead of the ten a
  fresh ``ray.init`` takes on a small box. When the subprocess dies, Ray ends its job and its
  actors, so one test's leftovers never hold another's CPUs.
* Four logical CPUs on any box: grading actors, read tasks and the checkpoint filter each need
  one (two declared CPUs were seen to hang a checkpointed job). Declaring more CPUs than cores
  only oversubscribes.
* The repository root is put on ``PYTHONPATH`` before Ray starts, so every worker the instance
  spawns, for this process's job or a subprocess's, can import ``tests.support`` graders.

Another test module uses it by name: ``def test_x(ray_instance: RayInstance) -> None``. Do not
call ``ray.shutdown()`` in a test: the instance is shared.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RayInstance:
    """The session's Ray: ``address`` for subprocesses to join (``--address``)."""

    address: str
    num_cpus: int


@pytest.fixture(scope="session")
def ray_instance() -> Iterator[RayInstance]:
    ray = pytest.importorskip("ray")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), old) if p)
    try:
        ray.init(
            address="local",  # a new instance, even where a `ray start` cluster runs
            num_cpus=4,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
        address = ray.get_runtime_context().gcs_address
        yield RayInstance(address=address, num_cpus=4)
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
