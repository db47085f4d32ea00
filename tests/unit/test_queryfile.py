"""Named query files."""

from __future__ import annotations

import pytest

from workclaim.backends._queryfile import load_queries, parse_queries


def test_parse_named_queries_drops_comments() -> None:
    text = "-- name: one\n-- what it does\nSELECT 1;\n\n-- name: two\nSELECT 2\n-- trailing\n"
    assert parse_queries(text) == {"one": "SELECT 1", "two": "SELECT 2"}


def test_a_repeated_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n")


def test_the_sqlite_queries_load_from_package_data() -> None:
    queries = load_queries("workclaim.backends.sqlite", "queries.sql")
    assert {"claim_one_queue", "complete", "heartbeat", "fail", "release"} <= set(queries)
    assert all(sql and "-- name" not in sql for sql in queries.values())
