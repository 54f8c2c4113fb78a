"""Math workers go quietly when whatever started them goes away.

verl's ``prime`` manager grades in a ``ProcessPoolExecutor`` it builds per batch, and each of its
processes starts our math pool. When a batch ends, prime SIGTERMs those processes and shuts the
executor down: math workers still warming up then sent their "ready" to a closed socket and
printed a ``BrokenPipeError`` traceback each (one a worker, every batch). The same happened when
a script exited while workers were starting (its ``atexit`` shutdown did not know them yet, so
they outlived it), and when a parent died mid-job (the reply failed, then the error report about
the reply failed too).

Each scenario runs as its own process tree with one stderr pipe, read to EOF, so every
grandchild's output is caught, however long it outlives its parent.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from graders._math_pool import _BOOTSTRAP

ROOT = Path(__file__).resolve().parents[2]


def run_script(
    tmp: Path, code: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a script (spawn's children import it by path); stderr is read until every
    process that inherited it (math workers included) has closed it."""
    script = tmp / "script.py"
    script.write_text(textwrap.dedent(code))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_quiet(stderr: str) -> None:
    for word in ("Traceback", "Error", "Exception"):
        assert word not in stderr, stderr


PRIME = """
import asyncio, os, signal
from concurrent.futures import ProcessPoolExecutor

from graders import MathGrader
from graders._math_pool import _get_pool


def score(i):
    grader = MathGrader(workers=1)
    result = asyncio.run(grader.aevaluate(response=rf"\\boxed{{{i}}}", reference_response=str(i)))
    _get_pool(3)  # two more workers, still warming up when prime terminates this process
    return result.score


if __name__ == "__main__":
    executor = ProcessPoolExecutor(1)
    print(list(executor.map(score, range(2))), flush=True)
    # What prime does after each batch (verl 0.7.0 workers/reward_manager/prime.py): SIGTERM
    # every process of the executor, then leave the `with` block, which shuts it down.
    for pid in list(executor._processes):
        os.kill(pid, signal.SIGTERM)
    executor.shutdown()
"""


def test_prime_style_process_pool_shutdown_is_quiet(tmp_path: Path) -> None:
    done = run_script(tmp_path, PRIME)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1.0, 1.0]"
    assert_quiet(done.stderr)


EXIT = """
import asyncio, os, time
from graders import MathGrader
from graders._math_pool import _get_pool, shutdown_math_pool

grader = MathGrader(workers=1)
print(asyncio.run(grader.aevaluate(response=r"\\boxed{1}", reference_response="1")).score)
_get_pool(3)  # two more workers, warming up for a second or more
time.sleep(0.3)
shutdown_math_pool()  # what atexit does
children = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
        children.append(pid)
print(len(children), flush=True)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_shutdown_kills_workers_that_are_still_starting(tmp_path: Path) -> None:
    done = run_script(tmp_path, EXIT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1.0", "0"]  # no worker outlives the pool
    assert_quiet(done.stderr)


# --- one worker whose parent goes away at each point of its life ---------------------------------


@pytest.mark.parametrize("when", ["before_path", "warming_up", "mid_job", "idle"])
def test_a_worker_whose_parent_goes_away_exits_quietly(when: str) -> None:
    parent, child = socket.socketpair()
    with parent, child:
        fd = child.fileno()
        proc = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP, str(fd)],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(fd,),
            text=True,
        )
        conn = Connection(parent.detach())
    try:
        if when != "before_path":
            conn.send(list(sys.path))
        if when in ("mid_job", "idle"):
            assert conn.poll(60)
            assert conn.recv()[0] == "ready"
        if when == "mid_job":
            conn.send((time.sleep, (0.5,), 5.0))
            time.sleep(0.1)
    finally:
        conn.close()  # the parent is gone
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert stderr == ""
