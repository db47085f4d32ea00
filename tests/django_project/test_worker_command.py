"""`manage.py workclaim_worker` in its own process runs tasks enqueued by this one, and stops
cleanly on SIGTERM."""

from __future__ import annotations

import importlib
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.django_project.conftest import PROJECT, Site


def start_worker(site: Site, alias: str, queue: str) -> subprocess.Popen[str]:
    import os

    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "workclaim_worker",
            "--backend",
            alias,
            "-q",
            queue,
            "--wait",
            "0.5",
            "--concurrency",
            "2",
            "--grace",
            "5",
        ],
        cwd=PROJECT,
        env={**os.environ, **site.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize("alias", ["default", "pg"])
def test_the_management_command_runs_tasks(site: Site, alias: str) -> None:
    from workclaim.django._compat import TaskResultStatus

    shop: Any = importlib.import_module("shop.tasks")
    queue = f"cmd-{alias}"
    added = shop.add.using(backend=alias, queue_name=queue).enqueue(40, 2)
    awaited = shop.add_later.using(backend=alias, queue_name=queue).enqueue(1, 2)
    worker = start_worker(site, alias, queue)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            added.refresh()
            awaited.refresh()
            if added.is_finished and awaited.is_finished:
                break
            time.sleep(0.1)
        assert added.status == TaskResultStatus.SUCCESSFUL, added.errors
        assert awaited.status == TaskResultStatus.SUCCESSFUL, awaited.errors
        assert (added.return_value, awaited.return_value) == (42, 3)
        assert added.worker_ids[0].endswith(f"-{worker.pid}")
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
    assert f"queues {queue}" in output


def test_the_command_refuses_a_backend_that_is_not_workclaims(site: Site) -> None:
    import os

    done = subprocess.run(
        [sys.executable, "manage.py", "workclaim_worker", "--backend", "nosuch"],
        cwd=PROJECT,
        env={**os.environ, **site.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "nosuch" in done.stderr
