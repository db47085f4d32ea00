"""The `workclaim` command, run as a user would run it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest


def workclaim(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workclaim", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version() -> None:
    result = workclaim("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("workclaim ")


@pytest.mark.parametrize("backend_name", ["sqlite", "mariadb"])
def test_enqueue_stats_and_migrate(store_url: str) -> None:
    db = store_url
    assert workclaim("migrate", "--db", db).returncode == 0
    one = workclaim("enqueue", "emails", '{"to": "a@example.org"}', "--db", db, "--json")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout) == {"ids": [1]}
    many = workclaim("enqueue", "emails", "-", "--db", db, "--json", stdin='{"n": 1}\n{"n": 2}\n')
    assert json.loads(many.stdout) == {"ids": [2, 3]}
    stats = workclaim("stats", "emails", "other", "--db", db, "--json")
    assert json.loads(stats.stdout)["emails"]["queued"] == 3
    assert json.loads(stats.stdout)["other"]["queued"] == 0


def test_bad_input_gives_a_clear_error_and_exit_code(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'w.db'}"
    bad_json = workclaim("enqueue", "emails", "{nope", "--db", db)
    assert bad_json.returncode == 1 and "not valid JSON" in bad_json.stderr
    bad_name = workclaim("enqueue", "bad name", "1", "--db", db)
    assert bad_name.returncode == 1 and "queue name" in bad_name.stderr
    bad_url = workclaim("stats", "q", "--db", "mongodb://x")
    assert bad_url.returncode == 1 and "unknown URL scheme" in bad_url.stderr
    assert "mariadb://" in bad_url.stderr  # the schemes it does speak, all four backends
    assert "Traceback" not in bad_url.stderr
    no_db = workclaim("stats", "q", "--db", "mysql://x")  # a scheme it speaks, half a URL
    assert no_db.returncode == 1 and "names no database" in no_db.stderr


# Runs `workclaim ARGS...` with the modules named in argv[1] (comma-separated) made unimportable,
# as if they were missing (a third-party package) or broken (one of workclaim's own).
_WITHOUT = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from workclaim.cli import main
sys.argv = ["workclaim", *sys.argv[2:]]
main()
"""


def workclaim_without(modules: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT, modules, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("broken", "command"),
    [
        ("workclaim.server.app", "serve"),
        ("workclaim.bench.runner", "bench"),
        ("workclaim.worker_cli", "worker"),
    ],
)
def test_an_import_error_inside_workclaim_is_not_hidden(broken: str, command: str) -> None:
    result = workclaim_without(broken, "--help")
    assert result.returncode != 0, f"`{command}` was silently left out of the CLI"
    assert "ModuleNotFoundError" in result.stderr and broken in result.stderr


def test_a_missing_extra_keeps_its_commands_and_says_what_to_install() -> None:
    listed = workclaim_without("fastapi", "--help")
    assert listed.returncode == 0, listed.stderr
    for command in ("serve", "token"):
        assert re.search(
            rf"\b{command}\s+Not installed: pip install 'workclaim\[server\]'", listed.stdout
        )
    for args in (["serve", "--db", "sqlite:///x.db", "--port", "1"], ["token", "create", "a"]):
        result = workclaim_without("fastapi", *args)
        assert result.returncode == 1, result.stderr
        assert "fastapi is not installed" in result.stderr
        assert "pip install 'workclaim[server]'" in result.stderr
        assert "Traceback" not in result.stderr
