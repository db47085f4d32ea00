-- Named queries of the SQLite backend's schedules (schedules.py). Times are microseconds.

-- name: get_schedule
SELECT name, queue, cron, payload, timezone, priority, max_attempts, grp, catch_up, enabled,
       version, set_at, last_slot, last_item_id
FROM workclaim_schedules WHERE name = :name

-- name: list_schedules
SELECT name, queue, cron, payload, timezone, priority, max_attempts, grp, catch_up, enabled,
       version, set_at, last_slot, last_item_id
FROM workclaim_schedules ORDER BY name

-- name: set_schedule
-- Create the schedule (version 1), or replace its settings when any differs: version + 1 and
-- set_at = now, last_slot and last_item_id kept. Identical settings match the WHERE of no row,
-- so the row is left exactly as it was (its version and set_at too).
INSERT INTO workclaim_schedules
    (name, queue, cron, timezone, payload, priority, max_attempts, grp, catch_up, enabled,
     version, set_at, created_at, updated_at)
VALUES (:name, :queue, :cron, :timezone, :payload, :priority, :max_attempts, :grp, :catch_up,
        :enabled, 1, :now, :now, :now)
ON CONFLICT (name) DO UPDATE
SET queue = excluded.queue, cron = excluded.cron, timezone = excluded.timezone,
    payload = excluded.payload, priority = excluded.priority,
    max_attempts = excluded.max_attempts, grp = excluded.grp, catch_up = excluded.catch_up,
    enabled = excluded.enabled, version = version + 1, set_at = excluded.set_at,
    updated_at = excluded.updated_at
WHERE (queue, cron, timezone, payload, priority, max_attempts, grp, catch_up, enabled)
      IS NOT (excluded.queue, excluded.cron, excluded.timezone, excluded.payload,
              excluded.priority, excluded.max_attempts, excluded.grp, excluded.catch_up,
              excluded.enabled)

-- name: remove_schedule
DELETE FROM workclaim_schedules WHERE name = :name RETURNING 1

-- name: take_slot
-- The slot's claim on the schedule: only an existing, enabled schedule still at :version, and
-- only a slot after both set_at and last_slot. Returns the schedule's queue when it matched;
-- the caller then inserts the item and records it (record_item) in the same transaction.
UPDATE workclaim_schedules
SET last_slot = :slot, updated_at = :now
WHERE name = :name AND enabled = 1 AND version = :version
  AND :slot > set_at AND (last_slot IS NULL OR :slot > last_slot)
RETURNING queue

-- name: record_item
UPDATE workclaim_schedules SET last_item_id = :item_id WHERE name = :name
