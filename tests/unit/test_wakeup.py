"""The wake-up fan-out: a signal between a look and a wait is never lost."""

from __future__ import annotations

import asyncio
import threading

from workclaim.backends.wakeup import Wakeup


def test_a_signal_after_reading_the_generation_ends_the_wait_at_once() -> None:
    wakeup = Wakeup()
    generation = wakeup.generation()
    wakeup.notify()  # arrives before the waiter starts waiting
    assert wakeup.wait(generation, timeout=60) is True


def test_a_wait_without_a_signal_times_out() -> None:
    wakeup = Wakeup()
    assert wakeup.wait(wakeup.generation(), timeout=0.01) is False


def test_sync_and_async_waiters_are_all_woken_and_the_listener_starts_once() -> None:
    started: list[int] = []
    wakeup = Wakeup(on_first_waiter=lambda: started.append(1))
    generation = wakeup.generation()
    ready = threading.Barrier(3)
    results: list[bool] = []

    def sync_waiter() -> None:
        ready.wait()
        results.append(wakeup.wait(generation, timeout=60))

    async def async_waiters() -> list[bool]:
        tasks = [asyncio.create_task(wakeup.wait_async(generation, 60)) for _ in range(5)]
        await asyncio.sleep(0)
        await asyncio.to_thread(ready.wait)
        await asyncio.to_thread(lambda: wakeup.wait(generation - 1, 60))  # returns at once
        return list(await asyncio.gather(*tasks))

    threads = [threading.Thread(target=sync_waiter) for _ in range(2)]
    for t in threads:
        t.start()
    notifier = threading.Timer(0.05, wakeup.notify)
    notifier.start()
    async_results = asyncio.run(async_waiters())
    for t in threads:
        t.join()
    notifier.join()
    assert async_results == [True] * 5
    assert results == [True, True]
    assert started == [1]
    assert wakeup.waiting == 0
