"""MariaDB durability, checked when a queue opens: `innodb_flush_log_at_trx_commit` other than 1,
or `sync_binlog` other than 1 while the binary log is on, is refused under `strict_durability`
and logged once per database otherwise; the durable settings pass the strict check.

Both settings are server-wide (SET GLOBAL), so they are changed on throwaway servers of their own
(tests/support/mariadbserver.py), never on the shared one: one started with
`innodb_flush_log_at_trx_commit=0`, the binary log on and `sync_binlog=0`, and one without the
binary log. Each test sets the globals it is about (they are dynamic) and opens a fresh database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.support import mariadbserver
from tests.support.servers import unavailable
from workclaim import ConfigError, Queue, Settings

STRICT = Settings(strict_durability=True)
FIX = "set innodb_flush_log_at_trx_commit = 1 (and sync_binlog = 1 with log_bin)"


def _server(options: list[str]) -> Iterator[mariadbserver.MariadbServer]:
    if mariadbserver.binaries() is None:
        unavailable("no MariaDB server binaries to start a throwaway server with")
    server = mariadbserver.MariadbServer.create(options)
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def binlog_server() -> Iterator[mariadbserver.MariadbServer]:
    """A throwaway server started lax: flush at commit 0, the binary log on, sync_binlog 0."""
    yield from _server(
        [
            "--innodb-flush-log-at-trx-commit=0",
            "--log-bin=mariadb-bin",
            "--server-id=1",
            "--sync-binlog=0",
        ]
    )


@pytest.fixture(scope="module")
def plain_server() -> Iterator[mariadbserver.MariadbServer]:
    """A throwaway server without the binary log, started with sync_binlog 0."""
    yield from _server(["--skip-log-bin", "--sync-binlog=0"])


def _set(server: mariadbserver.MariadbServer, flush: int, sync_binlog: int) -> str:
    """Set both globals on `server`; a fresh database's URL (its sessions see the new values)."""
    server.execute(f"SET GLOBAL innodb_flush_log_at_trx_commit = {flush}")
    server.execute(f"SET GLOBAL sync_binlog = {sync_binlog}")
    return server.database_url()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "workclaim"]


def _opens_twice_and_works(url: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Open the queue twice without strict_durability (it works); the warnings logged."""
    with caplog.at_level(logging.WARNING, logger="workclaim"):
        for n in range(2):
            with Queue(url) as q:
                q.enqueue("jobs", n)
                assert [lease.payload for lease in q.claim("jobs", worker="w")] == [n]
    return _warnings(caplog)


@pytest.mark.timeout(180)
def test_the_server_starts_with_flush_at_commit_0_which_strict_refuses(
    binlog_server: mariadbserver.MariadbServer,
) -> None:
    url = binlog_server.database_url()  # the server's own start settings, nothing set
    with pytest.raises(ConfigError, match=r"strict_durability.*innodb_flush_log_at_trx_commit = 0"):
        Queue(url, settings=STRICT)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("flush", [0, 2])
def test_flush_at_commit_other_than_1_is_refused_when_strict_and_logged_once(
    binlog_server: mariadbserver.MariadbServer, caplog: pytest.LogCaptureFixture, flush: int
) -> None:
    url = _set(binlog_server, flush, 1)
    with pytest.raises(ConfigError, match=f"innodb_flush_log_at_trx_commit = {flush}") as refused:
        Queue(url, settings=STRICT)
    assert FIX in str(refused.value)
    [warning] = _opens_twice_and_works(url, caplog)  # two opens, one warning
    assert f"innodb_flush_log_at_trx_commit = {flush}" in warning
    assert "last second" in warning and FIX in warning


@pytest.mark.timeout(180)
def test_sync_binlog_0_with_the_binary_log_on_is_refused_when_strict_and_logged_once(
    binlog_server: mariadbserver.MariadbServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = _set(binlog_server, 1, 0)
    with pytest.raises(ConfigError, match=r"strict_durability.*sync_binlog = 0 with the binary"):
        Queue(url, settings=STRICT)
    [warning] = _opens_twice_and_works(url, caplog)
    assert "sync_binlog = 0 with the binary log on" in warning and FIX in warning
    assert "last second" not in warning  # the flush setting is fine here


@pytest.mark.timeout(180)
def test_flush_at_commit_1_and_sync_binlog_1_pass_the_strict_check(
    binlog_server: mariadbserver.MariadbServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = _set(binlog_server, 1, 1)
    with caplog.at_level(logging.WARNING, logger="workclaim"), Queue(url, settings=STRICT) as q:
        q.enqueue("jobs", 1)
    assert _warnings(caplog) == []


@pytest.mark.timeout(180)
def test_sync_binlog_0_without_the_binary_log_passes_the_strict_check(
    plain_server: mariadbserver.MariadbServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = _set(plain_server, 1, 0)
    with caplog.at_level(logging.WARNING, logger="workclaim"), Queue(url, settings=STRICT) as q:
        q.enqueue("jobs", 1)
    assert _warnings(caplog) == []
