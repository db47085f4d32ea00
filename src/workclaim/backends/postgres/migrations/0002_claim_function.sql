-- workclaim PostgreSQL schema, version 2: the claim as one server-side function.
--
-- A claim is two steps: return a bounded batch of expired leases to queued (or dead), then lease
-- the best claimable items. They cannot be two sub-statements of one statement: every
-- sub-statement of a statement (data-modifying CTEs included) sees the same snapshot, so a claim
-- CTE beside the reap would not see the items the reap just queued (and one statement may not
-- update a row twice). As two statements sent by the client they cost a transaction block and
-- a pipeline per claim. This VOLATILE function runs them as two statements of one call: at READ
-- COMMITTED each statement in it takes a fresh snapshot, so the claim sees the reap's work, and
-- the client sends one prepared statement in autocommit (one round trip, one commit). plpgsql
-- caches both plans.

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
    max_attempts integer, expires_at timestamptz
)
LANGUAGE plpgsql VOLATILE
AS $$
#variable_conflict use_column
DECLARE
    -- The database's clock unless a test injects one; read once for both steps.
    v_now timestamptz := coalesce(p_now, clock_timestamp());
BEGIN
    -- Step 1, the bounded reap. It walks items_leases from the front; SKIP LOCKED, so two
    -- claimers never wait for each other's reaping and a row a worker is completing right now
    -- is left to that worker (its fence re-checks the expiry).
    UPDATE {schema}.items AS i
    SET status      = CASE WHEN i.attempts < i.max_attempts THEN 'queued' ELSE 'dead' END,
        last_error  = 'lease expired (worker ' || coalesce(i.worker, '?') || ', token '
                      || i.token || ')',
        expires_at  = NULL,
        finished_at = CASE WHEN i.attempts < i.max_attempts THEN NULL ELSE v_now END,
        updated_at  = v_now
    FROM (
        SELECT e.id FROM {schema}.items AS e
        WHERE e.status = 'claimed' AND e.expires_at <= v_now
        ORDER BY e.expires_at
        LIMIT p_reap_limit
        FOR UPDATE SKIP LOCKED
    ) AS expired
    WHERE i.id = expired.id;

    -- Step 2, the claim (a fresh snapshot: it sees the items step 1 queued).
    -- `picked` is MATERIALIZED: an optimisation fence, so the LIMIT ... FOR UPDATE SKIP LOCKED
    -- subquery runs exactly once (inlined, the planner may re-run it in a nested loop and lock
    -- more than p_limit rows). With one queue it walks items_claimable (queue, priority, run_at,
    -- id) WHERE status = 'queued' in order and stops after p_limit rows: finished and claimed
    -- rows are not in that index. With several queues the index cannot give one order across
    -- them, so their claimable entries are sorted. Rows another claimer holds are skipped, not
    -- waited for. `tokens` calls nextval (CACHE 1) once per picked row in claim order, so
    -- tokens follow (priority, run_at, id); RETURNING has no order, the caller sorts by token.
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
            SELECT picked.id, nextval('{schema}.token_seq') AS token FROM picked
        ),
        claimed AS (
            UPDATE {schema}.items AS i
            SET status = 'claimed', token = tokens.token, attempts = i.attempts + 1,
                worker = p_worker, expires_at = v_now + p_lease, lease_length = p_lease,
                updated_at = v_now
            FROM tokens
            WHERE i.id = tokens.id
            RETURNING i.id, i.queue, i.payload, i.token, i.attempts, i.max_attempts, i.expires_at
        )
        SELECT * FROM claimed;
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
            SELECT picked.id, nextval('{schema}.token_seq') AS token FROM picked
        ),
        claimed AS (
            UPDATE {schema}.items AS i
            SET status = 'claimed', token = tokens.token, attempts = i.attempts + 1,
                worker = p_worker, expires_at = v_now + p_lease, lease_length = p_lease,
                updated_at = v_now
            FROM tokens
            WHERE i.id = tokens.id
            RETURNING i.id, i.queue, i.payload, i.token, i.attempts, i.max_attempts, i.expires_at
        )
        SELECT * FROM claimed;
    END IF;
END
$$;
