-- Version 14: a claim or heartbeat appends a lease mark only when no mark already covers it
-- (issue 18; docs/postgres.md, "Under sustained load"; model/floor.pml, "covered").
--
-- Version 12 made every statement that leaves items `claimed` append the smallest expiry it
-- wrote to floor_marks, so that a raise whose snapshot missed the writer cannot lift the lease
-- floor past it: one more row and index entry per claim, and 10 % more WAL per claimed and
-- completed item (one connection, single-item fused turns: 1,593 bytes against version 11's
-- 1,452; with this version 1,455; docs/postgres.md).
--
-- A mark is only needed while nothing else keeps the floor at or below the new expiry. Most
-- claims write the latest expiry there is, and the partition of the current period already
-- holds a committed mark at or below it (the raise's own, or an earlier claim's of this
-- period). So the writer inserts into that partition only where no lease mark at or below its
-- smallest expiry is there (`INSERT ... WHERE NOT EXISTS`, one statement). The insert takes its
-- lock on the partition (ROW EXCLUSIVE) before it reads and keeps it until the transaction
-- ends, and the raise truncates a partition only after locking it EXCLUSIVE without waiting,
-- which fails while that lock is held: so a covering mark the writer saw stays, and with it a
-- lease floor at or below the writer's expiry, until the writer has committed; a raise that
-- truncates the partition afterwards walks under a snapshot that sees the writer's leases.
-- (Whatever the writer's snapshot misses, a mark committed later or a partition truncated
-- before the lock was granted, makes it append a mark: the safe side.) What makes the check
-- safe is that lock, held to the end of the writer's transaction: a writer that skipped its mark
-- on a covering mark it had not locked (say, one remembered from an earlier transaction) could
-- see the raise truncate it, walk without seeing the writer and lift the lease floor past the
-- writer's leases, whose expiry the reap then never finds (model/floor.pml's mutant
-- COVERED_UNLOCKED). Any read of the partition would hold a lock too (ACCESS SHARE), but that
-- one only makes the raise's TRUNCATE wait out its lock timeout, with the claims queued behind
-- it; ROW EXCLUSIVE makes it give up at once, at its NOWAIT lock.
--
-- Queue marks (statements that leave items queued) are appended as before.

CREATE OR REPLACE FUNCTION {schema}.count_changed() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    r record;
    v_shard integer := pg_backend_pid() % 64;
    v_expiry timestamptz;
    v_queued boolean;
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
        -- One pass over the new rows: whether any is queued, and the smallest expiry written.
        SELECT bool_or(n.status = 'queued'), min(n.expires_at) FILTER (WHERE n.status = 'claimed')
        INTO v_queued, v_expiry FROM new_rows AS n;
        IF v_queued THEN
            INSERT INTO {schema}.floor_marks (gen, queue, priority, run_at, id)
            SELECT DISTINCT ON (n.queue) {schema}.floor_period() % 2, n.queue, n.priority,
                   n.run_at, n.id
            FROM new_rows AS n WHERE n.status = 'queued'
            ORDER BY n.queue, n.priority, n.run_at, n.id;
        END IF;
        -- The lease mark, unless one is there already (see above). One statement: the insert
        -- holds its lock on the partition from before it reads until this transaction ends.
        IF v_expiry IS NOT NULL THEN
            IF {schema}.floor_period() % 2 = 0 THEN
                INSERT INTO {schema}.floor_marks_0 (gen, expires_at)
                SELECT 0, v_expiry
                WHERE NOT EXISTS (SELECT FROM {schema}.floor_marks_0 AS m
                                  WHERE m.queue IS NULL AND m.expires_at <= v_expiry);
            ELSE
                INSERT INTO {schema}.floor_marks_1 (gen, expires_at)
                SELECT 1, v_expiry
                WHERE NOT EXISTS (SELECT FROM {schema}.floor_marks_1 AS m
                                  WHERE m.queue IS NULL AND m.expires_at <= v_expiry);
            END IF;
        END IF;
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
