-- workclaim PostgreSQL schema, version 9: stats() without counting the queued items.
--
-- stats counted a queue's queued items through items_claimable, a walk as long as the queue
-- (89 ms at 100,000 queued, issue 18). Now every change of an item into or out of `queued` is
-- counted by statement-level triggers on items, in the writer's own transaction, so the counts
-- are exact at every snapshot, whoever writes (the verbs, the functions, a schedule's slot, a
-- caller's own transaction). The triggers see the statement's rows in transition tables, so a
-- claim of 32 items writes one counter row, not 32.
--
-- Two tables, so that no writer waits for another on a shared row:
-- - queued_counts: one row per queue and shard (pg_backend_pid() % 64, as finished_counts),
--   changed by the UPDATE and DELETE triggers (claims, releases, retries, reaps, cancels,
--   requeues). Those run in workclaim's own short transactions; two sessions meet on a row only
--   when their shards collide, and then for the rest of one statement's transaction. The claim
--   path thus writes one more HOT update of a per-session row per statement that moves items,
--   never a row shared by all workers.
-- - queued_added: one row per inserting statement (and queue), appended, never updated. An
--   enqueue may run in the caller's own transaction (transactional enqueue), held open as long
--   as the caller likes: an update of a shared counter there would hold its row lock until the
--   caller commits and stall every claimer of that shard. An insert locks nothing anyone waits
--   for. `fold_queued` (queries.sql) moves these rows into queued_counts, from stats (that
--   queue's) and from the retention pass (all), so they stay few.
-- stats then sums at most 64 counter rows and the rows added since the last fold.
--
-- Lock order: counter rows are taken after every item row of the statement (AFTER triggers run
-- at the end of the statement, after its finished_counts writes too), and by queue within a
-- statement. Claimed items are still counted through items_leases, whose size is the leases in
-- flight, not the queue's depth.

CREATE TABLE {schema}.queued_counts (
    queue   text    NOT NULL,
    shard   integer NOT NULL,
    n       bigint  NOT NULL,
    PRIMARY KEY (queue, shard)
) WITH (fillfactor = 10);

CREATE TABLE {schema}.queued_added (
    id      bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue   text    NOT NULL,
    n       bigint  NOT NULL
);
CREATE INDEX queued_added_queue ON {schema}.queued_added (queue);

-- Inserted items: one appended row per queue of the statement (items are always inserted
-- queued; the status test keeps the count right if that ever changes).
CREATE FUNCTION {schema}.count_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {schema}.queued_added (queue, n)
    SELECT queue, count(*) FROM new_rows WHERE status = 'queued' GROUP BY queue ORDER BY queue;
    RETURN NULL;
END
$$;

-- Changed or deleted items: the net change of each queue's queued count, added to this
-- session's shard row, by queue. The UPDATE first (a HOT update of an existing row: an
-- INSERT ... ON CONFLICT on every statement also probes the index for the insert and
-- WAL-logs a row lock, as queries.sql's complete says), the insert only for a new shard row.
CREATE FUNCTION {schema}.count_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
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
            UPDATE {schema}.queued_counts SET n = n + r.n
            WHERE queue = r.queue AND shard = v_shard;
            IF NOT FOUND THEN
                INSERT INTO {schema}.queued_counts AS c (queue, shard, n)
                VALUES (r.queue, v_shard, r.n)
                ON CONFLICT (queue, shard) DO UPDATE SET n = c.n + excluded.n;
            END IF;
        END LOOP;
    ELSE
        FOR r IN
            SELECT queue, -count(*) AS n FROM old_rows WHERE status = 'queued'
            GROUP BY queue ORDER BY queue
        LOOP
            INSERT INTO {schema}.queued_counts AS c (queue, shard, n)
            VALUES (r.queue, v_shard, r.n)
            ON CONFLICT (queue, shard) DO UPDATE SET n = c.n + excluded.n;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;

-- A trigger with transition tables serves one event, hence three. Their plans do not depend on
-- statistics either (the transition tables are read whole by nature; the counter lookups are
-- primary-key probes), as the hot functions' (version 8).
ALTER FUNCTION {schema}.count_changed() SET enable_seqscan = off;

CREATE TRIGGER items_count_inserted AFTER INSERT ON {schema}.items
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.count_inserted();
CREATE TRIGGER items_count_updated AFTER UPDATE ON {schema}.items
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.count_changed();
CREATE TRIGGER items_count_deleted AFTER DELETE ON {schema}.items
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.count_changed();

-- The items queued now. CREATE TRIGGER locked items against writes until this transaction
-- commits, so no change falls between this count and the triggers.
INSERT INTO {schema}.queued_counts (queue, shard, n)
SELECT queue, 0, count(*) FROM {schema}.items WHERE status = 'queued' GROUP BY queue;
