"""Structured logs: a record per state change on `workclaim.events`, with its fields; payloads
only when opted in; JSON lines that parse; nothing formatted while the logger is off."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from workclaim import LeaseLost, Queue, Settings, logs
from workclaim.retry import Backoff

T0 = datetime(2030, 1, 1, tzinfo=UTC)
FIELDS = ("event", "item_id", "queue", "token", "worker", "outcome")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Records(logging.Handler):
    """Keeps every record it is handed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def fields(self) -> list[dict[str, Any]]:
        return [{name: getattr(r, name) for name in FIELDS} for r in self.records]


@pytest.fixture
def events() -> Iterator[Records]:
    """Every `workclaim.events` record, at DEBUG, for the length of the test."""
    handler = Records()
    old_level = logs.EVENTS.level
    logs.EVENTS.addHandler(handler)
    logs.EVENTS.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logs.EVENTS.removeHandler(handler)
        logs.EVENTS.setLevel(old_level)


def _json_lines(level: int = logging.DEBUG) -> tuple[io.StringIO, logging.Handler]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    handler.setLevel(level)
    return out, handler


@pytest.fixture
def json_out() -> Iterator[io.StringIO]:
    """`workclaim.events` as JSON lines, at DEBUG."""
    out, handler = _json_lines()
    old_level = logs.EVENTS.level
    logs.EVENTS.addHandler(handler)
    logs.EVENTS.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        logs.EVENTS.removeHandler(handler)
        logs.EVENTS.setLevel(old_level)


def _queue(tmp_path: Path, name: str = "w.db", **settings: Any) -> Queue:
    backoff = Backoff(base=10.0, factor=2.0, cap=1_000.0, jitter=0.0)
    return Queue(f"sqlite:///{tmp_path / name}", settings=Settings(backoff=backoff, **settings))


def test_every_state_change_is_a_record_with_its_fields(tmp_path: Path, events: Records) -> None:
    with _queue(tmp_path) as q:
        first = q.enqueue("jobs", {"n": 1}, now=at(0))
        [lease] = q.claim("jobs", worker="w-1", lease_seconds=30, now=at(1))
        beat = q.heartbeat(lease, now=at(2))
        q.complete(beat, now=at(3))
        with pytest.raises(LeaseLost):  # a stale lease is refused, and that is logged
            q.complete(replace(lease, token=lease.token + 1_000), now=at(4))
        second = q.enqueue("jobs", 2, max_attempts=1, now=at(4))
        third = q.enqueue("jobs", 3, delay=100, now=at(4))
        [held] = q.claim("jobs", worker="w-2", now=at(5))
        q.release(held, now=at(6))
        [held] = q.claim("jobs", worker="w-2", now=at(7))
        assert q.fail(held, "boom", now=at(8)).value == "dead"
        q.requeue(second, now=at(9))
        q.cancel(third, now=at(10))
        assert q.purge("jobs", older_than=0, now=at(20)) == 2

    rows = events.fields()
    by_event = [(r["event"], r["item_id"], r["outcome"]) for r in rows]
    assert by_event == [
        ("enqueue", first, "queued"),
        ("claim", first, "claimed"),
        ("heartbeat", first, "extended"),
        ("complete", first, "done"),
        ("complete", first, "lease_lost"),
        ("enqueue", second, "queued"),
        ("enqueue", third, "queued"),
        ("claim", second, "claimed"),
        ("release", second, "queued"),
        ("claim", second, "claimed"),
        ("fail", second, "dead"),
        ("requeue", second, "queued"),
        ("cancel", third, "cancelled"),
        ("purge", None, "deleted"),
    ]
    claim = rows[1]
    assert claim == {
        "event": "claim",
        "item_id": first,
        "queue": "jobs",
        "token": lease.token,
        "worker": "w-1",
        "outcome": "claimed",
    }
    assert rows[2]["token"] == rows[3]["token"] == lease.token
    fail = events.records[10]
    assert (fail.levelno, fail.error, fail.worker, fail.attempt) == (  # type: ignore[attr-defined]
        logging.INFO,
        "boom",
        "w-2",
        1,
    )
    assert events.records[-1].count == 2  # type: ignore[attr-defined]
    hot = {"enqueue", "claim", "heartbeat"}
    for record, row in zip(events.records, rows, strict=True):
        expected = (
            logging.DEBUG if row["event"] in hot or row["outcome"] == "done" else logging.INFO
        )
        assert record.levelno == expected, row


def test_complete_and_claim_logs_each_completion_and_claim(tmp_path: Path, events: Records) -> None:
    with _queue(tmp_path) as q:
        a, b, c = q.enqueue_many("jobs", [1, 2, 3], now=at(0))
        first, second = q.claim("jobs", worker="w-1", limit=2, lease_seconds=10, now=at(1))
        stale = replace(second, token=second.token + 1_000)
        events.records.clear()
        lost, leases = q.complete_and_claim([first, stale], "jobs", worker="w-1", now=at(3))
    assert lost == [stale]
    assert [(r["event"], r["item_id"], r["outcome"]) for r in events.fields()] == [
        ("complete_and_claim", a, "done"),
        ("complete_and_claim", b, "lease_lost"),
        ("complete_and_claim", c, "claimed"),
    ]
    assert [r.levelno for r in events.records] == [logging.DEBUG, logging.INFO, logging.DEBUG]
    assert events.fields()[2]["token"] == leases[0].token


def test_payloads_results_and_their_secrets_stay_out_unless_opted_in(
    tmp_path: Path, json_out: io.StringIO
) -> None:
    secret = {"card": "4111-PAYLOAD-SECRET"}
    with _queue(tmp_path) as q:
        q.enqueue("jobs", secret, now=at(0))
        [lease] = q.claim("jobs", worker="w", now=at(1))
        q.complete(lease, result={"answer": "RESULT-SECRET"}, now=at(2))
    text = json_out.getvalue()
    assert '"event": "complete"' in text
    assert "PAYLOAD-SECRET" not in text and "RESULT-SECRET" not in text

    json_out.seek(0)
    json_out.truncate()
    with _queue(tmp_path, "opted-in.db", log_payloads=True) as q:
        q.enqueue("more", secret, now=at(0))
        [lease] = q.claim("more", worker="w", now=at(1))
        q.complete(lease, result={"answer": "RESULT-SECRET"}, now=at(2))
    lines = [json.loads(line) for line in json_out.getvalue().splitlines()]
    assert json.loads(lines[0]["payload"]) == secret
    assert lines[1]["payload"] == secret
    assert json.loads(lines[2]["result"]) == {"answer": "RESULT-SECRET"}


def test_log_payloads_is_a_setting_with_an_environment_variable() -> None:
    assert Settings().log_payloads is False
    assert Settings.from_env({"WORKCLAIM_LOG_PAYLOADS": "1"}).log_payloads is True


def test_json_lines_parse_and_carry_the_fields(tmp_path: Path, json_out: io.StringIO) -> None:
    with _queue(tmp_path) as q:
        q.enqueue_many("jobs", [1, 2], now=at(0))
        for lease in q.claim("jobs", worker="w-json", limit=2, now=at(1)):
            q.fail(lease, "it broke\non two lines", retry=False, now=at(2))
    lines = json_out.getvalue().splitlines()
    assert len(lines) == 6
    for line in lines:
        record = json.loads(line)
        assert record["logger"] == "workclaim.events"
        assert set(FIELDS) <= record.keys()
        assert record["ts"].startswith("20") and record["level"] in {"debug", "info"}
    fails = [json.loads(line) for line in lines if '"event": "fail"' in line]
    assert [(f["worker"], f["outcome"], f["error"]) for f in fails] == [
        ("w-json", "dead", "it broke\non two lines")
    ] * 2


def test_a_disabled_logger_builds_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a log record was built while the logger is off")

    for name in ("event", "lease_event", "claimed"):
        monkeypatch.setattr(logs, name, refuse)
    monkeypatch.setattr(logs.EVENTS, "level", logging.WARNING)
    with _queue(tmp_path) as q:
        item = q.enqueue("jobs", 1, now=at(0))
        [lease] = q.claim("jobs", worker="w", now=at(1))
        q.release(q.heartbeat(lease, now=at(2)), now=at(3))
        [lease] = q.claim("jobs", worker="w", now=at(4))
        q.fail(lease, "x", now=at(5))
        q.cancel(item, now=at(6))
        q.purge("jobs", older_than=0, now=at(7))


def test_redaction_hides_bearer_tokens() -> None:
    token = "wc_" + "A1b2-C3d4_" * 4
    lines = [
        f"Authorization: Bearer {token}",
        f"authorization: bearer {token[3:]}",
        f'GET /dashboard?token={token}&x=1 HTTP/1.1" 200',
        f"the token {token} is not valid",
    ]
    for line in lines:
        cleaned = logs.redact(line)
        assert token not in cleaned and token[3:] not in cleaned, cleaned
    assert logs.redact('"GET /queues?limit=5 HTTP/1.1" 200') == '"GET /queues?limit=5 HTTP/1.1" 200'

    out, handler = _json_lines()
    handler.addFilter(logs.RedactFilter())
    logger = logging.getLogger("workclaim.test.redact")
    logger.addHandler(handler)
    try:
        logger.warning("sent %s", f"Bearer {token}")
        try:
            raise RuntimeError(f"failed with {token}")
        except RuntimeError:
            logger.exception("oops")
    finally:
        logger.removeHandler(handler)
    assert token not in out.getvalue()
    assert [json.loads(line)["level"] for line in out.getvalue().splitlines()] == [
        "warning",
        "error",
    ]


def test_cli_logging_setup_writes_json_lines_without_payloads(tmp_path: Path) -> None:
    env = {**os.environ, "WORKCLAIM_LOG_FORMAT": "json", "WORKCLAIM_LOG_LEVEL": "debug"}
    db = f"sqlite:///{tmp_path / 'w.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "workclaim", "enqueue", "jobs", '{"card": "4111-SECRET"}'],
        capture_output=True,
        text=True,
        env={**env, "WORKCLAIM_DB": db},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    [enqueued] = [r for r in records if r.get("event") == "enqueue"]
    assert (enqueued["queue"], enqueued["item_id"], enqueued["outcome"]) == ("jobs", 1, "queued")
    assert "4111-SECRET" not in result.stderr

    bad = subprocess.run(
        [sys.executable, "-m", "workclaim", "stats", "--db", db],
        capture_output=True,
        text=True,
        env={**os.environ, "WORKCLAIM_LOG_FORMAT": "yaml"},
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "WORKCLAIM_LOG_FORMAT" in bad.stderr
    assert "Traceback" not in bad.stderr
