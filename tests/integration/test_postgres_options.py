"""PostgreSQL URL options and deadlines: what reaches libpq, and a blocked call's fate."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from tests.integration._pg import connect
from tests.support.servers import postgres_url, with_query
from workclaim import BackendUnavailable, ConfigError, Queue, Settings
from workclaim.backends.postgres.connection import connection_string, parse_url


def test_workclaim_options_are_removed_and_the_rest_reach_libpq() -> None:
    libpq, schema, pool = parse_url(
        "postgresql://u@h:5433/db?schema=jobs&sslmode=disable&pool_size=3&application_name=x"
    )
    assert (schema, pool) == ("jobs", 3)
    params = conninfo_to_dict(connection_string(libpq, 10))
    assert params["sslmode"] == "disable" and params["application_name"] == "x"
    assert "schema" not in params and "pool_size" not in params
    assert params["connect_timeout"] == "10" and params["tcp_user_timeout"] == "10000"
    assert "statement_timeout=10000" in str(params["options"])
    assert "idle_in_transaction_session_timeout=10000" in str(params["options"])


def test_deadlines_set_in_the_url_win() -> None:
    libpq, _, _ = parse_url("postgresql://u@h/db?connect_timeout=3&options=-c%20work_mem=8MB")
    params = conninfo_to_dict(connection_string(libpq, 10))
    assert params["connect_timeout"] == "3"
    assert str(params["options"]).endswith("-c work_mem=8MB")  # later -c settings win in PostgreSQL


@pytest.mark.parametrize("option", ["pool_size=0", "pool_size=many", "schema=Jobs"])
def test_bad_options_are_config_errors(option: str) -> None:
    with pytest.raises(ConfigError):
        parse_url(f"postgresql://u@h/db?{option}")


@pytest.mark.timeout(60)
def test_a_call_blocked_by_a_stuck_lock_holder_ends_at_the_deadline(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = postgres_url(request, tmp_path)
    schema = parse_url(url)[1]
    with Queue(url, settings=Settings(timeout=0.5)) as q, connect(url) as stuck:
        q.enqueue("jobs", 1)
        [lease] = q.claim("jobs", worker="w", lease_seconds=600)
        # Another client locks the row and sits in its transaction.
        stuck.execute(
            sql.SQL("SELECT 1 FROM {}.items WHERE id = %s FOR UPDATE").format(
                sql.Identifier(schema)
            ),
            (lease.id,),
        )
        with pytest.raises(BackendUnavailable):
            q.complete(lease)  # statement_timeout, not a hang
        stuck.rollback()
        q.complete(lease)  # nothing was half-applied: the lease is still good
        assert q.get(lease.id).status == "done"


def test_the_default_schema_is_workclaim() -> None:
    assert parse_url(with_query("postgresql://u@h/db", sslmode="disable"))[1] == "workclaim"


def test_a_wrong_database_fails_at_once_with_the_reason(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    base = postgres_url(request, tmp_path)
    parts = base.split("?")[0].rsplit("/", 1)[0]
    # A database that does not exist is a wrong URL, not an outage: ConfigError, not
    # BackendUnavailable ("retry later"), and at once, not after the 30 s timeout.
    with pytest.raises(ConfigError, match="wc_no_such_db"):
        Queue(f"{parts}/wc_no_such_db", settings=Settings(timeout=30))
