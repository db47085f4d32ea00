-- Version 15: claims read the scan floors only while they pay (issue 18; docs/postgres.md,
-- "Where a claim starts").
--
-- Reading the floors (version 12) costs every claim a lock of floor_marks and a statement: in
-- ten-process single-item fused turns, version 14 measured 0.82 of version 11's rate and the
-- same claims without the read 0.86 (pgbench, six rounds; one client: 0.91 and 1.01;
-- docs/postgres.md has the runs). The floors only pay when the front of items_claimable or
-- items_leases holds many entries a claim must step over: while a snapshot is held (entries
-- nobody may remove or mark dead: each costs a heap fetch), or, without vacuum, after many
-- items (entries marked dead, which a scan still reads page by page). Otherwise a claim from
-- the start of the order is as cheap as one from the floor.
--
-- So the claimers ask once a period (PostgresBackend, with the raise) whether the floors are
-- wanted, and pass the answer to claim and complete_and_claim (`p_floors`; true by default, as
-- before). floors_wanted() answers from a sequence, floor_wanted: the last period of the last
-- positive probe plus WANT_PERIODS. When that has passed, one caller a period probes: it walks
-- each marked queue's entries in items_claimable from the start to its first queued item and
-- items_leases to its first live lease, as a claim without floors would, and counts with the
-- server's own statistics of this transaction (pg_stat_get_xact_tuples_returned and
-- _blocks_fetched) the index entries those walks returned and the index blocks they read.
-- Past PROBE_ENTRIES entries or PROBE_BLOCKS blocks (beyond what one walk per queue needs
-- anyway), the floors are wanted for the next WANT_PERIODS periods. While they are wanted, one
-- caller probes again in the window's last RENEW_PERIODS periods, and every other caller
-- answers from the window meanwhile: a window that ran out before its renewal would send every
-- process's claims for a second down the walk the floors spare them (seen: a held snapshot's
-- p95 rising at each renewal) while the one probe is still walking.
--
-- Whether a claim reads the floors never decides what it may take: without them it walks from
-- the start of the order, as version 11 did, and sees every claimable item; writers mark and
-- the raise raises as before (model/floor.pml is unchanged), so the floors are valid whenever
-- a claim turns to them. With statistics off (track_counts) the probe cannot count, and the
-- floors are always wanted.
CREATE SEQUENCE {schema}.floor_wanted AS bigint MINVALUE 0 START WITH 0 NO CYCLE;
CREATE SEQUENCE {schema}.floor_probed AS bigint MINVALUE 0 START WITH 0 NO CYCLE;

-- Whether claims should read the floors now (see above). p_probe: probe now, whatever the
-- period (tests). A walk's cost in index entries and blocks beyond which the floors are
-- wanted: a held snapshot passes 1,000 entries within a second of claims at 1,000 items/s, and
-- 512 blocks of entries marked dead take a claim about a millisecond to read.
CREATE FUNCTION {schema}.floors_wanted(p_probe boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    c_probe_entries constant bigint := 1000;
    c_probe_blocks  constant bigint := 512;
    c_want_periods  constant bigint := 30;
    c_renew_periods constant bigint := 5;
    v_period  bigint := {schema}.floor_period();
    v_until   bigint := (SELECT s.last_value FROM {schema}.floor_wanted AS s);
    v_queues  bigint;
    v_entries bigint;
    v_blocks  bigint;
    v_round   integer;
BEGIN
    IF NOT p_probe THEN
        IF v_until >= v_period + c_renew_periods THEN
            RETURN true;
        END IF;
        IF (SELECT s.last_value FROM {schema}.floor_probed AS s) >= v_period
           OR NOT pg_try_advisory_xact_lock(hashtext('{schema}'), -2) THEN
            RETURN v_until >= v_period;
        END IF;
        PERFORM setval('{schema}.floor_probed', v_period);
    END IF;
    IF NOT current_setting('track_counts')::boolean THEN
        RETURN true;
    END IF;
    -- The walks a claim without floors makes: each queue's from the start of its order to its
    -- first queued item, and the leases' to the first live one. Twice, and the second counted:
    -- the first may be the first scan to pass entries dead to everyone, which it marks so
    -- (entries the claims that started at the floors never passed); the second pays what a
    -- claim would pay now.
    FOR v_round IN 1..2 LOOP
        v_entries := -pg_stat_get_xact_tuples_returned('{schema}.items_claimable'::regclass)
                     - pg_stat_get_xact_tuples_returned('{schema}.items_leases'::regclass);
        v_blocks := -pg_stat_get_xact_blocks_fetched('{schema}.items_claimable'::regclass)
                    - pg_stat_get_xact_blocks_fetched('{schema}.items_leases'::regclass);
        SELECT count(*) INTO v_queues
        FROM (SELECT DISTINCT m.queue FROM {schema}.floor_marks AS m
              WHERE m.queue IS NOT NULL) AS q
        LEFT JOIN LATERAL (
            SELECT i.id FROM {schema}.items AS i
            WHERE i.queue = q.queue AND i.status = 'queued'
            ORDER BY i.priority, i.run_at, i.id LIMIT 1
        ) AS w ON true;
        PERFORM (SELECT e.id FROM {schema}.items AS e
                 WHERE e.status = 'claimed' ORDER BY e.expires_at LIMIT 1);
        v_entries := v_entries
                     + pg_stat_get_xact_tuples_returned('{schema}.items_claimable'::regclass)
                     + pg_stat_get_xact_tuples_returned('{schema}.items_leases'::regclass);
        v_blocks := v_blocks
                    + pg_stat_get_xact_blocks_fetched('{schema}.items_claimable'::regclass)
                    + pg_stat_get_xact_blocks_fetched('{schema}.items_leases'::regclass);
    END LOOP;
    IF v_entries > c_probe_entries + v_queues + 1
       OR v_blocks > c_probe_blocks + 8 * (v_queues + 1) THEN
        PERFORM setval('{schema}.floor_wanted', v_period + c_want_periods);
        RETURN true;
    END IF;
    -- Not wanted now: a window still open runs out as it was set.
    RETURN v_until >= v_period;
END
$$;

-- The claim and the fused turn take whether to read the floors (`p_floors`), so they are
-- dropped and created anew: version 12's claim (0012 says how it starts at the floors) and
-- version 8's fused turn, with the floors read only when asked, and version 13's jit = off.
DROP FUNCTION {schema}.complete_and_claim(
    bigint[], bigint[], text[], text[], text[], text, interval, integer, timestamptz, integer,
    text);
DROP FUNCTION {schema}.claim(text[], text, interval, integer, timestamptz, integer);

CREATE FUNCTION {schema}.claim(
    p_queues     text[],
    p_worker     text,
    p_lease      interval,
    p_limit      integer,
    p_now        timestamptz,
    p_reap_limit integer,
    p_floors     boolean DEFAULT true
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
    -- Without floors: the start of both orders.
    v_lease_from timestamptz := '-infinity';
    v_fp integer := -2147483648;
    v_fr timestamptz := '-infinity';
    v_fi bigint := -9223372036854775808;
BEGIN
    IF p_floors THEN
        -- The floors (0012): floor_marks locked first, so a raise's TRUNCATE either waits
        -- for this claim or committed before the next statement's snapshot.
        LOCK TABLE {schema}.floor_marks IN ACCESS SHARE MODE;
        SELECT l.expires_at, f.priority, f.run_at, f.id INTO v_lease_from, v_fp, v_fr, v_fi
        FROM {schema}.lease_floor() AS l, {schema}.claim_floor(p_queues) AS f;
    END IF;
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
        IF p_floors THEN
            SELECT f.priority, f.run_at, f.id INTO v_fp, v_fr, v_fi
            FROM {schema}.claim_floor(p_queues) AS f;
        END IF;
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

CREATE FUNCTION {schema}.complete_and_claim(
    p_ids        bigint[],
    p_tokens     bigint[],
    p_workers    text[],
    p_results    text[],
    p_queues     text[],
    p_worker     text,
    p_lease      interval,
    p_limit      integer,
    p_now        timestamptz,
    p_reap_limit integer,
    p_channel    text,
    p_floors     boolean DEFAULT true
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
    v_changed bigint;
    v_slots boolean;
BEGIN
    IF cardinality(p_ids) > 0 THEN
        WITH changed AS (
            UPDATE {schema}.items AS i
            SET status = 'done', result = p_results[array_position(p_ids, i.id)]::json,
                expires_at = NULL, ended_token = i.token, ended_op = 'complete',
                ended_status = 'done', finished_at = v_now, updated_at = v_now
            -- The fence as one CASE (see version 4): no partial index matches it.
            WHERE i.id = ANY(p_ids)
              AND i.token = p_tokens[array_position(p_ids, i.id)]
              AND i.worker = p_workers[array_position(p_ids, i.id)]
              AND CASE WHEN i.status = 'claimed' THEN i.expires_at > v_now ELSE false END
            RETURNING i.id, i.queue, i.token, i.attempts, i.worker, i.history, i.holds_slot
        ),
        logged AS (
            INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker)
            SELECT c.id, 'completed', v_now, c.attempts, 'done', c.token, c.worker
            FROM changed AS c WHERE c.history
        ),
        -- Lock order: the 'done' rows, by queue (see version 4).
        counted AS (
            INSERT INTO {schema}.finished_counts AS f (queue, status, shard, n)
            SELECT c.queue, 'done', pg_backend_pid() % 64, count(*)
            FROM changed AS c GROUP BY c.queue ORDER BY c.queue
            ON CONFLICT (queue, status, shard) DO UPDATE SET n = f.n + excluded.n
        )
        SELECT count(*), bool_or(c.holds_slot) INTO v_changed, v_slots FROM changed AS c;

        IF v_slots THEN
            PERFORM pg_notify(p_channel, '');
        END IF;
        IF v_changed = cardinality(p_ids) THEN
            RETURN QUERY
            SELECT u.id, NULL::text, NULL::json, u.token, NULL::integer, NULL::integer,
                   NULL::timestamptz, NULL::text, NULL::timestamptz
            FROM unnest(p_ids, p_tokens) AS u (id, token);
        ELSE
            -- The repeat check (version 4): a statement of its own, a fresh snapshot.
            RETURN QUERY
            SELECT i.id, NULL::text, NULL::json, i.ended_token, NULL::integer, NULL::integer,
                   NULL::timestamptz, NULL::text, NULL::timestamptz
            FROM {schema}.items AS i
            WHERE i.id = ANY(p_ids)
              AND i.ended_token = p_tokens[array_position(p_ids, i.id)]
              AND i.ended_op = 'complete';
        END IF;
    END IF;
    IF p_limit > 0 THEN
        RETURN QUERY
        -- p_now, not v_now: with the clock, the claim reads its own time (claim_flow after its
        -- lock), later than these completions.
        SELECT * FROM {schema}.claim(p_queues, p_worker, p_lease, p_limit, p_now, p_reap_limit,
                                    p_floors);
    END IF;
END
$$;
