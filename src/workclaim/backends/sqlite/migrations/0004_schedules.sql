-- workclaim SQLite schema, version 4: schedules (docs/contract.md, "Schedules").

-- One row per schedule. Times are integer microseconds like every other time of this store;
-- `payload` is the item's JSON text, `grp` NULL for the queue's default group, `max_attempts`
-- NULL for the queue's default. `version` grows with every change of the settings and `set_at`
-- is when the current version was set; `last_slot` / `last_item_id` record the most recent slot
-- enqueued. `fire` (schedules.sql) accepts a slot only after both `set_at` and `last_slot`, in
-- the same transaction that inserts its item, so each slot is enqueued at most once.
CREATE TABLE workclaim_schedules (
    name          TEXT    PRIMARY KEY,
    queue         TEXT    NOT NULL,
    cron          TEXT    NOT NULL,
    timezone      TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    priority      INTEGER NOT NULL,
    max_attempts  INTEGER,
    grp           TEXT,
    catch_up      TEXT    NOT NULL CHECK (catch_up IN ('latest', 'none', 'all')),
    enabled       INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    set_at        INTEGER NOT NULL,
    last_slot     INTEGER,
    last_item_id  INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;
