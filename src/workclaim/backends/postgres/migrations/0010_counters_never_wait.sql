-- workclaim PostgreSQL schema, version 10: the queued counters never make a writer wait.
--
-- Version 9 counted queued items in shard rows of queued_counts (queue, pg_backend_pid() % 64),
-- updated by the statement triggers on items at the end of every statement that moves items
-- into or out of `queued`. Two sessions of one shard (pids equal modulo 64) update the same
-- row, and the lock of the first is held to its commit, so the second waited, in the middle of
-- a transaction that went on to take other locks. That closed cycles:
-- - a managed claim (claim_flow) reaped first, its trigger locking the counter row of a queue
--   of its shard, then waited for that queue's policy row, held by another claim of the same
--   shard which then claimed items of the queue and waited for the same counter row (the flow
--   race met it in CI);
-- - two sessions of one shard whose transactions touch the counters of two queues in opposite
--   orders (a reap of A then a claim of B against a reap of B then a claim of A; the priority
--   rounds of claim_flow; a fold against either);
-- - a counter row against a group row (claim_flow locks its served groups after each round's
--   claim, whose trigger took counter rows).
-- PostgreSQL broke each after deadlock_timeout (1 s) and the victim's call ran again.
--
-- Now a counter update never waits, so the counters take part in no cycle whatever order the
-- rest of a transaction takes its locks in. Before it touches a shard row, a writer takes a
-- transaction-level advisory lock on (queue, shard) with pg_try_advisory_xact_lock, which
-- never waits: when it gets it, it is the only writer of that row until it commits (every
-- writer of queued_counts, the trigger and fold_queued, takes it first, and the row lock of the
-- previous writer is gone before its advisory lock is released at its commit), so the update
-- or insert of the row waits for nobody. When another session of the shard holds it, the
-- change is appended to queued_added instead, as an insert is counted (version 9): an insert
-- of a fresh identity locks nothing anyone waits for. stats sums both tables, so the counts
-- stay exact at every snapshot; the appended rows are folded as before. The lock costs no WAL
-- (advisory locks live in the lock table only), unlike a row lock taken with SKIP LOCKED.
--
-- The advisory key: (hashtext of the schema-qualified queue name, shard), the two-integer form,
-- which does not meet the single-bigint keys (the migration lock). A hash collision of two
-- queues only sends one of them to queued_added for a moment; an application's own two-integer
-- advisory lock of the same key at most waits for one short workclaim transaction. Each lock
-- takes a slot of the server's shared lock table until the commit: a statement of workclaim's
-- takes one per queue whose count it changes (a reap touches at most 2 x its reap limit items),
-- fold_queued at most 256; an UPDATE of your own across thousands of queues takes thousands.

-- Whether this session may write its shard row of `p_queue` now (true: for the rest of its
-- transaction); never waits.
CREATE FUNCTION {schema}.count_lock(p_queue text) RETURNS boolean
LANGUAGE sql VOLATILE
AS $$
    SELECT pg_try_advisory_xact_lock(hashtext('{schema}.' || p_queue), pg_backend_pid() % 64)
$$;

-- The trigger function of version 9, each shard row written only under its lock, the change
-- appended to queued_added when another session of the shard holds it. The UPDATE first (a HOT
-- update of an existing row), the insert only for a new shard row, as before.
CREATE OR REPLACE FUNCTION {schema}.count_changed() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
DECLARE
    r record;
    v_shard integer := pg_backend_pid() % 64;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        FOR r IN
            SELECT d.queue, sum(d.n) AS n FROM (
                SELECT queue, -1 AS n FROM old_rows WHERE status = 'queued'
                UNION ALL
                SELECT queue, 1 FROM new_rows WHERE status = 'queued'
            ) AS d
            GROUP BY d.queue HAVING sum(d.n) <> 0 ORDER BY d.queue
        LOOP
            IF {schema}.count_lock(r.queue) THEN
                UPDATE {schema}.queued_counts SET n = n + r.n
                WHERE queue = r.queue AND shard = v_shard;
                IF NOT FOUND THEN
                    INSERT INTO {schema}.queued_counts AS c (queue, shard, n)
                    VALUES (r.queue, v_shard, r.n)
                    ON CONFLICT (queue, shard) DO UPDATE SET n = c.n + excluded.n;
                END IF;
            ELSE
                INSERT INTO {schema}.queued_added (queue, n) VALUES (r.queue, r.n);
            END IF;
        END LOOP;
    ELSE
        FOR r IN
            SELECT queue, -count(*) AS n FROM old_rows WHERE status = 'queued'
            GROUP BY queue ORDER BY queue
        LOOP
            IF {schema}.count_lock(r.queue) THEN
                INSERT INTO {schema}.queued_counts AS c (queue, shard, n)
                VALUES (r.queue, v_shard, r.n)
                ON CONFLICT (queue, shard) DO UPDATE SET n = c.n + excluded.n;
            ELSE
                INSERT INTO {schema}.queued_added (queue, n) VALUES (r.queue, r.n);
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;
