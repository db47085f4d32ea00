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

-- The claim of version 12 (see there), with fewer statements before the claim itself: one
-- statement after the lock reads the floors and asks whether any lease has expired and whether
-- the queues use flow control (three statements in version 12; each costs a snapshot and an
-- executor start, a measurable share of a single-item claim).
CREATE OR REPLACE FUNCTION {schema}.claim(
    p_queues     text[],
    p_worker     text,
    p_lease      interval,
    p_limit      integer,
    p_now        timestamptz,
    p_reap_limit integer
)
RETURNS TABLE (
    id bigint, queue text, payload json, token bigint, attempts integer,
    max_attempts integer, expires_at timestamptz, grp text, enqueued_at timestamptz
)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := coalesce(p_now, clock_timestamp());
    v_lease_from timestamptz;
    v_fp integer;
    v_fr timestamptz;
    v_fi bigint;
    v_expired boolean;
    v_flow boolean;
BEGIN
    -- The floors (see above): floor_marks locked first, so a raise's TRUNCATE either waits
    -- for this claim or committed before the next statement's snapshot. That statement reads
    -- the floors and answers the two questions version 12 asked in statements of their own
    -- (whether any lease has expired, from the lease floor; whether a queue uses flow control).
    LOCK TABLE {schema}.floor_marks IN ACCESS SHARE MODE;
    SELECT l.expires_at, f.priority, f.run_at, f.id,
           EXISTS (SELECT FROM {schema}.items AS e
                   WHERE e.status = 'claimed' AND e.expires_at <= v_now
                     AND e.expires_at >= l.expires_at),
           EXISTS (SELECT FROM {schema}.groups AS g WHERE g.queue = ANY(p_queues))
    INTO v_lease_from, v_fp, v_fr, v_fi, v_expired, v_flow
    FROM {schema}.lease_floor() AS l, {schema}.claim_floor(p_queues) AS f;
    -- Step 1, the bounded reap, as in version 5 (see there), from the lease floor.
    IF v_expired THEN
        WITH expired AS MATERIALIZED (
            SELECT array_agg(x.id) AS ids FROM (
                SELECT here.id FROM (
                    SELECT e.id FROM {schema}.items AS e
                    WHERE e.status = 'claimed' AND e.expires_at <= v_now
                      AND e.expires_at >= v_lease_from
                      AND e.queue = ANY(p_queues)
                    ORDER BY e.expires_at
                    LIMIT p_reap_limit
                    FOR UPDATE SKIP LOCKED
                ) AS here
                UNION  -- a lease in both lists is reaped once
                SELECT anywhere.id FROM (
                    SELECT e.id FROM {schema}.items AS e
                    WHERE e.status = 'claimed' AND e.expires_at <= v_now
                      AND e.expires_at >= v_lease_from
                    ORDER BY e.expires_at
                    LIMIT p_reap_limit
                    FOR UPDATE SKIP LOCKED
                ) AS anywhere
            ) AS x
        ),
        reaped AS (
            UPDATE {schema}.items AS i
            SET status      = CASE WHEN i.attempts < i.max_attempts THEN 'queued' ELSE 'dead' END,
                last_error  = 'lease expired (worker ' || coalesce(i.worker, '?') || ', token '
                              || i.token || ')',
                expires_at  = NULL,
                finished_at = CASE WHEN i.attempts < i.max_attempts THEN NULL ELSE v_now END,
                updated_at  = v_now
            WHERE i.id = ANY((SELECT expired.ids FROM expired)::bigint[])
            RETURNING i.id, i.queue, i.status, i.attempts, i.token, i.worker, i.last_error, i.history
        ),
        logged AS (
            INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker, error)
            SELECT r.id, 'expired', v_now, r.attempts, r.status, r.token, r.worker, r.last_error
            FROM reaped AS r WHERE r.history
        )
        INSERT INTO {schema}.finished_counts AS f (queue, status, shard, n)
        SELECT r.queue, 'dead', pg_backend_pid() % 64, count(*)
        FROM reaped AS r WHERE r.status = 'dead'
        GROUP BY r.queue ORDER BY r.queue
        ON CONFLICT (queue, status, shard) DO UPDATE SET n = f.n + excluded.n;
        SELECT f.priority, f.run_at, f.id INTO v_fp, v_fr, v_fi
        FROM {schema}.claim_floor(p_queues) AS f;
    END IF;

    -- Queues that use groups or flow control: the fair order within their policies.
    IF v_flow THEN
        -- claim_flow's rows with each item's enqueue time (one primary-key probe per item: its
        -- row is in the buffer cache, claim_flow has just updated it).
        RETURN QUERY
        SELECT f.*, (SELECT e.created_at FROM {schema}.items AS e WHERE e.id = f.id)
        FROM {schema}.claim_flow(p_queues, p_worker, p_lease, p_limit, p_now) AS f;
        RETURN;
    END IF;

    -- Step 2, the claim (a fresh snapshot: it sees the items step 1 queued), with a `claimed`
    -- event per leased item that keeps history.
    -- It starts at the queues' floor (read again after a reap: the items it queued again, which
    -- may lie below the floor read first, are marked).
    IF cardinality(p_queues) = 1 THEN
        RETURN QUERY
        WITH picked AS MATERIALIZED (
            SELECT c.id FROM {schema}.items AS c
            WHERE c.queue = p_queues[1] AND c.status = 'queued' AND c.run_at <= v_now
              AND (c.priority, c.run_at, c.id)
                  >= (v_fp, v_fr, v_fi)
            ORDER BY c.priority, c.run_at, c.id
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        ),
        tokens AS MATERIALIZED (
            SELECT array_agg(picked.id) AS ids,
                   array_agg(nextval('{schema}.token_seq')) AS tokens
            FROM picked
        ),
        claimed AS (
            UPDATE {schema}.items AS i
            SET status = 'claimed', token = t.tokens[array_position(t.ids, i.id)],
                attempts = i.attempts + 1, worker = p_worker, expires_at = v_now + p_lease,
                lease_length = p_lease, updated_at = v_now
            FROM tokens AS t
            WHERE i.id = ANY((SELECT tokens.ids FROM tokens)::bigint[])
            RETURNING i.id, i.queue, i.payload, i.token, i.attempts, i.max_attempts,
                      i.expires_at, i.history, i.grp, i.created_at
        ),
        logged AS (
            INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker)
            SELECT c.id, 'claimed', v_now, c.attempts, 'claimed', c.token, p_worker
            FROM claimed AS c WHERE c.history
        )
        SELECT c.id, c.queue, c.payload, c.token, c.attempts, c.max_attempts, c.expires_at,
               c.grp, c.created_at
        FROM claimed AS c;
    ELSE
        RETURN QUERY
        WITH picked AS MATERIALIZED (
            SELECT c.id FROM {schema}.items AS c
            WHERE c.queue = ANY(p_queues) AND c.status = 'queued' AND c.run_at <= v_now
              AND (c.priority, c.run_at, c.id)
                  >= (v_fp, v_fr, v_fi)
            ORDER BY c.priority, c.run_at, c.id
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        ),
        tokens AS MATERIALIZED (
            SELECT array_agg(picked.id) AS ids,
                   array_agg(nextval('{schema}.token_seq')) AS tokens
            FROM picked
        ),
        claimed AS (
            UPDATE {schema}.items AS i
            SET status = 'claimed', token = t.tokens[array_position(t.ids, i.id)],
                attempts = i.attempts + 1, worker = p_worker, expires_at = v_now + p_lease,
                lease_length = p_lease, updated_at = v_now
            FROM tokens AS t
            WHERE i.id = ANY((SELECT tokens.ids FROM tokens)::bigint[])
            RETURNING i.id, i.queue, i.payload, i.token, i.attempts, i.max_attempts,
                      i.expires_at, i.history, i.grp, i.created_at
        ),
        logged AS (
            INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker)
            SELECT c.id, 'claimed', v_now, c.attempts, 'claimed', c.token, p_worker
            FROM claimed AS c WHERE c.history
        )
        SELECT c.id, c.queue, c.payload, c.token, c.attempts, c.max_attempts, c.expires_at,
               c.grp, c.created_at
        FROM claimed AS c;
    END IF;
END
$$;
