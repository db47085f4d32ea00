-- workclaim PostgreSQL schema, version 5: a claim reaps the expired leases of the queues it
-- claims before the oldest ones of any queue. Until now its bounded reap took only the oldest
-- expired leases of all queues, so behind more than p_reap_limit of them (a crashed pool
-- elsewhere) an expired item of the claimed queue stayed out of reach. The claim of version 3
-- otherwise unchanged (0002 and 0003 say why it is a function and how it walks the index);
-- complete_and_claim calls it, so the fused turn reaps the same way.

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
    max_attempts integer, expires_at timestamptz
)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := coalesce(p_now, clock_timestamp());
BEGIN
    -- Step 1, the bounded reap (SKIP LOCKED), with an `expired` event per reaped item and the
    -- dead count of those that had no attempt left: first the claimed queues' own expired
    -- leases (oldest first, at most p_reap_limit), so that an expired item of these queues is
    -- claimable by this claim however many leases expired elsewhere; then the oldest expired
    -- leases of any queue (at most p_reap_limit more), so that queues nobody claims are reaped
    -- too. Guarded by a probe of the front of items_leases: nearly always nothing has expired,
    -- and the probe costs less than starting the statement. Both parts walk the expired front
    -- of items_leases (no lease index has the queue: one more would cost every claim); the
    -- first may read that whole front to find its queues' leases, which the second drains by
    -- p_reap_limit per claim.
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
            -- The locked ids as one array: primary-key probes whatever the generic plan's
            -- estimates (a join could turn into a hash join over the whole table).
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
                      i.expires_at, i.history
        ),
        logged AS (
            INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker)
            SELECT c.id, 'claimed', v_now, c.attempts, 'claimed', c.token, p_worker
            FROM claimed AS c WHERE c.history
        )
        SELECT c.id, c.queue, c.payload, c.token, c.attempts, c.max_attempts, c.expires_at
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
                      i.expires_at, i.history
        ),
        logged AS (
            INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker)
            SELECT c.id, 'claimed', v_now, c.attempts, 'claimed', c.token, p_worker
            FROM claimed AS c WHERE c.history
        )
        SELECT c.id, c.queue, c.payload, c.token, c.attempts, c.max_attempts, c.expires_at
        FROM claimed AS c;
    END IF;
END
$$;
