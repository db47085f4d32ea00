-- workclaim SQLite schema, version 2: the attempt history and per-queue counts.

-- Whether the item's state changes are recorded (set at enqueue from NewItem.history, fixed for
-- the item's life). Items that existed before this migration keep history on, as the default
-- settings do; their history starts with their next state change.
ALTER TABLE workclaim_items ADD COLUMN history INTEGER NOT NULL DEFAULT 1;

-- The kind of the item's last state change. Every state-changing statement sets it, and setting
-- it fires workclaim_items_history below: the event is written inside the very statement that
-- makes the change, whoever runs it (also another client's reap of an expired lease).
ALTER TABLE workclaim_items ADD COLUMN last_event TEXT;

-- One row per event, clustered by item: an item's events are read (and purged) together.
-- seq numbers the item's events in the order written (1, 2, ...), so ties in `at` keep order.
CREATE TABLE workclaim_history (
    item_id  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    at       INTEGER NOT NULL,
    attempt  INTEGER NOT NULL,
    status   TEXT    NOT NULL,
    token    INTEGER,
    worker   TEXT,
    error    TEXT,
    PRIMARY KEY (item_id, seq)
) WITHOUT ROWID;

-- attempt: the lease's for lease events (old.attempts, since release gives its attempt back),
-- the new count for a claim and a requeue (0), the count the item had for the others.
-- token/worker: the lease's; none for the admin events requeued and cancelled.
CREATE TRIGGER workclaim_items_history
AFTER UPDATE OF last_event ON workclaim_items
WHEN new.history
BEGIN
    INSERT INTO workclaim_history (item_id, seq, kind, at, attempt, status, token, worker, error)
    VALUES (
        new.id,
        coalesce((SELECT max(seq) FROM workclaim_history WHERE item_id = new.id), 0) + 1,
        new.last_event,
        new.updated_at,
        CASE WHEN new.last_event IN ('claimed', 'requeued') THEN new.attempts ELSE old.attempts END,
        new.status,
        CASE WHEN new.last_event IN ('requeued', 'cancelled') THEN NULL ELSE new.token END,
        CASE WHEN new.last_event IN ('requeued', 'cancelled') THEN NULL ELSE new.worker END,
        CASE WHEN new.last_event IN ('failed', 'expired') THEN new.last_error END
    );
END;

-- Per queue: how many items it holds ('total') and how many are 'dead' or 'cancelled', so that
-- `stats` and `queues` never count finished rows: done = total - queued - claimed - dead -
-- cancelled, where queued and claimed are counted in their partial indexes (bounded by live
-- work). Kept by triggers on insert, on the rare moves into and out of dead/cancelled, and on
-- delete (purge); a claim or a completion touches none of these rows.
CREATE TABLE workclaim_queue_counts (
    queue   TEXT    NOT NULL,
    status  TEXT    NOT NULL CHECK (status IN ('total', 'dead', 'cancelled')),
    n       INTEGER NOT NULL,
    PRIMARY KEY (queue, status)
) WITHOUT ROWID;

INSERT INTO workclaim_queue_counts (queue, status, n)
SELECT queue, 'total', count(*) FROM workclaim_items GROUP BY queue;

INSERT INTO workclaim_queue_counts (queue, status, n)
SELECT queue, status, count(*) FROM workclaim_items
WHERE status IN ('dead', 'cancelled')
GROUP BY queue, status;

CREATE TRIGGER workclaim_items_count_insert
AFTER INSERT ON workclaim_items
BEGIN
    INSERT INTO workclaim_queue_counts (queue, status, n) VALUES (new.queue, 'total', 1)
    ON CONFLICT (queue, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER workclaim_items_count_failed
AFTER UPDATE OF status ON workclaim_items
WHEN new.status IN ('dead', 'cancelled') AND old.status NOT IN ('dead', 'cancelled')
BEGIN
    INSERT INTO workclaim_queue_counts (queue, status, n) VALUES (new.queue, new.status, 1)
    ON CONFLICT (queue, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER workclaim_items_count_revived
AFTER UPDATE OF status ON workclaim_items
WHEN old.status IN ('dead', 'cancelled') AND new.status NOT IN ('dead', 'cancelled')
BEGIN
    UPDATE workclaim_queue_counts SET n = n - 1 WHERE queue = old.queue AND status = old.status;
END;

-- A deleted (purged) item takes its history and its place in the counts with it, in the
-- purge's own transaction.
CREATE TRIGGER workclaim_items_delete
AFTER DELETE ON workclaim_items
BEGIN
    UPDATE workclaim_queue_counts SET n = n - 1
    WHERE queue = old.queue AND status IN ('total', old.status);
    DELETE FROM workclaim_history WHERE item_id = old.id;
END;

-- Dead and cancelled items are listed by queue and id (the dashboard's dead list) without
-- walking the finished ones; a claim or completion never touches this index.
CREATE INDEX workclaim_items_failed
    ON workclaim_items (queue, status, id) WHERE status IN ('dead', 'cancelled');
