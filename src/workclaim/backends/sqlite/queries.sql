-- Named queries of the SQLite backend. Parameters are named (:name); times are microseconds.

-- name: reap_expired
-- Return a bounded batch of expired leases to queued, or to dead when no attempt is left.
-- Runs inside the claim's BEGIN IMMEDIATE transaction, so liveness needs no separate reaper.
UPDATE workclaim_items
SET status       = CASE WHEN attempts < max_attempts THEN 'queued' ELSE 'dead' END,
    last_error   = 'lease expired (worker ' || coalesce(worker, '?') || ', token ' || token || ')',
    expires_at   = NULL,
    finished_at  = CASE WHEN attempts < max_attempts THEN NULL ELSE :now END,
    updated_at   = :now
WHERE id IN (
    SELECT id FROM workclaim_items
    WHERE status = 'claimed' AND expires_at <= :now
    ORDER BY expires_at
    LIMIT :limit
)

-- name: claim_one_queue
-- Lease up to :limit claimable items of one queue in claim order. The inner SELECT walks
-- workclaim_items_claimable in order; row_number() gives each item its own token above the
-- counter's value, which the caller then advances by the number of rows (same transaction).
UPDATE workclaim_items AS i
SET status     = 'claimed',
    token      = (SELECT value FROM workclaim_counters WHERE name = 'token') + c.rn,
    attempts   = i.attempts + 1,
    worker     = :worker,
    expires_at = :now + :lease_us,
    lease_us   = :lease_us,
    updated_at = :now
FROM (
    SELECT id, row_number() OVER (ORDER BY priority, run_at, id) AS rn
    FROM (
        SELECT id, priority, run_at FROM workclaim_items
        WHERE queue = :queue AND status = 'queued' AND run_at <= :now
        ORDER BY priority, run_at, id
        LIMIT :limit
    )
) AS c
WHERE i.id = c.id
RETURNING id, queue, payload, token, attempts, max_attempts, expires_at

-- name: claim_many_queues
-- The same over several queues (:queues is a JSON array of names).
UPDATE workclaim_items AS i
SET status     = 'claimed',
    token      = (SELECT value FROM workclaim_counters WHERE name = 'token') + c.rn,
    attempts   = i.attempts + 1,
    worker     = :worker,
    expires_at = :now + :lease_us,
    lease_us   = :lease_us,
    updated_at = :now
FROM (
    SELECT id, row_number() OVER (ORDER BY priority, run_at, id) AS rn
    FROM (
        SELECT id, priority, run_at FROM workclaim_items
        WHERE queue IN (SELECT value FROM json_each(:queues))
          AND status = 'queued' AND run_at <= :now
        ORDER BY priority, run_at, id
        LIMIT :limit
    )
) AS c
WHERE i.id = c.id
RETURNING id, queue, payload, token, attempts, max_attempts, expires_at

-- name: advance_token
-- Move the token counter past the tokens the claim just handed out.
UPDATE workclaim_counters SET value = value + :n WHERE name = 'token'

-- name: find_dedupe
-- The live item holding a dedupe key in a queue, if any.
SELECT id FROM workclaim_items
WHERE queue = :queue AND dedupe_key = :dedupe_key AND status IN ('queued', 'claimed')

-- name: insert_item
INSERT INTO workclaim_items
    (queue, payload, status, priority, run_at, max_attempts, dedupe_key, created_at, updated_at)
VALUES (:queue, :payload, 'queued', :priority, :run_at, :max_attempts, :dedupe_key, :now, :now)
RETURNING id

-- name: heartbeat
-- Fenced: only the current, unexpired lease of this worker may extend itself.
-- A NULL :extend_us extends by the lease's own length.
UPDATE workclaim_items
SET expires_at = :now + coalesce(:extend_us, lease_us), updated_at = :now
WHERE id = :id AND token = :token AND worker = :worker
  AND status = 'claimed' AND expires_at > :now
RETURNING expires_at

-- name: complete
UPDATE workclaim_items
SET status = 'done', result = :result, expires_at = NULL,
    ended_token = token, ended_op = 'complete', ended_status = 'done',
    finished_at = :now, updated_at = :now
WHERE id = :id AND token = :token AND worker = :worker
  AND status = 'claimed' AND expires_at > :now

-- name: release
-- The attempt is given back: a released item has not used an execution.
UPDATE workclaim_items
SET status = 'queued', attempts = attempts - 1, run_at = :now + :delay_us, expires_at = NULL,
    ended_token = token, ended_op = 'release', ended_status = 'queued', updated_at = :now
WHERE id = :id AND token = :token AND worker = :worker
  AND status = 'claimed' AND expires_at > :now

-- name: fail
-- Retry at :now + :retry_us while attempts remain and a retry was asked for; else dead.
-- SET expressions all see the row as it was, so the CASEs agree with each other.
UPDATE workclaim_items
SET status       = CASE WHEN :retry_us IS NOT NULL AND attempts < max_attempts
                        THEN 'queued' ELSE 'dead' END,
    run_at       = CASE WHEN :retry_us IS NOT NULL AND attempts < max_attempts
                        THEN :now + :retry_us ELSE run_at END,
    finished_at  = CASE WHEN :retry_us IS NOT NULL AND attempts < max_attempts
                        THEN NULL ELSE :now END,
    ended_status = CASE WHEN :retry_us IS NOT NULL AND attempts < max_attempts
                        THEN 'queued' ELSE 'dead' END,
    last_error = :error, expires_at = NULL,
    ended_token = token, ended_op = 'fail', updated_at = :now
WHERE id = :id AND token = :token AND worker = :worker
  AND status = 'claimed' AND expires_at > :now
RETURNING status

-- name: lease_end
-- How the item's last lease ended, to recognise a repeated call.
SELECT ended_token, ended_op, ended_status FROM workclaim_items WHERE id = :id

-- name: get_item
SELECT id, queue, payload, status, priority, run_at, attempts, max_attempts, dedupe_key,
       worker, expires_at, last_error, result, created_at, updated_at
FROM workclaim_items WHERE id = :id

-- name: status_of
SELECT status FROM workclaim_items WHERE id = :id

-- name: stats
SELECT status, count(*) AS n,
       sum(CASE WHEN status = 'claimed' AND expires_at <= :now THEN 1 ELSE 0 END) AS expired
FROM workclaim_items WHERE queue = :queue GROUP BY status

-- name: cancel
UPDATE workclaim_items
SET status = 'cancelled', finished_at = :now, updated_at = :now
WHERE id = :id AND status = 'queued'

-- name: requeue
UPDATE workclaim_items
SET status = 'queued', attempts = 0, max_attempts = coalesce(:max_attempts, max_attempts),
    run_at = :now, finished_at = NULL, expires_at = NULL, updated_at = :now
WHERE id = :id AND status = 'dead'

-- name: purge
-- At most :limit finished items (of :queue, or of every queue when it is NULL) older than :cutoff.
DELETE FROM workclaim_items
WHERE id IN (
    SELECT id FROM workclaim_items
    WHERE status IN ('done', 'dead', 'cancelled') AND finished_at <= :cutoff
      AND (:queue IS NULL OR queue = :queue)
    LIMIT :limit
)

-- name: next_run_at
-- The earliest future run_at among queued items of the given queues (JSON array).
SELECT min(run_at) FROM workclaim_items
WHERE queue IN (SELECT value FROM json_each(:queues)) AND status = 'queued' AND run_at > :now

-- name: next_expiry
-- The earliest lease expiry after now, from the front of workclaim_items_leases.
SELECT min(expires_at) FROM workclaim_items WHERE status = 'claimed' AND expires_at > :now
