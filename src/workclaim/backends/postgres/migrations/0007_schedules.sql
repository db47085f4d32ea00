-- workclaim PostgreSQL schema, version 7: schedules (docs/contract.md, "Schedules"): one row per
-- schedule, the record of the last slot it fired, and nothing else. Items a schedule enqueues are
-- ordinary items (dedupe key `schedule:<name>:<slot>`), so no item table changes.
--
-- `version` grows with every change of the settings and `set_at` is when the current version
-- was set (the store clock); `fire_schedule` accepts a slot only while the row still has the
-- version the scheduler read, is enabled, and the slot is after both `set_at` and `last_slot`,
-- in the transaction that inserts the slot's item (queries.sql, fire_schedule), so each slot is
-- enqueued at most once however many schedulers offer it.
CREATE TABLE {schema}.schedules (
    name          text        PRIMARY KEY,
    queue         text        NOT NULL,
    cron          text        NOT NULL,
    timezone      text        NOT NULL,
    -- json (not jsonb), as items.payload: the exact text `schedule` was given, compared as text,
    -- so "identical settings" and the slot's item's payload are the same as on SQLite and Redis
    -- (jsonb would reorder keys: a payload differing only in key order would be "identical").
    payload       json        NOT NULL,
    priority      integer     NOT NULL,
    max_attempts  integer,
    grp           text,
    catch_up      text        NOT NULL CHECK (catch_up IN ('latest', 'none', 'all')),
    enabled       boolean     NOT NULL,
    version       bigint      NOT NULL,
    set_at        timestamptz NOT NULL,
    last_slot     timestamptz,
    last_item_id  bigint,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
