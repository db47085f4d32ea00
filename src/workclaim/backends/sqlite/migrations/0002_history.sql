-- workclaim SQLite schema, version 2: the attempt history and cheap finished counts.

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
-- the new count for a claim, and the count the item had for requeued/cancelled.
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
        CASE WHEN new.last_event = 'claimed' THEN new.attempts ELSE old.attempts END,
        new.status,
        CASE WHEN new.last_event IN ('requeued', 'cancelled') THEN NULL ELSE new.token END,
        CASE WHEN new.last_event IN ('requeued', 'cancelled') THEN NULL ELSE new.worker END,
        CASE WHEN new.last_event IN ('failed', 'expired') THEN new.last_error END
    );
END;

-- Finished items per queue and status, so that `stats` never counts millions of finished rows.
-- Kept by triggers on the transitions into and out of a finished status and on delete (purge).
-- Queued and claimed items are counted from their partial indexes (bounded by live work).
CREATE TABLE workclaim_finished_counts (
    queue   TEXT    NOT NULL,
    status  TEXT    NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (queue, status)
) WITHOUT ROWID;

INSERT INTO workclaim_finished_counts (queue, status, n)
SELECT queue, status, count(*) FROM workclaim_items
WHERE status IN ('done', 'dead', 'cancelled')
GROUP BY queue, status;

CREATE TRIGGER workclaim_items_finish
AFTER UPDATE OF status ON workclaim_items
WHEN new.status IN ('done', 'dead', 'cancelled') AND old.status NOT IN ('done', 'dead', 'cancelled')
BEGIN
    INSERT INTO workclaim_finished_counts (queue, status, n) VALUES (new.queue, new.status, 1)
    ON CONFLICT (queue, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER workclaim_items_unfinish
AFTER UPDATE OF status ON workclaim_items
WHEN old.status IN ('done', 'dead', 'cancelled') AND new.status NOT IN ('done', 'dead', 'cancelled')
BEGIN
    UPDATE workclaim_finished_counts SET n = n - 1 WHERE queue = old.queue AND status = old.status;
END;

-- A deleted (purged) item takes its history and its place in the counts with it, in the
-- purge's own transaction.
CREATE TRIGGER workclaim_items_delete
AFTER DELETE ON workclaim_items
BEGIN
    UPDATE workclaim_finished_counts SET n = n - 1
    WHERE queue = old.queue AND status = old.status
      AND old.status IN ('done', 'dead', 'cancelled');
    DELETE FROM workclaim_history WHERE item_id = old.id;
END;

-- Dead and cancelled items are listed by queue and id (the dashboard's dead list) without
-- walking the finished ones; a claim or completion never touches this index.
CREATE INDEX workclaim_items_failed
    ON workclaim_items (queue, status, id) WHERE status IN ('dead', 'cancelled');
