"""MariaDB URL options, the server check and migration splitting: no server needed."""

from __future__ import annotations

import pytest

from workclaim import Settings
from workclaim.backends.mariadb.connection import check_server_version, parse_url
from workclaim.backends.mariadb.schema import split_statements
from workclaim.errors import ConfigError


def test_the_url_gives_host_port_user_database_and_deadlines_from_the_settings() -> None:
    target = parse_url("mariadb://bob:s%40cret@db.example:3307/jobs", Settings(timeout=2.5))
    assert (target.host, target.port, target.user, target.password, target.database) == (
        "db.example",
        3307,
        "bob",
        "s@cret",
        "jobs",
    )
    assert target.pool_size == 10
    assert (target.connect_timeout, target.write_timeout, target.lock_wait_timeout) == (3, 3, 3)
    assert target.read_timeout == 4  # a second past the server's max_statement_time
    assert target.statement_timeout == 2.5


def test_url_options_override_the_deadlines_and_the_pool_size() -> None:
    target = parse_url(
        "mysql://root@h/db?pool_size=3&connect_timeout=7&read_timeout=8&write_timeout=9"
        "&lock_wait_timeout=2",
        Settings(),
    )
    assert (target.port, target.pool_size) == (3306, 3)
    assert (target.connect_timeout, target.read_timeout, target.write_timeout) == (7, 8, 9)
    assert target.lock_wait_timeout == 2


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mariadb://root@h", "names no database"),
        ("mariadb://root@h/", "names no database"),
        ("mariadb://root@h/db?schema=x", "unknown MariaDB URL option"),
        ("mariadb://root@h/db?pool_size=0", "pool_size must be between"),
        ("mariadb://root@h/db?pool_size=many", "pool_size must be a whole number"),
        ("mariadb://root@h/db?read_timeout=0", "read_timeout must be between"),
        ("mariadb://root@h/db?lock_wait_timeout=1.5", "lock_wait_timeout must be a whole"),
        ("mariadb://root@h:99999/db", "invalid port"),
    ],
)
def test_a_bad_url_is_a_config_error_that_says_why(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_url(url, Settings())


def test_mysql_and_old_mariadb_servers_are_refused() -> None:
    check_server_version("10.11.19-MariaDB-0+deb12u1")
    check_server_version("11.4.2-MariaDB")
    with pytest.raises(ConfigError, match=r"MySQL 8\.0\.36, not MariaDB"):
        check_server_version("8.0.36")
    with pytest.raises(ConfigError, match="too old"):
        check_server_version("10.5.23-MariaDB")


def test_migrations_split_at_the_delimiter_in_force() -> None:
    script = """-- a comment; with a semicolon
CREATE TABLE t (
    a INT -- not the end;
);

DELIMITER //
CREATE TRIGGER x AFTER INSERT ON t FOR EACH ROW
BEGIN
    SET @a = 1;
    SET @b = 2;
END
//
DELIMITER ;
SELECT 1;
"""
    assert split_statements(script) == [
        "CREATE TABLE t (\n    a INT -- not the end;\n)",
        "CREATE TRIGGER x AFTER INSERT ON t FOR EACH ROW\nBEGIN\n    SET @a = 1;\n"
        "    SET @b = 2;\nEND",
        "SELECT 1",
    ]
    with pytest.raises(ValueError, match="ends inside a statement"):
        split_statements("SELECT 1")
