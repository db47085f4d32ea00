-- workclaim PostgreSQL schema, version 12: claims start past the dead index entries a held
-- snapshot keeps (issue 18; docs/postgres.md, "Under sustained load"; model/floor.pml).
--
-- While any session holds an old snapshot (a long report, an `idle in transaction` session, a
-- standby's feedback), no row version newer than it may be removed and no index entry pointing
-- to one may be marked dead. Every claimed item leaves its entry in items_claimable and every
-- completed lease its entry in items_leases, and a claim walked them all from the front of the
-- index: after five minutes at 1,000 items/s, 262,000 heap fetches and 40 ms per claim.
--
-- Now a claim starts at a *floor*: a key below which no queued item exists, which B-tree
-- descends to directly. The floor is the smallest of the *marks* in floor_marks:
-- - writers mark: every statement that leaves items `queued` (enqueue, release, retry, reap,
--   requeue, anything of an application's) appends, from the statement triggers of version 9
--   in the writer's own transaction, the smallest (priority, run_at, id) it wrote per queue; every statement
--   that leaves items `claimed` (claims, heartbeats) appends the smallest expiry it wrote;
-- - the raise (raise_floors, one at a time, at most once a period, from the claimers) appends
--   the smallest key it finds walking each queue from its floor, and the smallest live expiry;
-- - marks are never updated or deleted one by one (their own dead versions would be walked):
--   floor_marks has two partitions, writers append to the one of the current period (of one
--   second, by the server's clock), and the raise empties the other with TRUNCATE. It first
--   locks it in EXCLUSIVE mode without waiting, which fails while a writer of it is open (so
--   every mark it removes was committed, and its items are seen by the walk that follows under
--   a newer snapshot; rows locked by claims in flight count, a plain read sees them queued),
--   appends what it found to the current partition and truncates the old one, in one
--   transaction.
-- - claims lock floor_marks (ACCESS SHARE) before they read it, so a TRUNCATE (not MVCC-safe:
--   a snapshot taken before it sees the table empty) either waits for the claim or committed
--   before the claim's snapshot, with the raise's own marks.
-- No claim starts above a claimable item whoever writes when; model/floor.pml checks the
-- protocol and five broken variants of it (docs/model.md). A queue without marks (claimed
-- before anything was written to it since this version) has no floor: its claims walk from the
-- start, as before.
--
-- The raise is a transaction of its own (PostgresBackend calls it before a claim at most once a
-- period per process): inside a claim its TRUNCATE would hold ACCESS EXCLUSIVE while the claim
-- goes on to wait for rows and locks that other claims, waiting for that lock, hold. It waits
-- for locks at most 50 ms (lock_timeout) and gives up the round when it would wait longer.
-- claim_flow (queues with groups or limits) still walks from the start of its indexes.

CREATE TABLE {schema}.floor_marks (
    gen         smallint    NOT NULL,
    -- A queued key (queue, priority, run_at, id) or, with a NULL queue, a lease expiry.
    queue       text,
    priority    integer,
    run_at      timestamptz,
    id          bigint,
    expires_at  timestamptz
) PARTITION BY LIST (gen);
CREATE TABLE {schema}.floor_marks_0 PARTITION OF {schema}.floor_marks FOR VALUES IN (0);
CREATE TABLE {schema}.floor_marks_1 PARTITION OF {schema}.floor_marks FOR VALUES IN (1);
CREATE INDEX floor_marks_key ON {schema}.floor_marks (queue, priority, run_at, id)
    WHERE queue IS NOT NULL;
CREATE INDEX floor_marks_lease ON {schema}.floor_marks (expires_at)
    WHERE queue IS NULL;

-- The last period raised (a sequence: read and set without a row version, so a held snapshot
-- leaves nothing of it behind).
CREATE SEQUENCE {schema}.floor_raised AS bigint MINVALUE 0 START WITH 0 NO CYCLE;

-- The current period (one second of the server's clock); writers append to partition
-- period % 2.
CREATE FUNCTION {schema}.floor_period() RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT floor(extract(epoch FROM clock_timestamp()))::bigint $$;

-- The marks are appended by the statement triggers that already count queued items (versions
-- 9 and 10), so a statement pays for one trigger call, not two (a second trigger with its
-- transition tables cost a claim a measurable share of its time): the functions below are
-- version 10's with the marks added, under the same names. One mark per queue a statement left
-- items queued in (its smallest key), one for the leases it wrote (the smallest expiry); a
-- statement that leaves no item queued or claimed (a completion) appends nothing.
CREATE OR REPLACE FUNCTION {schema}.count_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {schema}.queued_added (queue, n)
    SELECT queue, count(*) FROM new_rows WHERE status = 'queued' GROUP BY queue ORDER BY queue;
    INSERT INTO {schema}.floor_marks (gen, queue, priority, run_at, id)
    SELECT DISTINCT ON (n.queue) {schema}.floor_period() % 2, n.queue, n.priority, n.run_at, n.id
    FROM new_rows AS n WHERE n.status = 'queued'
    ORDER BY n.queue, n.priority, n.run_at, n.id;
    RETURN NULL;
END
$$;

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
        IF EXISTS (SELECT FROM new_rows AS n WHERE n.status IN ('queued', 'claimed')) THEN
            INSERT INTO {schema}.floor_marks (gen, queue, priority, run_at, id, expires_at)
            SELECT {schema}.floor_period() % 2, m.queue, m.priority, m.run_at, m.id, NULL
            FROM (
                SELECT DISTINCT ON (n.queue) n.queue, n.priority, n.run_at, n.id
                FROM new_rows AS n WHERE n.status = 'queued'
                ORDER BY n.queue, n.priority, n.run_at, n.id
            ) AS m
            UNION ALL
            SELECT {schema}.floor_period() % 2, NULL, NULL, NULL, NULL, min(n.expires_at)
            FROM new_rows AS n WHERE n.status = 'claimed'
            HAVING count(*) > 0;
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

-- Queues with items queued now get a mark at the start of their order (CREATE TRIGGER locked
-- items against writes until this transaction commits), so the first raise walks them.
INSERT INTO {schema}.floor_marks (gen, queue, priority, run_at, id)
SELECT {schema}.floor_period() % 2, q.queue, -2147483648, '-infinity', -9223372036854775808
FROM (SELECT DISTINCT i.queue FROM {schema}.items AS i WHERE i.status = 'queued') AS q;

-- Where a claim of `p_queues` may start: the smallest mark of each queue, and the smallest of
-- those; the start of the order when one of the queues has no mark. The caller holds
-- floor_marks locked (see above) before this runs. One row, but declared as a table function
-- and without SET clauses (this and lease_floor run with their callers' enable_seqscan = off),
-- so the planner inlines both into the caller's statement, whose plan plpgsql keeps: a SQL
-- function that is not inlined is planned again at every call.
CREATE FUNCTION {schema}.claim_floor(p_queues text[])
RETURNS TABLE (priority integer, run_at timestamptz, id bigint)
LANGUAGE sql STABLE ROWS 1
AS $$
    SELECT coalesce(f.priority, -2147483648), coalesce(f.run_at, '-infinity'),
           coalesce(f.id, -9223372036854775808)
    FROM (SELECT NULL) AS one
    LEFT JOIN (
        SELECT m.priority, m.run_at, m.id
        FROM unnest(p_queues) AS q (name)
        LEFT JOIN LATERAL (
            SELECT m.priority, m.run_at, m.id FROM {schema}.floor_marks AS m
            WHERE m.queue = q.name
            ORDER BY m.priority, m.run_at, m.id LIMIT 1
        ) AS m ON true
        ORDER BY m.priority NULLS FIRST, m.run_at, m.id
        LIMIT 1
    ) AS f ON true
$$;

-- Where the reap check may start in items_leases: the smallest lease mark ('-infinity' with
-- none). A table function of one row, like claim_floor: a scalar SQL function whose body holds
-- a subquery is never inlined, and planning it at every call cost a claim about 0.1 ms.
CREATE FUNCTION {schema}.lease_floor()
RETURNS TABLE (expires_at timestamptz)
LANGUAGE sql STABLE ROWS 1
AS $$
    SELECT coalesce(m.expires_at, '-infinity')
    FROM (SELECT NULL) AS one
    LEFT JOIN (
        SELECT m.expires_at FROM {schema}.floor_marks AS m
        WHERE m.queue IS NULL
        ORDER BY m.expires_at LIMIT 1
    ) AS m ON true
$$;

-- The raise (see above). p_old: the partition to empty; NULL for the one of the last period,
-- and then at most once a period. Returns whether it raised.
CREATE FUNCTION {schema}.raise_floors(p_old integer DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET lock_timeout = '50ms'
AS $$
DECLARE
    v_period bigint := {schema}.floor_period();
    v_old    integer := coalesce(p_old, ((v_period + 1) % 2)::integer);
BEGIN
    IF p_old IS NULL
       AND (SELECT s.last_value FROM {schema}.floor_raised AS s) >= v_period THEN
        RETURN false;
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext('{schema}'), -1) THEN
        RETURN false;
    END IF;
    BEGIN
        IF v_old = 0 THEN
            LOCK TABLE {schema}.floor_marks_0 IN EXCLUSIVE MODE NOWAIT;
        ELSE
            LOCK TABLE {schema}.floor_marks_1 IN EXCLUSIVE MODE NOWAIT;
        END IF;
        -- The walks, under snapshots taken after that lock: each queue's smallest queued key
        -- from its floor (the top of the order when it has none), and the smallest expiry of a
        -- live lease ('infinity' when there is none), appended to the other partition.
        INSERT INTO {schema}.floor_marks (gen, queue, priority, run_at, id)
        SELECT 1 - v_old, q.queue, coalesce(w.priority, 2147483647),
               coalesce(w.run_at, 'infinity'), coalesce(w.id, 9223372036854775807)
        FROM (SELECT DISTINCT m.queue FROM {schema}.floor_marks AS m
              WHERE m.queue IS NOT NULL) AS q
        CROSS JOIN LATERAL {schema}.claim_floor(ARRAY[q.queue]) AS f
        LEFT JOIN LATERAL (
            SELECT i.priority, i.run_at, i.id FROM {schema}.items AS i
            WHERE i.queue = q.queue AND i.status = 'queued'
              AND (i.priority, i.run_at, i.id) >= (f.priority, f.run_at, f.id)
            ORDER BY i.priority, i.run_at, i.id LIMIT 1
        ) AS w ON true;
        INSERT INTO {schema}.floor_marks (gen, expires_at)
        SELECT 1 - v_old, coalesce((
            SELECT e.expires_at FROM {schema}.items AS e
            WHERE e.status = 'claimed'
              AND e.expires_at >= (SELECT f.expires_at FROM {schema}.lease_floor() AS f)
            ORDER BY e.expires_at LIMIT 1), 'infinity');
        IF v_old = 0 THEN
            TRUNCATE {schema}.floor_marks_0;
        ELSE
            TRUNCATE {schema}.floor_marks_1;
        END IF;
    EXCEPTION WHEN lock_not_available THEN
        -- A writer of the old partition is still open, or claims held it longer than the
        -- lock timeout: another round.
        RETURN false;
    END;
    IF p_old IS NULL THEN
        PERFORM setval('{schema}.floor_raised', v_period);
    END IF;
    RETURN true;
END
$$;

-- The claim of version 8 (0002, 0003, 0005 and 0008 say why it is a function and how it walks
-- the index), its reap check and reap from the lease floor, its candidate scan from the queues'
-- floor (a row comparison in the index condition: B-tree descends to the key). Same signature
-- and result: replaced in place, and complete_and_claim, which calls it, too starts there.
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
AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := coalesce(p_now, clock_timestamp());
    v_lease_from timestamptz;
    v_fp integer;
    v_fr timestamptz;
    v_fi bigint;
BEGIN
    -- The floors (see above): floor_marks locked first, so a raise's TRUNCATE either waits
    -- for this claim or committed before the next statement's snapshot.
    LOCK TABLE {schema}.floor_marks IN ACCESS SHARE MODE;
    SELECT l.expires_at, f.priority, f.run_at, f.id INTO v_lease_from, v_fp, v_fr, v_fi
    FROM {schema}.lease_floor() AS l, {schema}.claim_floor(p_queues) AS f;
    -- Step 1, the bounded reap, as in version 5 (see there), from the lease floor.
    IF EXISTS (SELECT FROM {schema}.items AS e
               WHERE e.status = 'claimed' AND e.expires_at <= v_now
                 AND e.expires_at >= v_lease_from) THEN
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
    IF EXISTS (SELECT FROM {schema}.groups AS g WHERE g.queue = ANY(p_queues)) THEN
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
