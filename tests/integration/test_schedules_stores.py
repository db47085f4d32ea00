"""Schedules on the server stores: a change made through one client wakes another client's
waiting scheduler (PostgreSQL NOTIFY, Redis PUBLISH, MariaDB's change signal that the other
process's poller reads), and every backend keeps a schedule's
payload as the exact JSON text given (so a payload differing only in key order is a change, on
PostgreSQL as on SQLite and Redis)."""

from __future__ import annotations

import threading

import pytest

from tests.contract.helpers import at
from workclaim import Queue


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend_name", ["postgres", "redis", "mariadb"])
@pytest.mark.parametrize("change", ["declare", "replace", "remove"])
def test_a_schedule_change_by_another_client_wakes_a_waiting_scheduler(
    store_url: str, change: str
) -> None:
    with Queue(store_url) as waiter, Queue(store_url) as other:
        if change != "declare":
            other.schedule("s", "jobs", "@daily", now=at(0))
        wakeup = waiter.backend.wakeup()
        wakeup.wait(wakeup.generation(), 5)  # starts the listener, which wakes once subscribed
        generation = wakeup.generation()

        def change_once_waiting() -> None:
            while wakeup.waiting == 0:
                threading.Event().wait(0.01)
            if change == "remove":
                other.unschedule("s")
            else:
                other.schedule("s", "jobs", "@hourly", now=at(1))

        helper = threading.Thread(target=change_once_waiting)
        helper.start()
        try:
            # Far longer than the test's timeout: only the other client's signal ends it in time.
            woken = wakeup.wait(generation, 600)
        finally:
            helper.join()
    assert woken


def test_the_payload_is_kept_as_the_text_given(queue: Queue) -> None:
    first = queue.schedule("s", "jobs", "@daily", payload={"b": 1, "a": [2, 1]}, now=at(0))
    again = queue.schedule("s", "jobs", "@daily", payload={"b": 1, "a": [2, 1]}, now=at(1))
    assert again.version == first.version == 1
    reordered = queue.schedule("s", "jobs", "@daily", payload={"a": [2, 1], "b": 1}, now=at(2))
    assert reordered.version == 2 and reordered.set_at == at(2)
    assert list(reordered.payload) == ["a", "b"]
    item_id = queue.fire_slot(reordered, at(86_400), now=at(86_400))
    assert item_id is not None
    assert list(queue.get(item_id).payload) == ["a", "b"]
