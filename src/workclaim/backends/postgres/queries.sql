-- Named queries of the PostgreSQL backend. Parameters are %(name)s; `{schema}` is replaced by the
-- quoted schema name when the file is loaded (psycopg.sql.Identifier), so every name is qualified
-- and a caller's own connection (transactional enqueue) needs no search_path.
--
-- Time: every statement reads the clock once, in the one-row CTE `clock`:
-- coalesce(%(now)s, clock_timestamp()), the database's clock unless a test injects `now`.
-- Durations arrive as intervals (Python timedelta, whole microseconds).
--
-- Lock order on finished_counts, the same in every statement and function (migration 0004), so
-- two sessions of one shard never deadlock: item rows first (or skipped with SKIP LOCKED), then
-- counter rows by status DESC ('done', 'dead', 'cancelled'), each status by queue. Statements
-- that touch one counter row (complete, fail, cancel, requeue) keep it trivially; purge and
-- complete_and_claim (its completions, then the claim's reap) say so beside their SQL.
--
-- Look-ups by id test the item's status inside a CASE (heartbeat, complete, release, fail,
-- cancel, requeue; the fused turn since migration 0004): a plain `status = 'claimed'` lets the
-- planner prove the predicate of the partial index items_leases (items_group_claimable for
-- 'queued', items_ended for 'dead') and read the item through it, filtering by id, which
-- statistics can make look as cheap as the primary key (a generic plan flips between the two
-- at each ANALYZE). While a
-- snapshot is held that index holds an entry for every lease since, so one completion read a
-- thousand pages (issue 18: the held-snapshot p95 went from 12 to 120 ms after an autoanalyze).
-- A CASE matches no index predicate, so the primary key is the only way in.

-- name: migrations_table
-- The version record; created before any migration runs, under the advisory lock.
CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT clock_timestamp()
)

-- name: migrations_exist
-- Whether the version table exists (no error when the schema is missing).
SELECT to_regclass(%(table)s) IS NOT NULL

-- name: max_version
SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations

-- name: record_migration
INSERT INTO {schema}.schema_migrations (version, name) VALUES (%(version)s, %(name)s)

-- name: migration_lock
-- Serialises migrators of this schema across processes; released at commit.
SELECT pg_advisory_xact_lock(hashtextextended('workclaim.migrate.' || %(schema)s, 0))

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS {schema}

-- name: analyze
-- Statistics for every workclaim table (after migrations, and from purge when many rows
-- changed): where autovacuum is off nothing else gathers them. Plans on the hot path do not
-- need them (migration 0008), but every other statement and ad-hoc queries do.
ANALYZE {schema}.items, {schema}.history, {schema}.finished_counts, {schema}.groups,
        {schema}.policies, {schema}.claim_log, {schema}.queued_counts, {schema}.queued_added

-- name: analyze_due
-- Whether items or history changed by more than a tenth of their rows (at least 10,000) since
-- their last ANALYZE (manual or automatic), as the server's cumulative statistics count it;
-- also true for a table never analyzed. One read of two rows of pg_stat_user_tables.
SELECT coalesce(bool_or(s.n_mod_since_analyze > greatest(10000, 0.1 * c.reltuples)), false)
FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid
WHERE s.schemaname = %(schema)s AND s.relname IN ('items', 'history')

-- name: claim
-- The bounded reap of expired leases and the SKIP LOCKED claim, one statement: the function
-- `claim` of migration 0002 says why it is a function and how it walks the index (0008: its
-- plans do not depend on statistics; it returns the items' enqueue times; 0015: it reads the
-- scan floors when %(floors)s).
SELECT id, queue, payload, token, attempts, max_attempts, expires_at, grp, enqueued_at
FROM {schema}.claim(%(queues)s::text[], %(worker)s, %(lease)s::interval, %(limit)s::integer,
                    %(now)s::timestamptz, %(reap_limit)s::integer, %(floors)s::boolean)

-- name: raise_floors
-- The claims' scan floors raised (migration 0012), at most once a period whoever calls; its
-- own transaction, never inside a claim (0012 says why). Returns whether it raised.
SELECT {schema}.raise_floors()

-- name: probe_budget
-- The statement timeout of the rest of this transaction (SET LOCAL): floors_wanted's probe
-- (migration 0016) stops there and answers that the floors are wanted.
SELECT set_config('statement_timeout', %(budget)s, true)

-- name: floors_wanted
-- Whether claims should read the scan floors for now (migration 0015): at most one caller a
-- period probes what a claim without them would walk, within the budget above (0016). Its own
-- transaction, after the raise's.
SELECT {schema}.floors_wanted()

-- name: complete_and_claim
-- The fused turn (migrations 0004, 0006, 0008): rows with a NULL queue are the completions that
-- count as done, the others the new leases.
SELECT id, queue, payload, token, attempts, max_attempts, expires_at, grp, enqueued_at
FROM {schema}.complete_and_claim(
    %(ids)s::bigint[], %(tokens)s::bigint[], %(workers)s::text[], %(results)s::text[],
    %(queues)s::text[], %(worker)s, %(lease)s::interval, %(limit)s::integer,
    %(now)s::timestamptz, %(reap_limit)s::integer, %(channel)s, %(floors)s::boolean)

-- name: insert_many
-- A batch without dedupe keys in one statement, which also notifies listeners once (at
-- commit). WITH ORDINALITY + ORDER BY feed the rows in input order, so identity values are
-- assigned in input order: the ids, sorted, are the inputs' ids in order.
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now),
inserted AS (
    INSERT INTO {schema}.items
        (queue, payload, status, priority, run_at, max_attempts, history, grp, created_at,
         updated_at)
    SELECT %(queue)s, p.payload::json, 'queued', p.priority,
           coalesce(p.run_at, clock.now + p.delay), p.max_attempts, p.history, p.grp, clock.now,
           clock.now
    FROM unnest(%(payloads)s::text[], %(priorities)s::integer[], %(run_ats)s::timestamptz[],
                %(delays)s::interval[], %(max_attempts)s::integer[], %(histories)s::boolean[],
                %(groups)s::text[])
         WITH ORDINALITY AS p (payload, priority, run_at, delay, max_attempts, history, grp, n),
         clock
    ORDER BY p.n
    RETURNING id
)
SELECT array_agg(id ORDER BY id), pg_notify(%(channel)s, '')::text FROM inserted

-- name: insert_dedupe
-- One item that may carry a dedupe key. A live holder of the key (also an uncommitted one of a
-- concurrent producer, which ON CONFLICT waits for) makes this insert nothing and return no row;
-- the caller then looks the holder up with find_dedupe.
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now)
INSERT INTO {schema}.items
    (queue, payload, status, priority, run_at, max_attempts, dedupe_key, history, grp,
     created_at, updated_at)
SELECT %(queue)s, %(payload)s::json, 'queued', %(priority)s,
       coalesce(%(run_at)s::timestamptz, clock.now + %(delay)s::interval), %(max_attempts)s,
       %(dedupe_key)s, %(history)s::boolean, %(group)s::text, clock.now, clock.now
FROM clock
ON CONFLICT (queue, dedupe_key) WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'claimed')
DO NOTHING
RETURNING id

-- name: find_dedupe
-- The live item holding a dedupe key in a queue, if any.
SELECT id FROM {schema}.items
WHERE queue = %(queue)s AND dedupe_key = %(dedupe_key)s AND status IN ('queued', 'claimed')

-- name: ensure_groups
-- The rows of a grouped enqueue's groups and of its queue's default group (''), which send the
-- queue's claims to claim_flow (migration 0006); nothing is written when they exist. The default
-- group's row starts at the greatest token its items were given before the queue used groups
-- (the claims of the plain path record none), read once per queue, when the row is created.
INSERT INTO {schema}.groups (queue, grp, served)
SELECT %(queue)s, g.grp,
       CASE WHEN g.grp = '' THEN (SELECT coalesce(max(i.token), 0) FROM {schema}.items AS i
                                  WHERE i.queue = %(queue)s AND i.grp IS NULL)
            ELSE 0 END
FROM unnest(%(groups)s::text[]) AS g (grp)
WHERE NOT EXISTS (SELECT FROM {schema}.groups AS e WHERE e.queue = %(queue)s AND e.grp = g.grp)
ORDER BY g.grp
ON CONFLICT (queue, grp) DO NOTHING

-- name: notify
-- "Work may be claimable" for this schema's listeners; delivered at commit, and PostgreSQL folds
-- identical notifications of one transaction into one.
SELECT pg_notify(%(channel)s, '')

-- name: heartbeat
-- Fenced: only the current, unexpired lease of this worker may extend itself.
-- A NULL %(extend)s extends by the lease's own length.
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now),
changed AS (
    UPDATE {schema}.items AS i
    SET expires_at = clock.now + coalesce(%(extend)s::interval, i.lease_length),
        updated_at = clock.now
    FROM clock
    WHERE i.id = %(id)s AND i.token = %(token)s AND i.worker = %(worker)s
      AND CASE WHEN i.status = 'claimed' THEN i.expires_at > clock.now ELSE false END
    RETURNING i.id, i.expires_at, i.attempts, i.history, clock.now
),
logged AS (
    INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker)
    SELECT c.id, 'heartbeat', c.now, c.attempts, 'claimed', %(token)s, %(worker)s
    FROM changed AS c WHERE c.history
)
SELECT expires_at FROM changed

-- name: complete
-- Returns a row only when the fenced update changed the item (with a notification, at commit,
-- when the lease held a slot of a queue with a concurrency limit); writes the `completed` event (if
-- the item keeps history) and counts the item done, in the same statement. The count is a plain
-- (HOT) UPDATE of this process's counter row, and an insert only the first time: an
-- INSERT ... ON CONFLICT DO UPDATE on every completion also probes the index for the insert
-- and WAL-logs a row lock before the update (measured: it cost the completion about a fifth
-- of its throughput at 10 clients).
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now),
changed AS (
    UPDATE {schema}.items AS i
    SET status = 'done', result = %(result)s::json, expires_at = NULL,
        ended_token = i.token, ended_op = 'complete', ended_status = 'done',
        finished_at = clock.now, updated_at = clock.now
    FROM clock
    WHERE i.id = %(id)s AND i.token = %(token)s AND i.worker = %(worker)s
      AND CASE WHEN i.status = 'claimed' THEN i.expires_at > clock.now ELSE false END
    RETURNING i.id, i.queue, i.attempts, i.history, i.holds_slot, clock.now
),
logged AS (
    INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker)
    SELECT c.id, 'completed', c.now, c.attempts, 'done', %(token)s, %(worker)s
    FROM changed AS c WHERE c.history
),
counted AS (
    UPDATE {schema}.finished_counts AS f SET n = f.n + 1
    FROM changed AS c
    WHERE f.queue = c.queue AND f.status = 'done' AND f.shard = pg_backend_pid() %% 64
    RETURNING f.n
),
first_count AS (
    INSERT INTO {schema}.finished_counts AS f (queue, status, shard, n)
    SELECT c.queue, 'done', pg_backend_pid() %% 64, 1 FROM changed AS c
    WHERE NOT EXISTS (SELECT FROM counted)
    ON CONFLICT (queue, status, shard) DO UPDATE SET n = f.n + excluded.n
)
SELECT id, CASE WHEN holds_slot THEN pg_notify(%(channel)s, '')::text END FROM changed

-- name: release
-- The attempt is given back: a released item has not used an execution. Returns a row (and
-- notifies listeners, at commit) only when the fenced update changed the item.
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now),
changed AS (
    UPDATE {schema}.items AS i
    SET status = 'queued', attempts = i.attempts - 1, run_at = clock.now + %(delay)s::interval,
        expires_at = NULL, ended_token = i.token, ended_op = 'release', ended_status = 'queued',
        updated_at = clock.now
    FROM clock
    WHERE i.id = %(id)s AND i.token = %(token)s AND i.worker = %(worker)s
      AND CASE WHEN i.status = 'claimed' THEN i.expires_at > clock.now ELSE false END
    RETURNING i.id, i.attempts + 1 AS attempt, i.history, clock.now
),
logged AS (
    INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker)
    SELECT c.id, 'released', c.now, c.attempt, 'queued', %(token)s, %(worker)s
    FROM changed AS c WHERE c.history
)
SELECT changed.id, pg_notify(%(channel)s, '')::text FROM changed

-- name: fail
-- Retry at now + %(retry)s while attempts remain and a retry was asked for; else dead.
-- SET expressions all see the row as it was, so the CASEs agree with each other. Listeners are
-- notified (at commit) when the item went back to queued or its lease held a slot of a queue
-- with a concurrency limit (migration 0006).
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now),
changed AS (
    UPDATE {schema}.items AS i
    SET status       = CASE WHEN %(retry)s::interval IS NOT NULL AND i.attempts < i.max_attempts
                            THEN 'queued' ELSE 'dead' END,
        run_at       = CASE WHEN %(retry)s::interval IS NOT NULL AND i.attempts < i.max_attempts
                            THEN clock.now + %(retry)s::interval ELSE i.run_at END,
        finished_at  = CASE WHEN %(retry)s::interval IS NOT NULL AND i.attempts < i.max_attempts
                            THEN NULL ELSE clock.now END,
        ended_status = CASE WHEN %(retry)s::interval IS NOT NULL AND i.attempts < i.max_attempts
                            THEN 'queued' ELSE 'dead' END,
        last_error = %(error)s, expires_at = NULL,
        ended_token = i.token, ended_op = 'fail', updated_at = clock.now
    FROM clock
    WHERE i.id = %(id)s AND i.token = %(token)s AND i.worker = %(worker)s
      AND CASE WHEN i.status = 'claimed' THEN i.expires_at > clock.now ELSE false END
    RETURNING i.id, i.queue, i.status, i.attempts, i.history, i.holds_slot, clock.now
),
logged AS (
    INSERT INTO {schema}.history (item_id, kind, at, attempt, status, token, worker, error)
    SELECT c.id, 'failed', c.now, c.attempts, c.status, %(token)s, %(worker)s, %(error)s
    FROM changed AS c WHERE c.history
),
counted AS (
    INSERT INTO {schema}.finished_counts AS f (queue, status, shard, n)
    SELECT c.queue, 'dead', pg_backend_pid() %% 64, 1 FROM changed AS c WHERE c.status = 'dead'
    ON CONFLICT (queue, status, shard) DO UPDATE SET n = f.n + excluded.n
)
SELECT changed.status,
       CASE WHEN changed.status = 'queued' OR changed.holds_slot
            THEN pg_notify(%(channel)s, '')::text END
FROM changed

-- name: lease_end
-- How the item's last lease ended, to recognise a repeated call.
SELECT ended_token, ended_op, ended_status FROM {schema}.items WHERE id = %(id)s

-- name: get_item
SELECT id, queue, payload, status, priority, run_at, attempts, max_attempts, dedupe_key,
       worker, expires_at, last_error, result, created_at, updated_at, grp
FROM {schema}.items WHERE id = %(id)s

-- name: status_of
SELECT status FROM {schema}.items WHERE id = %(id)s

-- name: fold_queued
-- Moves the rows that inserts appended to queued_added (migration 0009) into this session's
-- shard rows of queued_counts: of %(queue)s, or of every queue when it is NULL. Nothing here
-- waits: a queue's rows are moved only when count_lock gives this session its shard row
-- (migration 0010; a writer of the shard holding it keeps them where they are), and SKIP
-- LOCKED leaves a concurrent fold's rows to it. At most 256 queues a statement: each lock
-- takes a slot of the server's shared lock table until the commit (max_locks_per_transaction
-- per connection on average), so the retention pass runs it again while it moves rows. Run by
-- stats before it reads, and by the retention pass, so the rows stats sums stay few; the sum
-- of both tables is the same before and after. Its row count: the queues it folded.
WITH lockable AS MATERIALIZED (
    SELECT q.queue FROM (SELECT DISTINCT queue FROM {schema}.queued_added
                         WHERE %(queue)s::text IS NULL OR queue = %(queue)s::text) AS q
    WHERE {schema}.count_lock(q.queue)
    LIMIT 256
),
moved AS (
    DELETE FROM {schema}.queued_added AS a
    WHERE a.id IN (SELECT id FROM {schema}.queued_added
                   WHERE queue IN (SELECT lockable.queue FROM lockable)
                   FOR UPDATE SKIP LOCKED)
    RETURNING a.queue, a.n
)
INSERT INTO {schema}.queued_counts AS c (queue, shard, n)
SELECT m.queue, pg_backend_pid() %% 64, sum(m.n) FROM moved AS m GROUP BY m.queue ORDER BY m.queue
ON CONFLICT (queue, shard) DO UPDATE SET n = c.n + excluded.n

-- name: stats
-- No item is read to count the queued ones: they are summed from their counters (migration
-- 0009: at most 64 shard rows and the rows appended since the last fold_queued). Claimed items
-- are counted through items_leases (as many as the leases in flight; the expired ones from its
-- expired front), finished ones summed from their counters: no count grows with the queue.
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now)
SELECT 'queued',
       (SELECT coalesce(sum(n), 0) FROM {schema}.queued_counts WHERE queue = %(queue)s)
       + (SELECT coalesce(sum(n), 0) FROM {schema}.queued_added WHERE queue = %(queue)s), 0
UNION ALL
SELECT 'claimed', count(*), count(*) FILTER (WHERE i.expires_at <= clock.now)
FROM {schema}.items AS i, clock WHERE i.queue = %(queue)s AND i.status = 'claimed'
UNION ALL
SELECT status, sum(n), 0
FROM {schema}.finished_counts WHERE queue = %(queue)s GROUP BY status

-- name: queues
-- Every item is in exactly one status: queues with queued items (a skip scan of
-- items_claimable, one probe per queue), with claimed items (items_leases, as many as leases)
-- and with finished items (their counters).
WITH RECURSIVE live (queue) AS (
    SELECT min(queue) FROM {schema}.items WHERE status = 'queued'
    UNION ALL
    SELECT (SELECT min(i.queue) FROM {schema}.items AS i
            WHERE i.status = 'queued' AND i.queue > live.queue)
    FROM live WHERE live.queue IS NOT NULL
)
SELECT queue FROM live WHERE queue IS NOT NULL
UNION
SELECT queue FROM {schema}.items WHERE status = 'claimed'
UNION
SELECT queue FROM {schema}.finished_counts GROUP BY queue HAVING sum(n) > 0
ORDER BY 1

-- name: list_items
-- A page of a queue's items in one status by id (dead and cancelled walk items_ended).
SELECT id, queue, payload, status, priority, run_at, attempts, max_attempts, dedupe_key,
       worker, expires_at, last_error, result, created_at, updated_at, grp
FROM {schema}.items
WHERE queue = %(queue)s AND status = %(status)s AND id > %(after)s
ORDER BY id
LIMIT %(limit)s

-- name: history
-- A page of the item's events oldest first; one row of NULLs when the page is empty, no row
-- when there is no such item.
SELECT h.kind, h.at, h.attempt, h.status, h.token, h.worker, h.error
FROM {schema}.items AS i
LEFT JOIN LATERAL (
    SELECT * FROM {schema}.history AS e WHERE e.item_id = i.id
    ORDER BY e.seq LIMIT %(limit)s OFFSET %(start)s
) AS h ON true
WHERE i.id = %(id)s
ORDER BY h.seq

-- name: history_newest
-- As history, newest first.
SELECT h.kind, h.at, h.attempt, h.status, h.token, h.worker, h.error
FROM {schema}.items AS i
LEFT JOIN LATERAL (
    SELECT * FROM {schema}.history AS e WHERE e.item_id = i.id
    ORDER BY e.seq DESC LIMIT %(limit)s OFFSET %(start)s
) AS h ON true
WHERE i.id = %(id)s
ORDER BY h.seq DESC

-- name: cancel
-- Returns a row only when the item was queued.
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now),
changed AS (
    UPDATE {schema}.items AS i
    SET status = 'cancelled', finished_at = clock.now, updated_at = clock.now
    FROM clock
    WHERE i.id = %(id)s AND CASE WHEN i.status = 'queued' THEN true ELSE false END
    RETURNING i.id, i.queue, i.attempts, i.history, clock.now
),
logged AS (
    INSERT INTO {schema}.history (item_id, kind, at, attempt, status)
    SELECT c.id, 'cancelled', c.now, c.attempts, 'cancelled' FROM changed AS c WHERE c.history
),
counted AS (
    INSERT INTO {schema}.finished_counts AS f (queue, status, shard, n)
    SELECT c.queue, 'cancelled', pg_backend_pid() %% 64, 1 FROM changed AS c
    ON CONFLICT (queue, status, shard) DO UPDATE SET n = f.n + excluded.n
)
SELECT id FROM changed

-- name: requeue
-- Returns a row (and notifies listeners, at commit) only when the item was dead.
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now),
changed AS (
    UPDATE {schema}.items AS i
    SET status = 'queued', attempts = 0,
        max_attempts = coalesce(%(max_attempts)s, i.max_attempts),
        run_at = clock.now, finished_at = NULL, expires_at = NULL, updated_at = clock.now
    FROM clock
    WHERE i.id = %(id)s AND CASE WHEN i.status = 'dead' THEN true ELSE false END
    RETURNING i.id, i.queue, i.attempts, i.history, clock.now
),
logged AS (
    INSERT INTO {schema}.history (item_id, kind, at, attempt, status)
    SELECT c.id, 'requeued', c.now, c.attempts, 'queued' FROM changed AS c WHERE c.history
),
counted AS (
    INSERT INTO {schema}.finished_counts AS f (queue, status, shard, n)
    SELECT c.queue, 'dead', pg_backend_pid() %% 64, -1 FROM changed AS c
    ON CONFLICT (queue, status, shard) DO UPDATE SET n = f.n + excluded.n
)
SELECT changed.id, pg_notify(%(channel)s, '')::text FROM changed

-- name: purge
-- At most %(limit)s (NULL: all) finished items, of %(queue)s or of every queue when it is NULL,
-- that finished before the cutoff; walks items_finished. SKIP LOCKED: two pruners split the work.
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now),
old AS (
    SELECT id FROM {schema}.items
    WHERE status IN ('done', 'dead', 'cancelled')
      AND finished_at <= (SELECT now FROM clock) - %(older_than)s::interval
      AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM {schema}.items AS i USING old WHERE i.id = old.id
    RETURNING i.id, i.queue, i.status, i.history
),
forgotten AS (
    DELETE FROM {schema}.history AS h USING gone WHERE h.item_id = gone.id AND gone.history
),
-- The one lock order on finished_counts (migration 0004): status DESC (done, dead, cancelled),
-- then queue, as complete_and_claim takes its done rows before its reap's dead rows. Any other
-- order can deadlock with it on a shared shard.
counted AS (
    INSERT INTO {schema}.finished_counts AS f (queue, status, shard, n)
    SELECT g.queue, g.status, pg_backend_pid() %% 64, -count(*)
    FROM gone AS g GROUP BY g.queue, g.status ORDER BY g.status DESC, g.queue
    ON CONFLICT (queue, status, shard) DO UPDATE SET n = f.n + excluded.n
)
SELECT count(*) FROM gone

-- name: next_due
-- The earliest time at which the clock alone makes something in %(queues)s claimable: now when
-- one of their leases has expired and is not reaped yet (the next claim of these queues reaps
-- it), else the earliest later run_at of a delayed or backed-off item, or the earliest later
-- expiry of any lease (one probe of items_leases, where the queues' own next expiry could take
-- a walk past every other queue's lease; waking early for another queue's only costs a look).
-- The expired check walks only the expired front of items_leases. A queue (or group) at its
-- rate adds the time its oldest claim in the window leaves it (migration 0006). Every walk
-- starts at the scan floors (migration 0012), as the claim's do: while a snapshot is held, an
-- idle worker's wait would otherwise walk every entry of what was claimed since. (A snapshot
-- of this statement is taken after its locks of floor_marks, at READ COMMITTED.)
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now),
floors AS MATERIALIZED (
    SELECT f.priority, f.run_at, f.id, l.expires_at AS lease
    FROM {schema}.claim_floor(%(queues)s::text[]) AS f, {schema}.lease_floor() AS l
)
SELECT CASE
    WHEN EXISTS (SELECT FROM {schema}.items
                 WHERE status = 'claimed' AND expires_at <= (SELECT now FROM clock)
                   AND expires_at >= (SELECT lease FROM floors)
                   AND queue = ANY(%(queues)s::text[]))
    THEN (SELECT now FROM clock)
    ELSE least(
        (SELECT min(d.run_at) FROM unnest(%(queues)s::text[]) AS q (name)
         CROSS JOIN LATERAL (
             SELECT i.run_at FROM {schema}.items AS i
             WHERE i.queue = q.name AND i.status = 'queued'
               AND (i.priority, i.run_at, i.id) >= ((SELECT priority FROM floors),
                                                    (SELECT run_at FROM floors),
                                                    (SELECT id FROM floors))
               AND i.run_at > (SELECT now FROM clock)
             ORDER BY i.priority, i.run_at, i.id
         ) AS d),
        (SELECT min(expires_at) FROM {schema}.items
         WHERE status = 'claimed' AND expires_at > (SELECT now FROM clock)
           AND expires_at >= (SELECT lease FROM floors)),
        (SELECT min(w.frees) FROM (
            SELECT min(l.at) + p.rate_seconds * interval '1 second' AS frees
            FROM {schema}.policies AS p JOIN {schema}.claim_log AS l ON l.queue = p.queue
            WHERE p.queue = ANY(%(queues)s::text[]) AND p.rate_count IS NOT NULL
              AND l.at > (SELECT now FROM clock) - p.rate_seconds * interval '1 second'
            GROUP BY p.queue, p.rate_count, p.rate_seconds
            HAVING count(*) >= p.rate_count
            UNION ALL
            SELECT min(l.at) + p.group_rate_seconds * interval '1 second'
            FROM {schema}.policies AS p JOIN {schema}.claim_log AS l ON l.queue = p.queue
            WHERE p.queue = ANY(%(queues)s::text[]) AND p.group_rate_count IS NOT NULL
              AND l.at > (SELECT now FROM clock) - p.group_rate_seconds * interval '1 second'
            GROUP BY p.queue, l.grp, p.group_rate_count, p.group_rate_seconds
            HAVING count(*) >= p.group_rate_count
        ) AS w))
END

-- name: policy
SELECT concurrency, group_concurrency, rate_count, rate_seconds, group_rate_count,
       group_rate_seconds, paused
FROM {schema}.policies WHERE queue = %(queue)s

-- name: set_policy
-- Stores the four limits and keeps the paused flag. A queue with neither a limit nor the pause
-- has no row (its claims then lock nothing, migration 0006). The caller first creates the
-- default group's row (ensure_groups), which sends the queue's claims to claim_flow from now on.
-- Waiting claims are notified (at commit): a raised limit may free slots.
WITH new AS (
    SELECT %(queue)s::text AS queue, %(concurrency)s::integer AS concurrency,
           %(group_concurrency)s::integer AS group_concurrency,
           %(rate_count)s::integer AS rate_count, %(rate_seconds)s::float8 AS rate_seconds,
           %(group_rate_count)s::integer AS group_rate_count,
           %(group_rate_seconds)s::float8 AS group_rate_seconds
),
upserted AS (
    INSERT INTO {schema}.policies AS p (queue, concurrency, group_concurrency, rate_count,
                                        rate_seconds, group_rate_count, group_rate_seconds)
    SELECT * FROM new
    ON CONFLICT (queue) DO UPDATE
    SET concurrency = excluded.concurrency, group_concurrency = excluded.group_concurrency,
        rate_count = excluded.rate_count, rate_seconds = excluded.rate_seconds,
        group_rate_count = excluded.group_rate_count,
        group_rate_seconds = excluded.group_rate_seconds
    RETURNING p.concurrency, p.group_concurrency, p.rate_count, p.rate_seconds,
              p.group_rate_count, p.group_rate_seconds, p.paused
),
notified AS (
    SELECT pg_notify(%(channel)s, '')
)
SELECT u.*, (SELECT count(*) FROM notified) FROM upserted AS u

-- name: drop_policy
-- The rows of a policy with no limit left: deleted unless paused (see set_policy).
DELETE FROM {schema}.policies
WHERE queue = %(queue)s AND NOT paused
  AND num_nonnulls(concurrency, group_concurrency, rate_count, group_rate_count) = 0

-- name: set_paused
-- Sets the flag (creating the row); resuming notifies waiting claims (at commit).
WITH upserted AS (
    INSERT INTO {schema}.policies AS p (queue, paused) VALUES (%(queue)s, %(paused)s)
    ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused
    RETURNING p.concurrency, p.group_concurrency, p.rate_count, p.rate_seconds,
              p.group_rate_count, p.group_rate_seconds, p.paused
)
SELECT u.*, CASE WHEN NOT u.paused THEN pg_notify(%(channel)s, '')::text END
FROM upserted AS u

-- name: live_by_group
-- The groups of a queue holding the most live leases (most first, then by name, the default
-- group first); walks the store's live leases (items_leases from now on).
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now)
SELECT i.grp, count(*) AS n
FROM {schema}.items AS i
WHERE i.status = 'claimed' AND i.expires_at > (SELECT now FROM clock) AND i.queue = %(queue)s
GROUP BY i.grp
ORDER BY n DESC, i.grp COLLATE "C" NULLS FIRST
LIMIT %(limit)s

-- name: store_now
SELECT clock_timestamp()

-- name: set_schedule
-- Create the schedule (version 1, set at now) or replace it: different settings bump the version
-- and set set_at to now, keeping last_slot and last_item_id; identical settings (the payload's
-- JSON text too) change nothing and return no row, and the caller reads the row with
-- get_schedule in the same transaction (a statement of its own: it sees a row another session
-- inserted meanwhile, which this statement's snapshot cannot). Schedulers are notified (at
-- commit) when something changed.
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now),
upserted AS (
    INSERT INTO {schema}.schedules AS s
        (name, queue, cron, timezone, payload, priority, max_attempts, grp, catch_up, enabled,
         version, set_at, created_at, updated_at)
    SELECT %(name)s, %(queue)s, %(cron)s, %(timezone)s, %(payload)s::json, %(priority)s,
           %(max_attempts)s::integer, %(group)s::text, %(catch_up)s, %(enabled)s, 1, clock.now,
           clock.now, clock.now
    FROM clock
    ON CONFLICT (name) DO UPDATE
    SET queue = excluded.queue, cron = excluded.cron, timezone = excluded.timezone,
        payload = excluded.payload, priority = excluded.priority,
        max_attempts = excluded.max_attempts, grp = excluded.grp, catch_up = excluded.catch_up,
        enabled = excluded.enabled, version = s.version + 1, set_at = excluded.set_at,
        updated_at = excluded.updated_at
    WHERE (s.queue, s.cron, s.timezone, s.payload::text, s.priority, s.max_attempts, s.grp,
           s.catch_up, s.enabled)
          IS DISTINCT FROM
          (excluded.queue, excluded.cron, excluded.timezone, excluded.payload::text,
           excluded.priority, excluded.max_attempts, excluded.grp, excluded.catch_up,
           excluded.enabled)
    RETURNING s.name, s.queue, s.cron, s.payload, s.timezone, s.priority, s.max_attempts, s.grp,
              s.catch_up, s.enabled, s.version, s.set_at, s.last_slot, s.last_item_id
)
SELECT u.*, pg_notify(%(channel)s, '')::text FROM upserted AS u

-- name: get_schedule
-- One schedule, its columns in Schedule's order (rows.schedule).
SELECT name, queue, cron, payload, timezone, priority, max_attempts, grp, catch_up, enabled,
       version, set_at, last_slot, last_item_id
FROM {schema}.schedules WHERE name = %(name)s

-- name: list_schedules
-- Every schedule by name (byte order, as the other backends sort).
SELECT name, queue, cron, payload, timezone, priority, max_attempts, grp, catch_up, enabled,
       version, set_at, last_slot, last_item_id
FROM {schema}.schedules ORDER BY name COLLATE "C"

-- name: remove_schedule
-- Returns a row (and notifies schedulers, at commit) when the schedule existed.
WITH gone AS (DELETE FROM {schema}.schedules WHERE name = %(name)s RETURNING name)
SELECT gone.name, pg_notify(%(channel)s, '')::text FROM gone

-- name: take_slot
-- The first half of fire_schedule: the slot becomes the schedule's last_slot only while the
-- schedule is enabled, still at the version the scheduler read, and the slot is after both set_at
-- and last_slot. The row lock it takes is held to commit, so a concurrent offer of the same slot
-- waits, then finds last_slot = slot and takes nothing. Returns the queue to insert the item
-- into (the caller then inserts it as enqueue does and records its id with slot_item).
WITH clock AS (SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now)
UPDATE {schema}.schedules AS s
SET last_slot = %(slot)s::timestamptz, updated_at = clock.now
FROM clock
WHERE s.name = %(name)s AND s.enabled AND s.version = %(version)s
  AND %(slot)s::timestamptz > s.set_at
  AND (s.last_slot IS NULL OR %(slot)s::timestamptz > s.last_slot)
RETURNING s.queue

-- name: slot_item
-- The second half of fire_schedule: the item the slot enqueued.
UPDATE {schema}.schedules SET last_item_id = %(item_id)s WHERE name = %(name)s
