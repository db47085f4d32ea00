-- workclaim MariaDB schema, version 3: schedules (docs/contract.md, "Schedules").
--
-- One row per schedule, and the record of the last slot it fired: items a schedule enqueues are
-- ordinary items (dedupe key `schedule:<name>:<slot>`), so no item table changes. Times are
-- BIGINT microseconds since the epoch, as every other time of this store.
--
-- `payload` is the item's JSON text exactly as given (LONGTEXT, not JSON: MariaDB's JSON is
-- LONGTEXT with a check, and the text given is what "identical settings" compares and what the
-- slot's item gets). `grp` is NULL for the queue's default group, `max_attempts` NULL for the
-- queue's default. `version` grows with every change of the settings and `set_at` is when the
-- current version was set; `last_slot` / `last_item_id` record the most recent slot enqueued.
-- `fire` (schedules.sql, take_slot) accepts a slot only while the row still has the version
-- the scheduler read, is enabled, and the slot is after both `set_at` and `last_slot`, in the
-- transaction that inserts its item, so each slot is enqueued at most once.
--
-- Names are utf8mb4_bin (case-sensitive, as on the other stores). Slots are looked up by the
-- primary key only: no other index. Safe to run again (IF NOT EXISTS), as every migration here.
CREATE TABLE IF NOT EXISTS workclaim_schedules (
    name          VARCHAR(80)   NOT NULL,
    queue         VARCHAR(128)  NOT NULL,
    cron          TEXT          NOT NULL,
    timezone      VARCHAR(255)  NOT NULL,
    payload       LONGTEXT      NOT NULL,
    priority      INT           NOT NULL,
    max_attempts  INT           NULL,
    grp           VARCHAR(128)  NULL,
    catch_up      VARCHAR(6)    NOT NULL,
    enabled       BOOLEAN       NOT NULL,
    version       BIGINT        NOT NULL,
    set_at        BIGINT        NOT NULL,
    last_slot     BIGINT        NULL,
    last_item_id  BIGINT        NULL,
    created_at    BIGINT        NOT NULL,
    updated_at    BIGINT        NOT NULL,
    PRIMARY KEY (name),
    CONSTRAINT workclaim_schedules_catch_up CHECK (catch_up IN ('latest', 'none', 'all'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
