-- Named queries of the MariaDB backend's schedules (schedules.py). Times are microseconds;
-- parameters are MySQLdb's %(name)s.

-- name: get_schedule
SELECT name, queue, cron, payload, timezone, priority, max_attempts, grp, catch_up, enabled,
       version, set_at, last_slot, last_item_id
FROM workclaim_schedules WHERE name = %(name)s

-- name: list_schedules
SELECT name, queue, cron, payload, timezone, priority, max_attempts, grp, catch_up, enabled,
       version, set_at, last_slot, last_item_id
FROM workclaim_schedules ORDER BY name

-- name: create_schedule
-- The first half of set_schedule: create the schedule (version 1, set at now) if there is none,
-- else change nothing; either way the row is then locked (InnoDB locks the duplicate it finds)
-- to the end of the transaction. Two sessions creating one name: the second waits for the
-- first's row, then finds it, instead of failing on the duplicate key.
INSERT INTO workclaim_schedules
    (name, queue, cron, timezone, payload, priority, max_attempts, grp, catch_up, enabled,
     version, set_at, created_at, updated_at)
VALUES (%(name)s, %(queue)s, %(cron)s, %(timezone)s, %(payload)s, %(priority)s,
        %(max_attempts)s, %(grp)s, %(catch_up)s, %(enabled)s, 1, %(now)s, %(now)s, %(now)s)
ON DUPLICATE KEY UPDATE name = name

-- name: lock_schedule
-- The settings as stored, read under the row lock create_schedule took (a locking read sees the
-- latest committed row whatever the isolation level). schedules.py compares them with the new
-- ones in Python: exact text, with none of the SQL collation's trailing-space leniency.
SELECT queue, cron, timezone, payload, priority, max_attempts, grp, catch_up, enabled
FROM workclaim_schedules WHERE name = %(name)s FOR UPDATE

-- name: replace_schedule
-- The second half of set_schedule, only when a setting differs: the new settings, version + 1
-- and set_at = now; last_slot and last_item_id kept, so no slot before the change fires.
UPDATE workclaim_schedules
SET queue = %(queue)s, cron = %(cron)s, timezone = %(timezone)s, payload = %(payload)s,
    priority = %(priority)s, max_attempts = %(max_attempts)s, grp = %(grp)s,
    catch_up = %(catch_up)s, enabled = %(enabled)s, version = version + 1, set_at = %(now)s,
    updated_at = %(now)s
WHERE name = %(name)s

-- name: remove_schedule
DELETE FROM workclaim_schedules WHERE name = %(name)s

-- name: take_slot
-- The first half of fire: the slot becomes the schedule's last_slot only while the schedule is
-- enabled, still at the version the scheduler read, and the slot is after both set_at and
-- last_slot. One conditional write, which reads the latest committed row and keeps its lock to
-- commit: a concurrent offer of the same slot waits, then finds last_slot = slot and matches
-- nothing. One row changed: the slot is this transaction's (MariaDB 10.11 has no
-- UPDATE ... RETURNING; slot_queue reads the queue next).
UPDATE workclaim_schedules
SET last_slot = %(slot)s, updated_at = %(now)s
WHERE name = %(name)s AND enabled AND version = %(version)s
  AND %(slot)s > set_at AND (last_slot IS NULL OR %(slot)s > last_slot)

-- name: slot_queue
-- The queue to insert the taken slot's item into (the row is this transaction's, locked).
SELECT queue FROM workclaim_schedules WHERE name = %(name)s

-- name: record_item
-- The second half of fire: the item the slot enqueued.
UPDATE workclaim_schedules SET last_item_id = %(item_id)s WHERE name = %(name)s
