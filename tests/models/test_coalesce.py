"""Coalescer: one computation per key among concurrent callers; successes remembered."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rm_service.models._coalesce import Coalescer


class Counted:
    """A computation that counts its runs and can be held open or made to fail."""

    def __init__(self, value: object = "v", *, fail: bool = False) -> None:
        self.value = value
        self.fail = fail
        self.runs = 0
        self.release = asyncio.Event()

    async def __call__(self) -> object:
        self.runs += 1
        await self.release.wait()
        if self.fail:
            raise RuntimeError(f"failed run {self.runs}")
        return self.value


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_callers_share_one_computation() -> None:
    memo: Coalescer[str, object] = Coalescer()
    work = Counted("answer")
    callers = [asyncio.ensure_future(memo.run("k", work)) for _ in range(10)]
    await _settle()
    work.release.set()
    assert await asyncio.gather(*callers) == ["answer"] * 10
    assert work.runs == 1
    assert (memo.computed, memo.shared) == (1, 9)
    # Remembered: a later caller does not compute.
    assert await memo.run("k", work) == "answer"
    assert work.runs == 1


async def test_different_keys_compute_separately() -> None:
    memo: Coalescer[str, object] = Coalescer()
    a, b = Counted("a"), Counted("b")
    a.release.set()
    b.release.set()
    assert await asyncio.gather(memo.run("a", a), memo.run("b", b)) == ["a", "b"]
    assert (a.runs, b.runs) == (1, 1)


async def test_a_failure_is_shared_by_its_callers_and_never_remembered() -> None:
    memo: Coalescer[str, object] = Coalescer()
    work = Counted(fail=True)
    callers = [asyncio.ensure_future(memo.run("k", work)) for _ in range(3)]
    await _settle()
    work.release.set()
    outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert [str(e) for e in outcomes] == ["failed run 1"] * 3
    work.fail = False
    assert await memo.run("k", work) == "v"  # computed again, not the old failure
    assert work.runs == 2


async def test_a_cancelled_caller_leaves_the_computation_to_the_others() -> None:
    memo: Coalescer[str, object] = Coalescer()
    work = Counted("kept")
    first = asyncio.ensure_future(memo.run("k", work))
    second = asyncio.ensure_future(memo.run("k", work))
    await _settle()
    first.cancel()
    await _settle()
    work.release.set()
    assert await second == "kept"
    assert first.cancelled()
    assert work.runs == 1


async def test_a_result_nobody_waits_for_is_still_remembered() -> None:
    memo: Coalescer[str, object] = Coalescer()
    work = Counted("late")
    only = asyncio.ensure_future(memo.run("k", work))
    await _settle()
    only.cancel()
    work.release.set()
    await _settle()
    assert memo.get("k") == (True, "late")


async def test_a_failure_with_nobody_waiting_logs_nothing_and_is_forgotten(
    caplog: pytest.LogCaptureFixture,
) -> None:
    memo: Coalescer[str, object] = Coalescer()
    work = Counted(fail=True)
    only = asyncio.ensure_future(memo.run("k", work))
    await _settle()
    only.cancel()
    work.release.set()
    await _settle()
    import gc

    gc.collect()
    await _settle()
    assert "never retrieved" not in caplog.text
    assert memo.get("k") == (False, None)


async def test_memory_is_bounded_least_recently_used_first() -> None:
    memo: Coalescer[int, int] = Coalescer(max_entries=3)

    async def value_of(i: int) -> int:
        return i * 10

    for i in range(3):
        await memo.run(i, lambda i=i: value_of(i))
    assert memo.get(0) == (True, 0)  # 0 is now the most recently used
    await memo.run(3, lambda: value_of(3))
    assert memo.get(1) == (False, None)
    assert [memo.get(i)[0] for i in (0, 2, 3)] == [True, True, True]
    none: Coalescer[int, int] = Coalescer(max_entries=0)
    await none.run(1, lambda: value_of(1))
    assert none.get(1) == (False, None)
    with pytest.raises(ValueError, match="max_entries"):
        Coalescer(max_entries=-1)


def test_one_coalescer_serves_loops_in_several_threads() -> None:
    """Each loop runs its own computation (a task belongs to one loop); what one finished is
    remembered for all."""
    memo: Coalescer[str, object] = Coalescer()
    runs: list[int] = []
    started = threading.Barrier(2)

    async def slow() -> object:
        runs.append(1)
        await asyncio.sleep(0.05)
        return "shared"

    async def in_loop() -> list[object]:
        return list(await asyncio.gather(*(memo.run("k", slow) for _ in range(5))))

    out: list[list[object]] = []

    def thread() -> None:
        started.wait()
        out.append(asyncio.run(in_loop()))

    threads = [threading.Thread(target=thread) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert out == [["shared"] * 5] * 2
    assert 1 <= len(runs) <= 2  # at most one per loop
    assert asyncio.run(memo.run("k", slow)) == "shared"
    assert len(runs) <= 2


async def test_a_pickled_copy_starts_empty_and_works() -> None:
    """Graders holding a coalescer are shipped to Ray workers and processes by pickling."""
    import pickle

    memo: Coalescer[str, object] = Coalescer(max_entries=7)
    done = Counted("here")
    done.release.set()
    await memo.run("k", done)
    copy = pickle.loads(pickle.dumps(memo))
    assert (copy.max_entries, copy.get("k")) == (7, (False, None))
    assert await copy.run("k", done) == "here"
    assert done.runs == 2
