"""MicroBatcher: concurrent items combine into few calls, results stay per item, failures and
cancellations reach the right callers, and one batcher serves several event loops."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rm_service.models._batch import MicroBatcher


class Recorder:
    """A batched function that squares its items and records each call's batch."""

    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.delay = delay
        self.fail_on = fail_on
        self.lock = threading.Lock()

    async def __call__(self, items: list[int]) -> list[int]:
        with self.lock:
            self.calls.append(list(items))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [i * i for i in items]


async def test_items_submitted_together_run_in_one_call_with_their_own_results() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec, max_batch=64)
    out = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
    assert out == [i * i for i in range(20)]
    assert rec.calls == [list(range(20))]
    assert batcher.batches == 1


async def test_batches_respect_max_batch_and_items_arriving_during_a_call_form_the_next() -> None:
    rec = Recorder(delay=0.02)
    batcher = MicroBatcher(rec, max_batch=8)

    async def late(i: int) -> int:
        await asyncio.sleep(0.005)  # arrives while the first batch runs
        return await batcher.submit(i)

    out = await asyncio.gather(
        *(batcher.submit(i) for i in range(10)), *(late(i) for i in range(10, 15))
    )
    assert out == [i * i for i in range(15)]
    assert all(len(c) <= 8 for c in rec.calls)
    assert rec.calls[0] == list(range(8))
    assert sorted(i for c in rec.calls for i in c) == list(range(15))
    assert len(rec.calls) == 2  # the 2 left over and the 5 late ones ride together


async def test_max_inflight_limits_concurrent_calls() -> None:
    running = 0
    peak = 0

    async def run(items: list[int]) -> list[int]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return items

    batcher = MicroBatcher(run, max_batch=2, max_inflight=3)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(12))) == list(range(12))
    assert peak == 3
    assert batcher.batches == 6


async def test_max_wait_holds_a_lone_item_for_company() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec, max_batch=16, max_wait_s=0.05)

    async def later(i: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return await batcher.submit(i)

    out = await asyncio.gather(later(1, 0.0), later(2, 0.01), later(3, 0.02))
    assert out == [1, 4, 9]
    assert rec.calls == [[1, 2, 3]]


async def test_a_full_batch_does_not_wait_for_the_timer() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec, max_batch=4, max_wait_s=10.0)
    out = await asyncio.wait_for(asyncio.gather(*(batcher.submit(i) for i in range(4))), 2.0)
    assert out == [0, 1, 4, 9]


async def test_a_failure_reaches_every_item_of_its_batch_and_no_other() -> None:
    rec = Recorder(delay=0.01, fail_on=3)
    batcher = MicroBatcher(rec, max_batch=4)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(8)), return_exceptions=True)
    assert [isinstance(r, ValueError) for r in results] == [True] * 4 + [False] * 4
    assert results[4:] == [16, 25, 36, 49]


async def test_an_exception_returned_for_one_item_fails_that_item_alone() -> None:
    """A backend that can tell which input failed returns the exception in its place: that
    submitter gets it, its batch-mates their results (one bad record no longer costs the
    others their scores)."""

    async def run(items: list[int]) -> list[int | Exception]:
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]

    b: MicroBatcher[int, int] = MicroBatcher(run, max_batch=8)
    got = await asyncio.gather(*(b.submit(i) for i in (1, -2, 3)), return_exceptions=True)
    assert got[0] == 10 and got[2] == 30
    assert isinstance(got[1], ValueError) and str(got[1]) == "bad -2"
    assert b.batches == 1


async def test_a_wrong_count_is_an_error_not_a_shifted_result() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batcher = MicroBatcher(short)
    with pytest.raises(RuntimeError, match="2 results for 3 items"):
        await asyncio.gather(*(batcher.submit(i) for i in range(3)))


async def test_a_cancelled_submitter_leaves_the_batch_to_the_others() -> None:
    rec = Recorder(delay=0.03)
    batcher = MicroBatcher(rec, max_batch=8)
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(4)]
    await asyncio.sleep(0.01)
    tasks[0].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[0], asyncio.CancelledError)
    assert done[1:] == [1, 4, 9]


async def test_an_item_cancelled_before_its_batch_starts_is_not_computed() -> None:
    rec = Recorder(delay=0.03)
    batcher = MicroBatcher(rec, max_batch=8)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.005)  # the first batch runs
    queued = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    queued[0].cancel()
    assert await first == 0
    assert await queued[1] == 4
    assert rec.calls == [[0], [2]]


async def test_submit_many_keeps_order_and_empty_is_free() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec, max_batch=3)
    assert await batcher.submit_many([5, 6, 7, 8]) == [25, 36, 49, 64]
    assert await batcher.submit_many([]) == []
    assert rec.calls == [[5, 6, 7], [8]]


def test_one_batcher_serves_repeated_runs_and_other_threads_loops() -> None:
    rec = Recorder(delay=0.005)
    batcher = MicroBatcher(rec, max_batch=32)

    async def grade(base: int) -> list[int]:
        return list(await asyncio.gather(*(batcher.submit(base + i) for i in range(5))))

    assert asyncio.run(grade(0)) == [0, 1, 4, 9, 16]
    assert asyncio.run(grade(10)) == [100, 121, 144, 169, 196]
    results: dict[int, list[int]] = {}
    threads = [
        threading.Thread(target=lambda b=b: results.__setitem__(b, asyncio.run(grade(b))))
        for b in (100, 200, 300)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {b: [(b + i) ** 2 for i in range(5)] for b in (100, 200, 300)}
    # no batch mixes two loops' items
    assert all(len({i // 100 for i in call}) == 1 for call in rec.calls if call[0] >= 100)


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"max_wait_s": -1.0}, {"max_inflight": 0}])
def test_bad_limits_are_refused(kwargs: dict[str, float]) -> None:
    async def run(items: list[int]) -> list[int]:
        return items

    with pytest.raises(ValueError):
        MicroBatcher(run, **kwargs)  # type: ignore[arg-type]
