"""`workclaim worker --tasks PACKAGE` as people run it: a real subprocess imports a package and
its submodules, runs their tasks on the queues they name, and refuses an unknown task."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workclaim import Queue, Status
from workclaim.tasks import Handle, TaskFailed, encode_call

PACKAGE = {
    "shop/__init__.py": "",
    "shop/mail.py": """
        from workclaim import tasks

        @tasks.task(queue="emails", max_attempts=2, lease=20)
        def send(to, subject="hi"):
            return f"sent {subject!r} to {to}"
    """,
    "shop/billing/__init__.py": "",
    "shop/billing/charges.py": """
        from workclaim import tasks
        from workclaim.worker import Context

        @tasks.task(queue="billing")
        async def charge(cents, ctx):
            return {"cents": cents, "attempt": ctx.attempt}
    """,
}


def write_package(root: Path) -> None:
    for name, text in PACKAGE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.mark.timeout(120)
def test_worker_tasks_runs_a_package_and_refuses_unknown_tasks(tmp_path: Path) -> None:
    write_package(tmp_path)
    db = f"sqlite:///{tmp_path / 'w.db'}"
    with Queue(db) as q:
        sent = q.enqueue("emails", encode_call("shop.mail.send", ["a@example.org"], {}))
        charged = q.enqueue("billing", encode_call("shop.billing.charges.charge", [250], {}))
        unknown = q.enqueue("emails", encode_call("shop.mail.gone", [], {}), max_attempts=1)
    cmd = [sys.executable, "-m", "workclaim", "worker", "--tasks", "shop", "--db", db]
    cmd += ["--wait", "1", "--grace", "5"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with Queue(db) as q:
            assert Handle(q, sent).result(timeout=60) == "sent 'hi' to a@example.org"
            assert Handle(q, charged).result(timeout=60) == {"cents": 250, "attempt": 1}
            with pytest.raises(TaskFailed) as failed:
                Handle(q, unknown).result(timeout=60)
            assert q.get(unknown).status is Status.DEAD
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "no task named 'shop.mail.gone' is registered in this worker; registered: " in str(
        failed.value.error
    )
    assert "shop.billing.charges.charge, shop.mail.send" in str(failed.value.error)
    assert b"claiming from billing,emails" in err


def test_worker_needs_a_handler_or_tasks(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    cmd = [sys.executable, "-m", "workclaim", "worker", "--db", db]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "give a handler module:function or --tasks MODULE" in done.stderr
    done = subprocess.run(
        [*cmd, "--tasks", "nosuch_module"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "cannot import task module 'nosuch_module'" in done.stderr
