"""PostgreSQL plans that do not depend on statistics (issue 18).

Every hot statement runs on a fresh schema that was NEVER analyzed, holding 100,000 items of
every status in several queues (some grouped, one under a policy), with generic plans forced
and auto_explain logging every plan, nested plpgsql statements included. No plan may walk a
big table sequentially: a worker that starts before the first ANALYZE keeps its generic plans
for the life of its session, so a plan that only works with statistics is a slowdown that
never ends where autovacuum is off.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.integration._pg import claim_params, connect
from tests.support.servers import postgres_url
from workclaim import Settings
from workclaim.backends.postgres.backend import PostgresBackend
from workclaim.backends.postgres.schema import SCHEMA_VERSION

ROWS = 100_000
BIG_TABLES = ("items", "history")

# 100,000 items: 60% done, 30% queued, 10% claimed (a tenth of those expired), in queues q0..q2
# and `flow` (50 groups, under a policy); every item keeps one history row.
POPULATE = """
INSERT INTO {s}.items
    (queue, payload, status, priority, run_at, attempts, max_attempts, token, worker,
     expires_at, lease_length, ended_token, ended_op, ended_status, result, history, grp,
     created_at, updated_at, finished_at)
SELECT CASE WHEN g % 4 = 3 THEN 'flow' ELSE 'q' || (g % 3) END,
       '{{"n": 1}}', s.st, g % 3, now() - interval '1 hour',
       CASE WHEN s.st = 'queued' THEN 0 ELSE 1 END, 3,
       CASE WHEN s.st = 'queued' THEN NULL ELSE g END,
       CASE WHEN s.st = 'queued' THEN NULL ELSE 'w-old' END,
       CASE WHEN s.st <> 'claimed' THEN NULL
            WHEN g % 100 = 99 THEN now() - interval '1 minute'
            ELSE now() + interval '1 hour' END,
       CASE WHEN s.st = 'queued' THEN NULL ELSE interval '5 minutes' END,
       CASE WHEN s.st = 'done' THEN g END, CASE WHEN s.st = 'done' THEN 'complete' END,
       CASE WHEN s.st = 'done' THEN 'done' END, NULL, true,
       CASE WHEN g % 4 = 3 THEN 'g' || (g % 50) END,
       now() - interval '2 hours', now() - interval '1 hour',
       CASE WHEN s.st = 'done' THEN now() - interval '1 hour' END
FROM generate_series(1, {rows}) AS g
CROSS JOIN LATERAL (SELECT CASE WHEN g % 10 < 6 THEN 'done' WHEN g % 10 < 9 THEN 'queued'
                                ELSE 'claimed' END AS st) AS s;
INSERT INTO {s}.history (item_id, kind, at, attempt, status)
SELECT id, 'claimed', created_at, 1, 'claimed' FROM {s}.items;
SELECT setval('{s}.token_seq', greatest({rows} * 2, (SELECT last_value FROM {s}.token_seq)));
"""

# The queue `flow` uses groups and a policy, so its claims go through claim_flow.
FLOW = """
INSERT INTO {s}.groups (queue, grp, served)
SELECT 'flow', '', 0 UNION ALL SELECT 'flow', 'g' || n, 0 FROM generate_series(0, 49) AS n;
INSERT INTO {s}.policies (queue, concurrency, group_concurrency) VALUES ('flow', 100000, 50);
"""

SCAN = re.compile(
    r"^( *)(?:->  )?(Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan)"
    r"(?: Backward)?(?: using (\w+))? on (\w+)"
)
# A partial index that holds only live leases: walking all of it is reading what is claimed
# (stats' claimed count, the flow claim's live leases), bounded by the leases, not the table.
SMALL_INDEXES = ("items_leases",)


def walks(plan: str) -> set[str]:
    """The big tables a plan reads whole: a Seq Scan of one, or an index scan of one with no
    Index Cond (a walk of the whole index; a Bitmap Heap Scan's condition is its index's)."""
    lines = plan.splitlines()
    found = set()
    for n, line in enumerate(lines):
        m = SCAN.match(line)
        if not m or m.group(4) not in BIG_TABLES:
            continue
        if m.group(2) == "Seq Scan":
            found.add(f"Seq Scan on {m.group(4)}")
            continue
        if m.group(2) == "Bitmap Heap Scan" or m.group(3) in SMALL_INDEXES:
            continue
        depth = len(m.group(1))
        details = []
        for rest in lines[n + 1 :]:
            if len(rest) - len(rest.lstrip()) <= depth or rest.lstrip().startswith("->"):
                break
            details.append(rest.strip())
        if not any(d.startswith("Index Cond:") for d in details):
            found.add(f"{m.group(2)} of all of {m.group(3)} on {m.group(4)}")
    return found


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return postgres_url(request, tmp_path)


@pytest.fixture
def never_analyzed(url: str) -> Iterator[PostgresBackend]:
    """The backend on a migrated schema that was never analyzed, with the queue `flow`."""
    backend = PostgresBackend(url, Settings(auto_migrate=False))
    try:
        backend.migrate_to(SCHEMA_VERSION, analyze=False)
        with connect(url) as conn:
            conn.execute(sql.SQL(FLOW).format(s=sql.Identifier(backend.schema)))
        yield backend
    finally:
        backend.close()


def populate(url: str, schema: str, rows: int) -> None:
    """`rows` more items (see POPULATE), committed, from a connection of its own."""
    with connect(url) as conn:
        conn.execute(sql.SQL(POPULATE).format(s=sql.Identifier(schema), rows=rows))


class Plans:
    """A connection that logs the plan of every statement it runs (nested ones too) and keeps,
    per statement run, the big tables some plan walked sequentially."""

    def __init__(self, conn: psycopg.Connection[Any], backend: PostgresBackend) -> None:
        self.conn = conn
        self.q = backend._q
        self.channel = backend.channel
        self.logged: list[str] = []
        conn.add_notice_handler(lambda diag: self.logged.append(diag.message_primary or ""))
        for setting in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_nested_statements = on",
            "SET client_min_messages = log",
            "SET plan_cache_mode = force_generic_plan",
        ):
            conn.execute(setting)
        self.seq_scans: dict[str, set[str]] = {}
        self.stage = ""

    def run(self, label: str, name: str, **params: Any) -> list[tuple[Any, ...]]:
        """Run query `name` of queries.sql, prepared (so a generic plan), and note its plans."""
        self.logged.clear()
        cur = self.conn.execute(self.q[name], params, prepare=True)
        rows = cur.fetchall() if cur.description else []
        plans = [m for m in self.logged if "Query Text:" in m]
        assert plans, f"{label}: auto_explain logged no plan (is the notice handler working?)"
        for plan in plans:
            if found := walks(plan):
                self.seq_scans.setdefault(f"{label} ({self.stage})", set()).update(found)
        return rows


def fence(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"id": row[0], "token": row[3], "worker": "w-test", "now": None}


def scenario(p: Plans, round_: int) -> None:
    """Every hot statement once (the claims first, so the others have leases to work on)."""
    channel = p.channel
    # Claims: each first reaps the expired leases (q0's and any queue's), in the same call.
    leases = p.run("claim (with reap)", "claim", **claim_params(["q0"], 10))
    assert len(leases) == 10
    assert len(p.run("claim, two queues", "claim", **claim_params(["q1", "q2"], 10))) == 10
    flow = p.run("flow-controlled claim", "claim", **claim_params(["flow"], 10))
    assert len(flow) == 10

    # The fused turn: completions and a new claim, then the same completions again (the
    # repeat check: nothing changes, the earlier completions count as done).
    def turn(done: list[tuple[Any, ...]]) -> dict[str, Any]:
        return {
            "ids": [r[0] for r in done],
            "tokens": [r[3] for r in done],
            "workers": ["w-test"] * len(done),
            "results": ['{"ok": true}'] * len(done),
            "channel": channel,
        }

    out = p.run(
        "complete_and_claim", "complete_and_claim", **turn(leases[:5]), **claim_params(["q0"], 5)
    )
    assert [r[1] is None for r in out].count(True) == 5
    again = p.run(
        "complete_and_claim, repeat check",
        "complete_and_claim",
        **turn(leases[:5]),
        **claim_params(["q0"], 0),
    )
    assert sorted(r[0] for r in again) == sorted(r[0] for r in leases[:5])
    p.run(
        "complete_and_claim, flow",
        "complete_and_claim",
        **turn(flow[:3]),
        **claim_params(["flow"], 3),
    )

    # One lease each: heartbeat, complete, a repeated complete (and its lease_end look-up),
    # release, fail with a retry, fail to dead.
    a, b, c, d = leases[5:9]
    assert p.run("heartbeat", "heartbeat", **fence(a), extend=None)
    assert p.run("complete", "complete", **fence(a), result=None, channel=channel)
    assert not p.run("complete, repeated", "complete", **fence(a), result=None, channel=channel)
    p.run("lease_end", "lease_end", id=a[0])
    assert p.run("release", "release", **fence(b), delay=timedelta(0), channel=channel)
    retry = timedelta(seconds=1)
    assert p.run("fail, retry", "fail", **fence(c), error="x", retry=retry, channel=channel)
    assert p.run("fail, dead", "fail", **fence(d), error="x", retry=None, channel=channel)

    # Enqueue: a batch, and an item with a dedupe key (then its holder looked up).
    enqueue = {"queue": "q0", "now": None, "channel": channel}
    batch = {
        "payloads": ["{}"] * 3,
        "priorities": [0] * 3,
        "run_ats": [None] * 3,
        "delays": [timedelta(0)] * 3,
        "max_attempts": [3] * 3,
        "histories": [True] * 3,
        "groups": [None] * 3,
    }
    p.run("enqueue_many", "insert_many", **enqueue, **batch)
    key = f"k-{round_}"
    one = {
        "payload": "{}",
        "priority": 0,
        "run_at": None,
        "delay": timedelta(0),
        "max_attempts": 3,
        "history": True,
        "group": None,
        "dedupe_key": key,
    }
    assert p.run("enqueue with dedupe key", "insert_dedupe", **enqueue, **one)
    assert not p.run("enqueue with dedupe key, held", "insert_dedupe", **enqueue, **one)
    assert p.run("find_dedupe", "find_dedupe", queue="q0", dedupe_key=key)

    # What the worker runtime and the dashboard poll.
    p.run("next_due", "next_due", queues=["q0", "flow"], now=None)
    p.run("stats", "stats", queue="q0", now=None)
    # The retention pass, in batches.
    purge = {"queue": "q1", "older_than": timedelta(minutes=30), "limit": 100, "now": None}
    assert p.run("purge", "purge", **purge)[0][0] > 0


def test_no_hot_statement_walks_a_big_table_before_the_first_analyze(
    url: str, never_analyzed: PostgresBackend
) -> None:
    """The case the issue saw: a worker's session plans every statement while the new schema is
    nearly empty (its generic plans are cached for the session), the table grows to 100,000
    rows, never analyzed, and the same session goes on. The plans are checked at both stages:
    the ones made on the nearly empty table are those a session keeps (it makes them again
    only after an invalidation, which another session's DDL can cause at any time, so the
    second stage alone could see fresh plans and miss them), and the second stage checks the
    plans of a large, never-analyzed table."""
    schema = never_analyzed.schema
    with connect(url) as conn:
        conn.autocommit = True
        p = Plans(conn, never_analyzed)
        populate(url, schema, 200)
        p.stage = "nearly empty"
        scenario(p, 1)
        populate(url, schema, ROWS)
        never = conn.execute(
            """SELECT c.relname, s.last_analyze, s.last_autoanalyze, c.reltuples
               FROM pg_class AS c JOIN pg_stat_user_tables AS s ON s.relid = c.oid
               WHERE s.schemaname = %s AND c.relname IN ('items', 'history')""",
            (schema,),
        ).fetchall()
        assert len(never) == 2
        assert all(ana is None and auto is None and n <= 0 for _, ana, auto, n in never), never
        p.stage = f"{ROWS:,} rows"
        scenario(p, 2)

    assert p.seq_scans == {}, f"big tables read whole, by statement: {p.seq_scans}"


ITEM_READ = re.compile(
    r"(Seq Scan on items\b|(?:Index|Index Only) Scan(?: Backward)? using (\w+) on items\b"
    r"|Bitmap Index Scan on (items\w*))"
)


def item_reads(plan: str) -> set[str]:
    """How a plan reads items: "Seq Scan", or the name of each index it walks."""
    return {
        "Seq Scan" if m.group(1).startswith("Seq") else (m.group(2) or m.group(3))
        for m in ITEM_READ.finditer(plan)
    }


@pytest.mark.parametrize("analyzed", [False, True], ids=["never-analyzed", "analyzed"])
def test_stats_reads_no_queued_item(
    url: str, never_analyzed: PostgresBackend, analyzed: bool
) -> None:
    """stats() with thousands of queued items in its queue (of 100,000 rows) reads items only
    through items_leases (the leases in flight): the queued count comes from the counters
    (migration 0009), so its cost does not grow with the queue's depth. Checked with statistics
    and without, and so is the fold that stats runs first."""
    schema = never_analyzed.schema
    populate(url, schema, ROWS)
    with connect(url) as conn:
        conn.autocommit = True
        if analyzed:
            conn.execute(never_analyzed._q["analyze"])
        p = Plans(conn, never_analyzed)
        p.run("fold_queued", "fold_queued", queue="q0")
        fold_plans = [m for m in p.logged if "Query Text:" in m]
        rows = p.run("stats", "stats", queue="q0", now=None)
        plans = [m for m in p.logged if "Query Text:" in m]
    assert set().union(*map(item_reads, fold_plans)) == set(), fold_plans
    assert set().union(*map(item_reads, plans)) == {"items_leases"}, plans
    queued = {status: n for status, n, _ in rows}["queued"]
    expected = sum(1 for g in range(1, ROWS + 1) if g % 4 != 3 and g % 3 == 0 and 6 <= g % 10 < 9)
    assert queued == expected > 5_000  # POPULATE's queued items of q0


# A big table of finished items with a few leases, queued and dead items after them: where a
# partial index (items_leases, items_claimable, items_ended) can serve a statement, reading it
# is far cheaper than reading the table.
BY_ID = """
INSERT INTO {s}.items
    (queue, payload, status, priority, run_at, attempts, max_attempts, token, worker,
     expires_at, lease_length, history, created_at, updated_at, finished_at)
SELECT 'q0', '{{}}', s.st, 0, now(), 1, 3, g, 'w-old',
       CASE WHEN s.st = 'claimed' THEN now() + interval '1 hour' END,
       interval '5 minutes', true, now(), now(),
       CASE WHEN s.st IN ('done', 'dead') THEN now() END
FROM generate_series(1, 100048) AS g
CROSS JOIN LATERAL (SELECT CASE WHEN g <= 100000 THEN 'done' WHEN g <= 100016 THEN 'claimed'
                                WHEN g <= 100040 THEN 'queued' ELSE 'dead' END AS st) AS s;
"""


def test_lookups_by_id_can_only_use_the_primary_key(
    url: str, never_analyzed: PostgresBackend
) -> None:
    """Every statement that finds an item by id (the fenced heartbeat, complete, release and
    fail, cancel, requeue, the fused turn's completions) can reach it through no index but the
    primary key. With a plain `status = 'claimed'` the planner may read the item through
    items_leases instead (its predicate proven, the id a filter) whenever statistics price that
    index low, and a held snapshot fills it with an entry per lease since: in issue 18's
    autovacuum-on run, after an autoanalyze, one completion read ~1,000 pages and the pickup p95
    rose tenfold. Which index statistics favour is a coin toss of ANALYZE's sample, so the test
    takes the choice away instead: with the primary key dropped (in a transaction, rolled back),
    each statement must read the table itself, not a partial index."""
    schema = never_analyzed.schema
    with connect(url) as conn:
        conn.execute(sql.SQL(BY_ID).format(s=sql.Identifier(schema)))
        conn.commit()
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT items_pkey CASCADE").format(
                sql.Identifier(schema, "items")
            )
        )
        p = Plans(conn, never_analyzed)
        channel = p.channel

        def fenced(n: int) -> dict[str, Any]:
            return {"id": n, "token": n, "worker": "w-old", "now": None}

        reads: dict[str, set[str]] = {}

        def check(label: str, name: str, **params: Any) -> list[tuple[Any, ...]]:
            rows = p.run(label, name, **params)
            plans = [m for m in p.logged if "Query Text:" in m]
            if name == "complete_and_claim":  # its completions; the claim reads other indexes
                plans = [m for m in plans if "ended_op = 'complete'" in m]
                assert plans, "the fused turn's completion statement was not logged"
            reads[label] = set().union(*map(item_reads, plans))
            return rows

        retry = timedelta(seconds=1)
        assert check("heartbeat", "heartbeat", **fenced(100_001), extend=None)
        assert check("complete", "complete", **fenced(100_002), result=None, channel=channel)
        assert check("release", "release", **fenced(100_003), delay=timedelta(0), channel=channel)
        assert check("fail", "fail", **fenced(100_004), error="x", retry=retry, channel=channel)
        assert check("cancel", "cancel", id=100_033, now=None)
        assert check("requeue", "requeue", id=100_041, max_attempts=None, now=None, channel=channel)
        turn = {
            "ids": [100_005, 100_006],
            "tokens": [100_005, 100_006],
            "workers": ["w-old"] * 2,
            "results": ["null"] * 2,
            "channel": channel,
        }
        check("complete_and_claim", "complete_and_claim", **turn, **claim_params(["q0"], 0))
        conn.rollback()

    assert reads == {label: {"Seq Scan"} for label in reads}, reads
