"""Raw MariaDB baseline: `START TRANSACTION; SELECT ... FOR UPDATE SKIP LOCKED; UPDATE; COMMIT`
and a token-checked completion, through the driver alone (no pool, no library).

The claim is the shape issue 20 names: one explicit READ COMMITTED transaction that picks the
first queued rows with `SKIP LOCKED`, takes a token per row from a sequence in the same read
(`NEXTVAL` in the select list), marks them claimed and commits. MariaDB has no
`UPDATE ... RETURNING`, hence the read first. The four statements go in two round trips,
whatever the batch, as multi-statements (`START TRANSACTION; SELECT ...`, then
`UPDATE ...; COMMIT`): the floor a hand-written claim reaches without a stored procedure. The
completion is one autocommit `UPDATE` fenced by id, token, status and expiry.

Its tables live in the database `<database>_raw` (the URL's database plus `_raw`), recreated by
`prefill`. `driver` is `mysqlclient` (MySQLdb, C) or `pymysql` (pure Python), the two measured
for the backend's driver choice (benchmarks/mariadb_drivers.py, docs/decisions.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

DRIVERS = ("mysqlclient", "pymysql")
LOCK_WAIT_SECONDS = 10  # a claim never waits long: SKIP LOCKED does not wait at all


@dataclass(frozen=True, slots=True)
class Address:
    """Where the raw tables live: server, credentials and the `_raw` database."""

    host: str
    port: int
    user: str
    password: str
    database: str


def address(url: str) -> Address:
    """The raw database for a `mariadb://` or `mysql://` URL (its query options are ignored)."""
    parts = urlsplit(url)
    base = unquote(parts.path.lstrip("/")) or "workclaim"
    return Address(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=f"{base}_raw",
    )


def connect(url: str, driver: str = "mysqlclient", *, database: bool = True) -> Any:
    """An autocommit connection through `driver` (multi-statements on), READ COMMITTED, short
    lock waits."""
    where = address(url)
    kwargs: dict[str, Any] = {
        "host": where.host,
        "port": where.port,
        "user": where.user,
        "password": where.password,
        "connect_timeout": 10,
        "autocommit": True,
    }
    if database:
        kwargs["database"] = where.database
    if driver == "mysqlclient":
        import MySQLdb
        from MySQLdb.constants import CLIENT

        conn = MySQLdb.connect(**kwargs, client_flag=CLIENT.MULTI_STATEMENTS)
    elif driver == "pymysql":
        import pymysql
        from pymysql.constants import CLIENT as PYCLIENT

        conn = pymysql.connect(**kwargs, client_flag=PYCLIENT.MULTI_STATEMENTS)
    else:
        raise ValueError(f"unknown driver {driver!r}; choose from {', '.join(DRIVERS)}")
    cur = conn.cursor()
    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    cur.execute(f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_SECONDS}, time_zone = '+00:00'")
    cur.close()
    return conn


def prefill(url: str, n: int) -> None:
    """Recreate the raw database and insert n queued no-op items."""
    name = address(url).database
    conn = connect(url, database=False)
    try:
        cur = conn.cursor()
        for statement in (
            f"DROP DATABASE IF EXISTS `{name}`",
            f"CREATE DATABASE `{name}`",
            f"USE `{name}`",
            "CREATE SEQUENCE token_seq",
            """CREATE TABLE items (
                   id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                   payload JSON NOT NULL, status VARCHAR(16) NOT NULL, priority INT NOT NULL,
                   token BIGINT NULL, expires_at DATETIME(6) NULL,
                   KEY items_claim (status, priority, id)
               ) ENGINE = InnoDB""",
            f"""INSERT INTO items (payload, status, priority)
                SELECT '{{}}', 'queued', 0 FROM seq_1_to_{max(1, n)}""",
        ):
            cur.execute(statement)
        if n == 0:
            cur.execute("DELETE FROM items")
        cur.execute("ANALYZE TABLE items")
        cur.fetchall()
    finally:
        conn.close()


class MariadbRawWorker:
    """One autocommit connection running the claim transaction and the completion."""

    CLAIM_READ = """SELECT id, NEXTVAL(token_seq) FROM items WHERE status = 'queued'
                    ORDER BY priority, id LIMIT %s FOR UPDATE SKIP LOCKED"""
    COMPLETE = """UPDATE items SET status = 'done', expires_at = NULL
                  WHERE id = %s AND token = %s AND status = 'claimed'
                    AND expires_at > UTC_TIMESTAMP(6)"""

    def __init__(self, url: str, driver: str = "mysqlclient") -> None:
        self.conn = connect(url, driver)
        self.cur = self.conn.cursor()

    def _run(self, sql: str, params: Any = None) -> list[Any]:
        """One round trip of one or more statements; the last result set's rows."""
        cur = self.cur
        cur.execute(sql, params)
        rows = list(cur.fetchall()) if cur.description else []
        while cur.nextset():
            if cur.description:
                rows = list(cur.fetchall())
        return rows

    def claim(self, batch: int) -> list[tuple[int, int]]:
        try:
            found = self._run(f"START TRANSACTION; {self.CLAIM_READ}", (batch,))
            rows = [(int(r[0]), int(r[1])) for r in found]
            if not rows:
                self._run("COMMIT")
                return rows
            cases = " ".join("WHEN %s THEN %s" for _ in rows)
            marks = ", ".join("%s" for _ in rows)
            self._run(
                f"""UPDATE items SET status = 'claimed', token = CASE id {cases} END,
                        expires_at = UTC_TIMESTAMP(6) + INTERVAL 30 SECOND
                    WHERE id IN ({marks}); COMMIT""",
                [v for row in rows for v in row] + [r[0] for r in rows],
            )
        except BaseException:
            self.conn.rollback()
            raise
        return rows

    def complete(self, item_id: int, token: int) -> None:
        self.cur.execute(self.COMPLETE, (item_id, token))

    def close(self) -> None:
        self.conn.close()


def open_worker(url: str, driver: str = "mysqlclient") -> MariadbRawWorker:
    """A raw worker on its own connection."""
    return MariadbRawWorker(url, driver)


def drop(url: str) -> None:
    """Drop the raw baseline's database (benchmarks call this when they are done)."""
    conn = connect(url, database=False)
    try:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{address(url).database}`")
    finally:
        conn.close()
