"""The connection slots (``rm_service.models._slots.Slots``): arrival order, cancellation and
deadlines never lose or duplicate a slot."""

from __future__ import annotations

import asyncio

import pytest

from rm_service.models._slots import Slots


async def test_waiters_get_slots_in_arrival_order() -> None:
    slots = Slots(1)
    await slots.acquire()
    order: list[int] = []

    async def take(i: int) -> None:
        async with slots:
            order.append(i)
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(take(i)) for i in range(5)]
    await asyncio.sleep(0)
    slots.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert slots.free == 1


async def test_a_free_slot_is_not_taken_ahead_of_a_waiter() -> None:
    slots = Slots(1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # handed to the waiter, not freed
    assert not slots.try_acquire()
    await waiter
    slots.release()
    assert slots.try_acquire()


async def test_a_waiter_cancelled_before_its_turn_takes_no_slot() -> None:
    slots = Slots(1)
    await slots.acquire()
    gone = asyncio.create_task(slots.acquire())
    stays = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    slots.release()
    await asyncio.wait_for(stays, 1)
    slots.release()
    assert slots.free == 1


async def test_a_slot_handed_to_a_waiter_as_it_is_cancelled_goes_on_to_the_next() -> None:
    slots = Slots(1)
    await slots.acquire()
    first = asyncio.create_task(slots.acquire())
    second = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # the slot is handed to ``first``...
    first.cancel()  # ...which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)  # the slot was passed on, not lost
    slots.release()
    assert slots.free == 1


async def test_a_deadline_on_the_wait_leaves_the_count_whole() -> None:
    slots = Slots(2)
    await slots.acquire()
    await slots.acquire()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await slots.acquire()
    slots.release()
    slots.release()
    assert slots.free == 2
    assert slots.try_acquire() and slots.try_acquire() and not slots.try_acquire()


def test_a_pool_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        Slots(0)
