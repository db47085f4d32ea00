-- workclaim PostgreSQL schema, version 8: plans that do not depend on statistics, per-table
-- autovacuum settings, and the enqueue time in every lease.
--
-- Plans. The functions force generic plans (version 3), planned once per session, on the
-- statistics of that moment. A worker that starts while the schema is new and never analyzed
-- (where autovacuum is off, never is a long time) plans on a table of a few pages, where a
-- sequential scan is the cheapest path, and keeps those plans while the table grows: the
-- claim's UPDATE walked the whole table for its `id = ANY(ids)`, the fused turn's completion
-- hash-joined the whole table with its input, and its repeat check did the same (about 240 ms
-- per turn at 91,000 rows, issue 18). No way of writing a statement makes a seq scan of a
-- ten-page table dearer than an index scan, so the functions now run with
-- `enable_seqscan = off`: every statement of theirs has an index path, which the planner then
-- takes whatever the statistics say. The statements are also written so that the index path
-- is a probe, not a walk of a whole index: the completions and the repeat check look their
-- rows up by `id = ANY(p_ids)` (primary-key probes) and find each row's input by its
-- position in the arrays (array_position, as the claim does with its tokens) instead of
-- joining the table with unnest(...). tests/integration/test_postgres_plans.py checks every
-- hot statement's plan on a never-analyzed schema of 100,000 rows.
--
-- Autovacuum, where it runs (production): items is a queue table, every item is updated two or
-- three times and its dead versions pile up at the front of items_claimable and items_leases,
-- where every claim walks. The default (vacuum at 20% of the table dead) waits for 200,000
-- dead rows in a table of a million, mostly finished rows; 2% + 1,000 keeps the walks short.
-- history, finished_counts and the flow tables keep the defaults: history is appended to and
-- purged in bulk, the others are small. No fillfactor: the updates of items change indexed
-- columns (status, in every partial index's predicate; expires_at; finished_at), so they can
-- never be HOT and free room in the page would only make the table bigger; finished_counts'
-- updates are HOT already (its rows are few and small, page pruning makes the room).
ALTER TABLE {schema}.items SET (
    autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.05, autovacuum_analyze_threshold = 1000
);

-- claim_flow keeps its body (version 6); its plans too take the index paths.
ALTER FUNCTION {schema}.claim_flow(text[], text, interval, integer, timestamptz)
    SET enable_seqscan = off;

-- The claim and the fused turn also return the item's enqueue time (created_at), so they are
-- dropped and created anew (a function's result type cannot be replaced).
DROP FUNCTION {schema}.complete_and_claim(
    bigint[], bigint[], text[], text[], text[], text, interval, integer, timestamptz, integer,
    text);
DROP FUNCTION {schema}.claim(text[], text, interval, integer, timestamptz, integer);

-- The claim of version 6 (0002, 0003 and 0005 say why it is a function and how it walks the
-- index), with the enqueue time and enable_seqscan = off.
CREATE FUNCTION {schema}.claim(
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
BEGIN
    -- Step 1, the bounded reap, as in version 5 (see there).
    IF EXISTS (SELECT FROM {schema}.items AS e
               WHERE e.status = 'claimed' AND e.expires_at <= v_now) THEN
        WITH expired AS MATERIALIZED (
            SELECT array_agg(x.id) AS ids FROM (
                SELECT here.id FROM (
                    SELECT e.id FROM {schema}.items AS e
                    WHERE e.status = 'claimed' AND e.expires_at <= v_now
                      AND e.queue = ANY(p_queues)
                    ORDER BY e.expires_at
                    LIMIT p_reap_limit
                    FOR UPDATE SKIP LOCKED
                ) AS here
                UNION  -- a lease in both lists is reaped once
                SELECT anywhere.id FROM (
                    SELECT e.id FROM {schema}.items AS e
                    WHERE e.status = 'claimed' AND e.expires_at <= v_now
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
    IF cardinality(p_queues) = 1 THEN
        RETURN QUERY
        WITH picked AS MATERIALIZED (
            SELECT c.id FROM {schema}.items AS c
            WHERE c.queue = p_queues[1] AND c.status = 'queued' AND c.run_at <= v_now
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

-- The fused turn of version 6, with the enqueue time, enable_seqscan = off, and its completions
-- and repeat check as primary-key probes (`id = ANY(p_ids)`, each row's input found by its
-- position in the arrays). A lease given twice in one turn is completed once, as before.
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
    p_channel    text
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
        SELECT * FROM {schema}.claim(p_queues, p_worker, p_lease, p_limit, p_now, p_reap_limit);
    END IF;
END
$$;
