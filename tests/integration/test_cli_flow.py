"""`workclaim queue policy|pause|resume`, `enqueue --group` and the policy in `stats`, run as a
user would run them, against a SQLite store and against a `workclaim serve` process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_cli import workclaim
from tests.integration.test_logs_http import _token
from tests.support.http_process import serve_process
from workclaim import Queue, QueuePolicy, Rate


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'flow.db'}"
    assert workclaim("migrate", "--db", url).returncode == 0
    return url


def run_json(*args: str) -> Any:
    result = workclaim(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_policy_prints_sets_and_keeps_what_is_not_given(db: str) -> None:
    shown = workclaim("queue", "policy", "emails", "--db", db)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == (
        "emails: active; concurrency none, group_concurrency none, rate none, group_rate none"
    )
    set_ = run_json(
        "queue", "policy", "emails", "--concurrency", "5", "--rate", "100/60", "--db", db
    )
    assert set_ == {
        "queue": "emails",
        "concurrency": 5,
        "group_concurrency": None,
        "rate": {"count": 100, "per_seconds": 60.0},
        "group_rate": None,
        "paused": False,
    }
    # One option changes that limit only; `none` lifts one.
    more = ["--group-concurrency", "1", "--group-rate", "2/0.5", "--concurrency", "none"]
    run_json("queue", "policy", "emails", *more, "--db", db)
    with Queue(db) as q:
        assert q.policy("emails") == QueuePolicy("emails", None, 1, Rate(100, 60.0), Rate(2, 0.5))
    text = workclaim("queue", "policy", "emails", "--db", db).stdout
    assert "group_concurrency 1" in text and "rate 100/60s" in text and "group_rate 2/0.5s" in text


def test_pause_resume_and_clear(db: str) -> None:
    run_json("queue", "policy", "jobs", "--concurrency", "3", "--db", db)
    assert run_json("queue", "pause", "jobs", "--db", db)["paused"] is True
    assert workclaim("queue", "policy", "jobs", "--db", db).stdout.startswith("jobs: paused;")
    with Queue(db) as q:
        q.enqueue("jobs", 1)
        assert q.claim("jobs", worker="w") == []  # the pause reached the store
    cleared = run_json("queue", "policy", "jobs", "--clear", "--db", db)
    assert cleared["concurrency"] is None and cleared["paused"] is True  # --clear keeps the pause
    again = run_json("queue", "policy", "jobs", "--clear", "--rate", "5/1", "--db", db)
    assert again["rate"] == {"count": 5, "per_seconds": 1.0}
    resumed = workclaim("queue", "resume", "jobs", "--db", db)
    assert resumed.returncode == 0 and resumed.stdout.startswith("jobs: active;")
    with Queue(db) as q:
        assert len(q.claim("jobs", worker="w")) == 1


BAD_LIMITS = [
    (["--rate", "100"], "COUNT/SECONDS"),
    (["--rate", "x/60"], "COUNT/SECONDS"),
    (["--group-rate", "10/0"], "group_rate window"),
    (["--rate", "10/86401"], "rate window"),
    (["--concurrency", "0"], "concurrency"),
    (["--group-concurrency", "many"], "--group-concurrency must be a whole number"),
]


def test_bad_limits_are_one_line_errors_that_change_nothing(db: str) -> None:
    run_json("queue", "policy", "emails", "--concurrency", "4", "--db", db)
    for args, message in BAD_LIMITS:
        result = workclaim("queue", "policy", "emails", *args, "--db", db)
        assert result.returncode == 1, (args, result.stdout)
        assert result.stderr.startswith("error: ") and message in result.stderr, args
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert run_json("queue", "policy", "emails", "--db", db)["concurrency"] == 4


def test_a_bad_queue_name_is_an_error(db: str) -> None:
    for command in ("policy", "pause", "resume"):
        result = workclaim("queue", command, "bad name", "--db", db)
        assert result.returncode == 1 and "queue name" in result.stderr


def test_enqueue_with_a_group_and_stats_with_the_policy(db: str) -> None:
    ids = run_json("enqueue", "emails", '{"n": 1}', "--group", "tenant-42", "--db", db)["ids"]
    many = workclaim(
        "enqueue", "emails", "-", "--group", "t2", "--db", db, stdin='{"n": 2}\n{"n": 3}\n'
    )
    assert many.returncode == 0, many.stderr
    with Queue(db) as q:
        assert q.get(ids[0]).group == "tenant-42"
        assert [x.group for x in q.items("emails")] == ["tenant-42", "t2", "t2"]
    bad = workclaim("enqueue", "emails", "1", "--group", "no spaces", "--db", db)
    assert bad.returncode == 1 and "group" in bad.stderr
    workclaim("queue", "pause", "emails", "--db", db)
    workclaim("queue", "policy", "emails", "--group-concurrency", "1", "--db", db)
    stats = run_json("stats", "emails", "other", "--db", db)
    assert stats["emails"]["queued"] == 3
    assert stats["emails"]["policy"]["paused"] is True
    assert stats["emails"]["policy"]["group_concurrency"] == 1
    assert "policy" not in stats["other"]  # no limits, not paused: the counts only, as before
    table = workclaim("stats", "--db", db).stdout
    assert "emails: paused; concurrency none, group_concurrency 1" in table
    assert "other:" not in table  # a queue without limits gets no policy line


def test_the_queue_commands_and_enqueue_over_a_server(db: str, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    admin = _token(tokens, "admin")
    producer = _token(tokens, "enqueue")
    with serve_process(db, "--tokens", str(tokens)) as base:
        on = ["--server", base, "--token", admin]
        ids = run_json(
            "enqueue", "jobs", "1", "--group", "g1", "--server", base, "--token", producer
        )
        policy = run_json("queue", "policy", "jobs", "--rate", "3/2", *on)
        assert policy["rate"] == {"count": 3, "per_seconds": 2.0}
        assert run_json("queue", "pause", "jobs", *on)["paused"] is True
        assert run_json("queue", "policy", "jobs", *on)["paused"] is True
        over_http = run_json("stats", "jobs", *on)
        refused = workclaim("queue", "pause", "jobs", "--server", base, "--token", producer)
        assert refused.returncode == 1 and "admin" in refused.stderr
        assert run_json("queue", "resume", "jobs", *on)["paused"] is False
    assert over_http["jobs"]["policy"]["paused"] is True
    with Queue(db) as q:
        assert q.get(ids["ids"][0]).group == "g1"
        assert q.policy("jobs") == QueuePolicy("jobs", rate=Rate(3, 2.0))
