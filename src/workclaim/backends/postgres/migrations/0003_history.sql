-- workclaim PostgreSQL schema, version 3: the attempt history, finished counts kept as counters
-- (so `stats` and `queues` do not count millions of finished rows), and the worker runtime's
-- fused complete + claim as one function call.
--
-- Every state change writes its history event in the same statement as the change (a
-- data-modifying CTE fed by the UPDATE's RETURNING), only for items whose `history` flag is on.

-- Fixed per item at enqueue (Settings.history / queue_history). Items of the previous version
-- keep history from now on.
ALTER TABLE {schema}.items ADD COLUMN history boolean NOT NULL DEFAULT true;

-- One row per state change of an item that keeps history. `seq` comes from a CACHE 1 sequence,
-- so it follows the order the events were written in, across sessions. No foreign key to items:
-- its check would lock the item row KEY SHARE on every event; purge deletes an item's history in
-- the same statement as the item instead.
CREATE TABLE {schema}.history (
    item_id  bigint      NOT NULL,
    seq      bigint      GENERATED ALWAYS AS IDENTITY,
    kind     text        NOT NULL
             CHECK (kind IN ('claimed', 'heartbeat', 'released', 'completed', 'failed',
                             'expired', 'requeued', 'cancelled')),
    at       timestamptz NOT NULL,
    attempt  integer     NOT NULL,
    status   text        NOT NULL,
    token    bigint,
    worker   text,
    error    text,
    PRIMARY KEY (item_id, seq)
);

-- Finished items (done, dead, cancelled) per queue as counters, changed by the statement that
-- finishes an item (or requeues or purges it). Sharded by the server process
-- (pg_backend_pid() % 64), so concurrent completers update different rows and do not queue on
-- one row lock; `stats` sums the shards. Only counter columns change: the updates are HOT.
-- fillfactor 10: few rows share a page, so concurrent completers seldom wait for one page lock,
-- and each page keeps room for its HOT versions.
CREATE TABLE {schema}.finished_counts (
    queue   text    NOT NULL,
    status  text    NOT NULL CHECK (status IN ('done', 'dead', 'cancelled')),
    shard   integer NOT NULL,
    n       bigint  NOT NULL,
    PRIMARY KEY (queue, status, shard)
) WITH (fillfactor = 10);

INSERT INTO {schema}.finished_counts (queue, status, shard, n)
SELECT queue, status, 0, count(*)
FROM {schema}.items
WHERE status IN ('done', 'dead', 'cancelled')
GROUP BY queue, status;

-- Listing dead and cancelled items by id (the dashboard's dead list) without walking done rows.
-- Items rarely end this way, so the hot path seldom pays for this index.
CREATE INDEX items_ended
    ON {schema}.items (queue, status, id) WHERE status IN ('dead', 'cancelled');

-- The claim of version 2, now writing its history events and dead counts. See 0002 for why it
-- is a function and how it walks the index.
--
-- Plans: with `LIMIT p_limit` a parameter, the planner costs a generic plan as if 10% of the
-- queue were taken, so plpgsql's plan cache never picked it and re-planned the claim on every
-- call (found with auto_explain: constants in every plan; about half the server time of a
-- single claim). This version forces the generic plans (SET plan_cache_mode below) and is
-- written so that they are the right ones whatever the estimates: the picked ids go to the
-- UPDATE as one array (`id = ANY(...)`: primary-key probes, never a hash join over the
-- table), and the tokens, drawn in claim order, follow them by position.
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
    -- dead count of those that had no attempt left. Guarded by a probe of the front of
    -- items_leases: nearly always nothing has expired, and the probe costs less than starting
    -- the three-part statement.
    IF EXISTS (SELECT FROM {schema}.items AS e
               WHERE e.status = 'claimed' AND e.expires_at <= v_now) THEN
        WITH reaped AS (
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
            WHERE i.id = expired.id
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

-- The worker runtime's turn in one call: complete the finished leases (fenced like `complete`),
-- then the reap and claim above (skipped when p_limit is 0). Rows with a NULL queue are the
-- completions that count as done, (id, token): the ones completed now and repeats of the
-- complete that ended that lease (seen in the snapshot before this update); a stale lease gets
-- no row and its item is left unchanged. The other rows are the new leases, as `claim` returns
-- them.
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
    IF cardinality(p_ids) > 0 THEN
        RETURN QUERY
        WITH d AS MATERIALIZED (
            SELECT * FROM unnest(p_ids, p_tokens, p_workers, p_results)
                          AS u (id, token, worker, result)
        ),
        changed AS (
            UPDATE {schema}.items AS i
            SET status = 'done', result = d.result::json, expires_at = NULL,
                ended_token = i.token, ended_op = 'complete', ended_status = 'done',
                finished_at = v_now, updated_at = v_now
            FROM d
            -- The fence as one CASE: neither an index condition nor items_leases' predicate,
            -- so the planner finds each row by primary key from `d` instead of walking every
            -- live lease in items_leases (which it picks when statistics say few are live).
            WHERE i.id = d.id AND i.token = d.token AND i.worker = d.worker
              AND CASE WHEN i.status = 'claimed' THEN i.expires_at > v_now ELSE false END
            RETURNING i.id, i.queue, i.token, i.attempts, i.worker, i.history
        ),
        logged AS (
            INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker)
            SELECT c.id, 'completed', v_now, c.attempts, 'done', c.token, c.worker
            FROM changed AS c WHERE c.history
        ),
        counted AS (
            INSERT INTO {schema}.finished_counts AS f (queue, status, shard, n)
            SELECT c.queue, 'done', pg_backend_pid() % 64, count(*)
            FROM changed AS c GROUP BY c.queue ORDER BY c.queue
            ON CONFLICT (queue, status, shard) DO UPDATE SET n = f.n + excluded.n
        )
        SELECT c.id, NULL::text, NULL::json, c.token, NULL::integer, NULL::integer,
               NULL::timestamptz
        FROM changed AS c
        UNION ALL
        SELECT i.id, NULL::text, NULL::json, i.ended_token, NULL::integer, NULL::integer,
               NULL::timestamptz
        FROM {schema}.items AS i JOIN d ON i.id = d.id
        WHERE i.ended_token = d.token AND i.ended_op = 'complete';
    END IF;
    IF p_limit > 0 THEN
        RETURN QUERY
        SELECT * FROM {schema}.claim(p_queues, p_worker, p_lease, p_limit, v_now, p_reap_limit);
    END IF;
END
$$;
