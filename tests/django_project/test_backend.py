"""WorkclaimBackend in a real Django project: enqueue, results and their statuses, priorities,
run_after, context, async tasks and transactions, on a SQLite and a PostgreSQL store."""

from __future__ import annotations

import asyncio
import importlib
import threading
from datetime import timedelta
from functools import partial
from typing import Any

import pytest

from tests.django_project.conftest import Site

STORES = ["default", "pg"]  # TASKS aliases: workclaim on SQLite, on PostgreSQL


@pytest.fixture
def shop(site: Site) -> Any:
    """The test app's tasks module (imported as the worker imports it: `shop.tasks`)."""
    return importlib.import_module("shop.tasks")


@pytest.fixture
def queue_name(request: pytest.FixtureRequest) -> str:
    """A queue of this test's own (the stores are shared by the module's tests)."""
    return f"q-{abs(hash(request.node.nodeid)) % 10**9}"


def backend(alias: str) -> Any:
    from workclaim.django._compat import task_backends

    return task_backends[alias]


def run_until_done(alias: str, queue: str, count: int) -> None:
    """Run the backend's queue with the Django handler in this process until `count` items
    of `queue` are finished (the management command's loop, without its process)."""
    from workclaim.django.runner import run_task
    from workclaim.worker import Worker

    q = backend(alias).queue
    worker = Worker(q, queues=[queue], wait=0.2, concurrency=2)
    handler = partial(run_task, backend=alias)
    thread = threading.Thread(target=worker.run, args=(handler,), kwargs={"install_signals": False})
    thread.start()
    try:
        for _ in range(600):
            stats = q.stats(queue)
            if stats.done + stats.dead >= count:
                return
            threading.Event().wait(0.1)
        raise AssertionError(f"{count} items of {queue} not finished: {q.stats(queue)}")
    finally:
        worker.stop()
        thread.join(30)


@pytest.mark.parametrize("alias", STORES)
def test_enqueue_stores_a_ready_item_naming_the_task(
    alias: str, shop: Any, queue_name: str
) -> None:
    from workclaim.django._compat import TaskResultStatus

    result = shop.add.using(backend=alias, queue_name=queue_name).enqueue(1, b=2)
    assert result.status == TaskResultStatus.READY
    item = backend(alias).queue.get(int(result.id))
    assert item.queue == queue_name
    assert item.payload == {"task": "shop.tasks.add", "args": [1], "kwargs": {"b": 2}}
    fetched = shop.add.get_result(result.id)
    assert fetched.status == TaskResultStatus.READY
    assert (fetched.args, fetched.kwargs, fetched.attempts) == ([1], {"b": 2}, 0)
    assert fetched.enqueued_at is not None and fetched.finished_at is None


@pytest.mark.parametrize("alias", STORES)
def test_results_follow_the_item_through_running_success_and_failure(
    alias: str, shop: Any, queue_name: str
) -> None:
    from workclaim.django._compat import TaskResultStatus

    ok = shop.add.using(backend=alias, queue_name=queue_name).enqueue(2, 3)
    bad = shop.fail_always.using(backend=alias, queue_name=queue_name).enqueue("no such row")
    ctx = shop.whoami.using(backend=alias, queue_name=queue_name).enqueue("me")
    run_until_done(alias, queue_name, 3)

    ok.refresh()
    assert ok.status == TaskResultStatus.SUCCESSFUL
    again = backend(alias).get_result(ok.id)  # its task knows its backend: refresh asks it
    again.refresh()
    assert (again.task.backend, again.return_value) == (alias, 5)
    assert ok.return_value == 5
    assert ok.attempts == 1 and ok.started_at is not None and ok.finished_at is not None
    bad.refresh()
    assert bad.status == TaskResultStatus.FAILED
    [error] = bad.errors
    assert error.exception_class is shop.OutOfStock
    assert error.exception_class_path == "shop.tasks.OutOfStock"
    assert "no such row" in error.traceback
    ctx.refresh()
    assert ctx.return_value == {"label": "me", "id": ctx.id, "attempt": 1}


@pytest.mark.parametrize("alias", STORES)
def test_a_claimed_item_is_running(alias: str, shop: Any, queue_name: str) -> None:
    from workclaim.django._compat import TaskResultStatus

    result = shop.add.using(backend=alias, queue_name=queue_name).enqueue(1, 1)
    [_lease] = backend(alias).queue.claim(queue_name, worker="w-1")
    running = shop.add.get_result(result.id)
    assert running.status == TaskResultStatus.RUNNING
    assert running.worker_ids == ["w-1"]


@pytest.mark.parametrize("alias", STORES)
def test_higher_django_priority_is_claimed_first(alias: str, shop: Any, queue_name: str) -> None:
    ids = {
        priority: shop.add.using(backend=alias, queue_name=queue_name, priority=priority)
        .enqueue(priority, 0)
        .id
        for priority in (-100, 0, 100, 7)
    }
    leases = backend(alias).queue.claim(queue_name, worker="w-1", limit=4)
    assert [str(lease.id) for lease in leases] == [ids[100], ids[7], ids[0], ids[-100]]


@pytest.mark.parametrize("alias", STORES)
def test_run_after_defers_the_item(alias: str, shop: Any, queue_name: str) -> None:
    from django.utils import timezone

    later = timezone.now() + timedelta(hours=1)
    result = shop.add.using(backend=alias, queue_name=queue_name, run_after=later).enqueue(1, 2)
    q = backend(alias).queue
    assert q.claim(queue_name, worker="w-1") == []
    assert abs((q.get(int(result.id)).run_at - later).total_seconds()) < 0.01
    now = later + timedelta(seconds=1)
    [lease] = q.claim(queue_name, worker="w-1", now=now)
    assert str(lease.id) == result.id


@pytest.mark.parametrize("alias", STORES)
def test_async_tasks_and_the_async_api(alias: str, shop: Any, queue_name: str) -> None:
    from workclaim.django._compat import TaskResultStatus

    task = shop.add_later.using(backend=alias, queue_name=queue_name)
    result = asyncio.run(task.aenqueue(20, 22))
    run_until_done(alias, queue_name, 1)
    fetched = asyncio.run(task.aget_result(result.id))
    assert fetched.status == TaskResultStatus.SUCCESSFUL
    assert fetched.return_value == 42


def test_unknown_ids_and_arguments_that_are_not_json(site: Site, shop: Any) -> None:
    from workclaim.django._compat import InvalidTask, TaskResultDoesNotExist

    for missing in ("999999999", "nope", "-1"):
        with pytest.raises(TaskResultDoesNotExist):
            shop.add.get_result(missing)
    with pytest.raises(InvalidTask, match=r"args\[0\]"):
        shop.add.enqueue(object(), 1)
    with pytest.raises(InvalidTask, match="queue name"):
        shop.add.using(queue_name="bad name\n")


def test_a_rolled_back_transaction_takes_the_item_with_it_on_postgresql(
    site: Site, shop: Any, queue_name: str
) -> None:
    from django.db import connections, transaction

    from workclaim.django._compat import TaskResultDoesNotExist, TaskResultStatus

    task = shop.add.using(backend="pg", queue_name=queue_name)
    with transaction.atomic(using="pg"):
        cursor = connections["pg"].cursor()
        cursor.execute("CREATE TEMP TABLE orders (id int)")
        cursor.execute("INSERT INTO orders VALUES (1)")
        gone = task.enqueue(1, 1)
        transaction.set_rollback(True, using="pg")
    with pytest.raises(TaskResultDoesNotExist):
        task.get_result(gone.id)
    assert backend("pg").queue.stats(queue_name).total == 0

    with transaction.atomic(using="pg"):
        kept = task.enqueue(2, 2)
        # Not visible outside the transaction before it commits.
        with pytest.raises(TaskResultDoesNotExist):
            task.get_result(kept.id)
    assert task.get_result(kept.id).status == TaskResultStatus.READY


def test_on_sqlite_the_item_is_written_at_once(site: Site, shop: Any, queue_name: str) -> None:
    """Documented: a SQLite (or Redis) store cannot join Django's transaction."""
    from django.db import transaction

    task = shop.add.using(queue_name=queue_name)
    with transaction.atomic():
        written = task.enqueue(1, 1)
        transaction.set_rollback(True)
    assert task.get_result(written.id).id == written.id


@pytest.mark.parametrize("database", ["default", "pg"])
def test_the_handler_closes_old_connections_after_a_task(
    site: Site, shop: Any, queue_name: str, database: str
) -> None:
    """CONN_MAX_AGE is 0 (Django's default): a connection a task opened is closed when the task
    ends, as at the end of a request, not left to the next task on the thread."""
    from django.db import connections

    from workclaim.django.runner import run_task
    from workclaim.worker import Context

    shop.touch_database.using(queue_name=queue_name).enqueue(database)
    q = backend("default").queue
    [lease] = q.claim(queue_name, worker="w-1")
    assert run_task(Context(lease=lease), backend="default") == 1
    assert connections[database].connection is None
    q.complete(lease, result=1)


def test_an_item_naming_no_task_ends_dead_with_a_clear_error(site: Site, queue_name: str) -> None:
    from workclaim.django._compat import TaskResultDoesNotExist

    q = backend("default").queue
    item_id = q.enqueue(queue_name, {"task": "shop.tasks.nope", "args": [], "kwargs": {}})
    run_until_done("default", queue_name, 1)
    item = q.get(item_id)
    assert item.status == "dead"
    assert item.last_error is not None and "cannot import task 'shop.tasks.nope'" in item.last_error
    with pytest.raises(TaskResultDoesNotExist):
        backend("default").get_result(str(item_id))


@pytest.mark.parametrize("alias", STORES)
def test_each_execution_sends_the_frameworks_signals(
    alias: str, shop: Any, queue_name: str
) -> None:
    from workclaim.django._compat import TaskResultStatus, task_finished, task_started

    seen: list[tuple[str, str, str, list[str]]] = []
    lock = threading.Lock()

    def record(signal: str) -> Any:
        def receiver(sender: type, task_result: Any, **kwargs: Any) -> None:
            with lock:
                paths = [error.exception_class_path for error in task_result.errors]
                seen.append((signal, task_result.id, str(task_result.status), paths))

        return receiver

    on_start, on_finish = record("started"), record("finished")
    task_started.connect(on_start)
    task_finished.connect(on_finish)
    try:
        ok = shop.add.using(backend=alias, queue_name=queue_name).enqueue(1, 2)
        bad = shop.fail_always.using(backend=alias, queue_name=queue_name).enqueue("x")
        run_until_done(alias, queue_name, 2)
    finally:
        task_started.disconnect(on_start)
        task_finished.disconnect(on_finish)
    running, done, failed = (
        str(TaskResultStatus.RUNNING),
        str(TaskResultStatus.SUCCESSFUL),
        str(TaskResultStatus.FAILED),
    )
    assert sorted(seen) == sorted(
        [
            ("started", ok.id, running, []),
            ("finished", ok.id, done, []),
            ("started", bad.id, running, []),
            ("finished", bad.id, failed, ["shop.tasks.OutOfStock"]),
        ]
    )
