-- workclaim PostgreSQL schema, version 4: the fused turn's repeat check reads a fresh snapshot.
--
-- In version 3 the check for a repeated completion ("this item was already completed under this
-- very lease") was a branch of the completing statement, so it read that statement's snapshot.
-- A retried call (the worker runtime resends one after BackendUnavailable) can wait on the row
-- lock of its own first try; when that commits, the UPDATE re-reads the row and leaves it (it is
-- done), but the check still saw it claimed, and the turn reported the lease lost although the
-- item was done under it. `complete` has no such gap: its repeat check is a statement of its own.
-- Here too it is now a statement of its own: at READ COMMITTED each statement of a VOLATILE
-- function takes a fresh snapshot, which sees that commit. It runs only when the UPDATE left
-- some lease unchanged, and then also reports the leases completed now (their rows carry
-- ended_token and ended_op by then); when every lease was completed, the turn returns them
-- as given, without the primary-key probes the old UNION branch made on every turn.
--
-- Lock order on finished_counts (one order everywhere, so two statements of the same shard never
-- deadlock): rows of status 'done', then 'dead', then 'cancelled' (status DESC), each status by
-- queue. This turn counts its completions ('done', by queue) before the claim's reap counts its
-- dead items ('dead', by queue); `purge` (queries.sql) follows the same order.
CREATE OR REPLACE FUNCTION {schema}.complete_and_claim(
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
    v_changed bigint;
BEGIN
    IF cardinality(p_ids) > 0 THEN
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
        -- Lock order: the 'done' rows, by queue (see the header). The GROUP BY reads all of
        -- `changed` first, so the item rows are locked before any counter row.
        counted AS (
            INSERT INTO {schema}.finished_counts AS f (queue, status, shard, n)
            SELECT c.queue, 'done', pg_backend_pid() % 64, count(*)
            FROM changed AS c GROUP BY c.queue ORDER BY c.queue
            ON CONFLICT (queue, status, shard) DO UPDATE SET n = f.n + excluded.n
        )
        SELECT count(*) INTO v_changed FROM changed;

        IF v_changed = cardinality(p_ids) THEN
            -- The usual turn: every lease was completed just now, nothing to look up.
            RETURN QUERY
            SELECT u.id, NULL::text, NULL::json, u.token, NULL::integer, NULL::integer,
                   NULL::timestamptz
            FROM unnest(p_ids, p_tokens) AS u (id, token);
        ELSE
            -- A fresh snapshot: the leases completed just now and those whose completion
            -- committed earlier, also while the UPDATE above waited for the row (a repeat, as
            -- for `complete`). A stale lease gets no row.
            RETURN QUERY
            SELECT i.id, NULL::text, NULL::json, i.ended_token, NULL::integer, NULL::integer,
                   NULL::timestamptz
            FROM {schema}.items AS i
            JOIN unnest(p_ids, p_tokens) AS u (id, token) ON i.id = u.id
            WHERE i.ended_token = u.token AND i.ended_op = 'complete';
        END IF;
    END IF;
    IF p_limit > 0 THEN
        RETURN QUERY
        SELECT * FROM {schema}.claim(p_queues, p_worker, p_lease, p_limit, v_now, p_reap_limit);
    END IF;
END
$$;
