"""The CLI a newcomer reaches for: one item (`item`, `history`, `requeue`, `cancel`) from a
database and from a server, `enqueue --run-at`, `token create --quiet`, and the errors that
say what is wrong (a typo in a schema, prefix, database or queue; a missing token)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support.http_process import serve_process
from tests.support.servers import mariadb_url, postgres_url, redis_url
from workclaim import Queue

ENV = {k: v for k, v in os.environ.items() if not k.startswith("WORKCLAIM_")}


def workclaim(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workclaim", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=ENV if env is None else env,
    )


def dead_item(db: str) -> int:
    """An item that failed for good with a two-line error."""
    with Queue(db) as q:
        item_id = q.enqueue("emails", {"to": "a@example.org"})
        [lease] = q.claim("emails", worker="w-1")
        q.fail(lease, "SMTPError: refused\nsecond line", retry=False)
    return item_id


def check_item_commands(target: list[str], item_id: int) -> None:
    """`item`, `history`, `requeue`, `cancel` on a dead item through `target` (--db or
    --server and --token)."""
    shown = workclaim("item", str(item_id), *target)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"item {item_id} on emails: dead\n"), shown.stdout
    assert '  payload: {"to": "a@example.org"}\n' in shown.stdout
    assert "  last_error:\n    SMTPError: refused\n    second line\n" in shown.stdout
    as_json = json.loads(workclaim("item", str(item_id), *target, "--json").stdout)
    assert (as_json["status"], as_json["attempts"]) == ("dead", 1)
    events = workclaim("history", str(item_id), *target)
    assert events.returncode == 0, events.stderr
    kinds = [line.split()[1] for line in events.stdout.splitlines()]
    assert kinds == ["claimed", "failed"], events.stdout
    assert 'error="SMTPError: refused"' in events.stdout
    requeued = workclaim("requeue", str(item_id), *target)
    assert (requeued.returncode, requeued.stdout) == (0, f"item {item_id}: queued\n")
    cancelled = workclaim("cancel", str(item_id), *target)
    assert (cancelled.returncode, cancelled.stdout) == (0, f"item {item_id}: cancelled\n")
    again = workclaim("cancel", str(item_id), *target)
    assert again.returncode == 1 and "cancelled" in again.stderr
    missing = workclaim("item", "999", *target)
    assert missing.returncode == 1 and "no item with id 999" in missing.stderr


@pytest.mark.parametrize("backend_name", ["sqlite", "mariadb"])
def test_one_item_from_a_database(store_url: str) -> None:
    check_item_commands(["--db", store_url], dead_item(store_url))


@pytest.mark.timeout(120)
def test_one_item_from_a_server_and_a_quiet_token(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    item_id = dead_item(db)
    tokens = tmp_path / "tokens"
    created = workclaim(
        "token", "create", "ops", "admin", "enqueue", "--append-to", str(tokens), "-q"
    )
    assert created.returncode == 0, created.stderr
    assert re.fullmatch(r"wc_\S+\n", created.stdout), created.stdout
    assert created.stderr == ""
    token = created.stdout.strip()
    with serve_process(db, "--tokens", str(tokens)) as base:
        check_item_commands(["--server", base, "--token", token], item_id)
        with_env = workclaim(
            "item", str(item_id), "--server", base, env={**ENV, "WORKCLAIM_TOKEN": token}
        )
        assert with_env.returncode == 0, with_env.stderr
        for command in (["item", str(item_id)], ["enqueue", "emails", "1"], ["stats"]):
            refused = workclaim(*command, "--server", base)
            assert refused.returncode == 1, refused.stderr
            assert "pass --token or set WORKCLAIM_TOKEN" in refused.stderr, refused.stderr


def test_enqueue_run_at_and_an_unknown_queue(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    later = workclaim("enqueue", "emails", "1", "--run-at", "2031-02-03T04:05:06+02:00", "--db", db)
    assert later.returncode == 0, later.stderr
    naive = workclaim("enqueue", "emails", "2", "--run-at", "2031-02-03T04:05:06", "--db", db)
    assert naive.returncode == 0, naive.stderr
    with Queue(db) as q:
        first, second = q.items("emails")
    assert first.run_at == datetime(2031, 2, 3, 2, 5, 6, tzinfo=UTC)
    assert second.run_at == datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)
    bad = workclaim("enqueue", "emails", "1", "--run-at", "tomorrow", "--db", db)
    assert bad.returncode == 2 and "--run-at must be an ISO time" in bad.stderr
    stats = workclaim("stats", "-q", "emails", "-q", "emials", "--db", db)
    assert stats.returncode == 0, stats.stderr
    assert "queue 'emials' is unknown here" in stats.stderr
    assert "'emails'" not in stats.stderr


def test_a_typo_in_a_schema_or_prefix_says_so(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    stores = (postgres_url, redis_url, mariadb_url)  # a MariaDB database of its own, empty
    for url in (store(request, tmp_path) for store in stores):
        result = workclaim("stats", "--db", url)
        assert result.returncode == 1, result.stderr
        assert "no workclaim store here" in result.stderr and "typo" in result.stderr
        assert "run `workclaim migrate`" in result.stderr


@pytest.mark.parametrize(
    ("backend_name", "message"),
    [
        ("postgres", "PostgreSQL has no database 'no_such_db_here'"),
        ("mariadb", "MariaDB has no such database"),
    ],
)
def test_an_unknown_database_is_a_config_error(store_url: str, message: str) -> None:
    url = urlunsplit(urlsplit(store_url)._replace(path="/no_such_db_here"))
    result = workclaim("stats", "--db", url)
    assert result.returncode == 1, result.stderr  # not 3: retrying later cannot help
    assert message in result.stderr and "no_such_db_here" in result.stderr


def test_quick_commands_leave_the_persistence_warning_to_serve_and_worker(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = redis_url(request, tmp_path)
    migrated = workclaim("migrate", "--db", url)  # says it, on a Redis that is not durable
    assert migrated.returncode == 0, migrated.stderr
    for command in (["enqueue", "jobs", "1"], ["stats"]):
        result = workclaim(*command, "--db", url)
        assert result.returncode == 0, result.stderr
        assert "full promise" not in result.stderr, result.stderr
    shown = workclaim("--log-level", "info", "stats", "--db", url)
    assert ("full promise" in shown.stderr) == ("full promise" in migrated.stderr)
