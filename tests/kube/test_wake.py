"""The reconciler's wake-up flag: asyncio.Event's behaviour for its one waiter, without the Event."""

from __future__ import annotations

import asyncio

from canary.kube.reconciler import WakeFlag

#: Far longer than any wake-up takes: a flag that never wakes its waiter fails the test instead
#: of hanging the suite.
NEVER = 60.0


async def test_a_wake_set_before_the_wait_is_not_lost() -> None:
    wake = WakeFlag()
    wake.set()
    await asyncio.wait_for(wake.wait(), timeout=NEVER)
    assert wake.is_set()


async def test_a_waiting_task_is_woken_by_set() -> None:
    wake = WakeFlag()
    waiter = asyncio.create_task(wake.wait())
    await asyncio.sleep(0)  # the task is parked on the flag
    assert not waiter.done()
    wake.set()
    await asyncio.wait_for(waiter, timeout=NEVER)


async def test_a_wait_given_up_on_leaves_the_flag_usable() -> None:
    wake = WakeFlag()
    try:
        await asyncio.wait_for(wake.wait(), timeout=0)
    except asyncio.TimeoutError:
        pass
    waiter = asyncio.create_task(wake.wait())
    await asyncio.sleep(0)
    wake.set()
    await asyncio.wait_for(waiter, timeout=NEVER)


async def test_clear_makes_the_next_wait_block() -> None:
    wake = WakeFlag()
    wake.set()
    wake.clear()
    waiter = asyncio.create_task(wake.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    wake.set()
    await asyncio.wait_for(waiter, timeout=NEVER)


async def test_a_deadline_that_comes_first_ends_the_wait_and_says_so() -> None:
    wake = WakeFlag()
    loop = asyncio.get_running_loop()
    assert await asyncio.wait_for(wake.wait_until(loop.time()), timeout=NEVER) is True
    assert not wake.is_set()
    waiter = asyncio.create_task(wake.wait_until(loop.time() + NEVER))
    await asyncio.sleep(0)
    wake.set()
    assert await asyncio.wait_for(waiter, timeout=NEVER) is False


async def test_deadlines_end_their_waits_in_the_order_of_the_deadlines_not_of_the_waits() -> None:
    loop = asyncio.get_running_loop()
    base = loop.time() + 0.05
    offsets = [0.007, 0.001, 0.009, 0.003, 0.005]  # started in this order, due in sorted order
    woken: list[float] = []

    async def one(offset: float) -> None:
        await WakeFlag().wait_until(base + offset)
        woken.append(offset)

    await asyncio.wait_for(asyncio.gather(*(one(offset) for offset in offsets)), timeout=NEVER)
    assert woken == sorted(offsets)
