-- Named queries of the SQLite backend. Parameters are named (:name); times are microseconds.
-- A transaction's statements get its time as :now, read once it holds the write lock; a write
-- that runs as one autocommit statement reads it as workclaim_now() (see _Connection in
-- backend.py), since it takes the write lock only as it starts.
-- Every state-changing statement sets last_event: the trigger workclaim_items_history
-- (migrations/0002_history.sql) then writes the item's history event inside that statement.

-- name: probe_one
-- The claim's first look, one statement: whether any lease has expired (one probe of
-- workclaim_items_leases, a third of what running reap_expired costs when there is nothing to
-- reap, the usual case on every claim), and whether the queue is managed (flow control: a
-- policy, a pause or groups; one probe of workclaim_policies), which sends the claim to flow.py.
SELECT EXISTS (SELECT 1 FROM workclaim_items WHERE status = 'claimed' AND expires_at <= :now),
       coalesce((SELECT managed FROM workclaim_policies WHERE queue = :queue), 0)

-- name: probe_many
-- The same for several queues (:queues, a JSON array): managed if any of them is.
SELECT EXISTS (SELECT 1 FROM workclaim_items WHERE status = 'claimed' AND expires_at <= :now),
       coalesce((SELECT max(managed) FROM workclaim_policies
                 WHERE queue IN (SELECT value FROM json_each(:queues))), 0)

-- name: reap_expired
-- Return bounded batches of expired leases to queued, or to dead when no attempt is left: the
-- oldest :limit of the claimed queues (:queues, a JSON array), so that their expired items are
-- claimable by this claim however many leases expired elsewhere, and the oldest :limit of any
-- queue, so that queues nobody claims are reaped too. Runs inside the claim's BEGIN IMMEDIATE
-- transaction, so liveness needs no separate reaper. Both walk the expired front of
-- workclaim_items_leases; the first may read all of it to find its queues' leases (no lease
-- index has the queue: one more would cost every claim), and the second drains it.
UPDATE workclaim_items
SET status       = CASE WHEN attempts < max_attempts THEN 'queued' ELSE 'dead' END,
    last_event   = 'expired',
    last_error   = 'lease expired (worker ' || coalesce(worker, '?') || ', token ' || token || ')',
    expires_at   = NULL,
    finished_at  = CASE WHEN attempts < max_attempts THEN NULL ELSE :now END,
    updated_at   = :now
WHERE id IN (
    SELECT id FROM (
        SELECT id FROM workclaim_items
        WHERE status = 'claimed' AND expires_at <= :now
          AND queue IN (SELECT value FROM json_each(:queues))
        ORDER BY expires_at
        LIMIT :limit
    )
    UNION ALL
    SELECT id FROM (
        SELECT id FROM workclaim_items
        WHERE status = 'claimed' AND expires_at <= :now
        ORDER BY expires_at
        LIMIT :limit
    )
)

-- name: claim_one_queue
-- Lease up to :limit claimable items of one queue in claim order. The inner SELECT walks
-- workclaim_items_claimable in order; row_number() gives each item its own token above the
-- counter's value, which the caller then advances by the number of rows (same transaction).
UPDATE workclaim_items AS i
SET status     = 'claimed',
    last_event = 'claimed',
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
RETURNING id, queue, payload, token, attempts, max_attempts, expires_at, created_at

-- name: claim_many_queues
-- The same over several queues (:queues is a JSON array of names).
UPDATE workclaim_items AS i
SET status     = 'claimed',
    last_event = 'claimed',
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
RETURNING id, queue, payload, token, attempts, max_attempts, expires_at, created_at

-- name: advance_token
-- Move the token counter past the tokens the claim just handed out.
UPDATE workclaim_counters SET value = value + :n WHERE name = 'token'

-- name: find_dedupe
-- The live item holding a dedupe key in a queue, if any.
SELECT id FROM workclaim_items
WHERE queue = :queue AND dedupe_key = :dedupe_key AND status IN ('queued', 'claimed')

-- name: insert_item
-- :flow: whether the queue is managed (flow control), so that its managed indexes hold the item.
INSERT INTO workclaim_items
    (queue, payload, status, priority, run_at, max_attempts, dedupe_key, history,
     created_at, updated_at, grp, flow)
VALUES (:queue, :payload, 'queued', :priority, :run_at, :max_attempts, :dedupe_key, :history,
        :now, :now, :grp, :flow)
RETURNING id

-- name: heartbeat
-- Fenced: only the current, unexpired lease of this worker may extend itself.
-- A NULL :extend_us extends by the lease's own length.
UPDATE workclaim_items
SET expires_at = workclaim_now() + coalesce(:extend_us, lease_us), last_event = 'heartbeat',
    updated_at = workclaim_now()
WHERE id = :id AND token = :token AND worker = :worker
  AND status = 'claimed' AND expires_at > workclaim_now()
RETURNING expires_at

-- name: complete
-- Returns the item's flow flag: a completion in a managed queue frees a slot, so it wakes the
-- waiting claims of this process (other processes see the commit through their poller).
UPDATE workclaim_items
SET status = 'done', last_event = 'completed', result = :result, expires_at = NULL,
    ended_token = token, ended_op = 'complete', ended_status = 'done',
    finished_at = workclaim_now(), updated_at = workclaim_now()
WHERE id = :id AND token = :token AND worker = :worker
  AND status = 'claimed' AND expires_at > workclaim_now()
RETURNING flow

-- name: release
-- The attempt is given back: a released item has not used an execution.
UPDATE workclaim_items
SET status = 'queued', last_event = 'released', attempts = attempts - 1,
    run_at = workclaim_now() + :delay_us, expires_at = NULL,
    ended_token = token, ended_op = 'release', ended_status = 'queued',
    updated_at = workclaim_now()
WHERE id = :id AND token = :token AND worker = :worker
  AND status = 'claimed' AND expires_at > workclaim_now()
RETURNING 1

-- name: fail
-- Retry at now + :retry_us while attempts remain and a retry was asked for; else dead.
-- SET expressions all see the row as it was, so the CASEs agree with each other.
UPDATE workclaim_items
SET status       = CASE WHEN :retry_us IS NOT NULL AND attempts < max_attempts
                        THEN 'queued' ELSE 'dead' END,
    run_at       = CASE WHEN :retry_us IS NOT NULL AND attempts < max_attempts
                        THEN workclaim_now() + :retry_us ELSE run_at END,
    finished_at  = CASE WHEN :retry_us IS NOT NULL AND attempts < max_attempts
                        THEN NULL ELSE workclaim_now() END,
    ended_status = CASE WHEN :retry_us IS NOT NULL AND attempts < max_attempts
                        THEN 'queued' ELSE 'dead' END,
    last_event = 'failed', last_error = :error, expires_at = NULL,
    ended_token = token, ended_op = 'fail', updated_at = workclaim_now()
WHERE id = :id AND token = :token AND worker = :worker
  AND status = 'claimed' AND expires_at > workclaim_now()
RETURNING status, flow

-- name: lease_end
-- How the item's last lease ended, to recognise a repeated call.
SELECT ended_token, ended_op, ended_status FROM workclaim_items WHERE id = :id

-- name: get_item
SELECT id, queue, payload, status, priority, run_at, attempts, max_attempts, dedupe_key,
       worker, expires_at, last_error, result, created_at, updated_at, grp
FROM workclaim_items WHERE id = :id

-- name: status_of
SELECT status FROM workclaim_items WHERE id = :id

-- name: stats
-- One statement, so one snapshot. Queued items are counted in workclaim_items_claimable,
-- claimed ones in workclaim_items_leases (both bounded by live work); total, dead and
-- cancelled come from workclaim_queue_counts, and done is the rest: no finished row is read.
SELECT
    (SELECT count(*) FROM workclaim_items WHERE queue = :queue AND status = 'queued'),
    (SELECT count(*) FROM workclaim_items WHERE status = 'claimed' AND queue = :queue),
    (SELECT count(*) FROM workclaim_items
     WHERE status = 'claimed' AND queue = :queue AND expires_at <= :now),
    (SELECT coalesce(sum(n), 0) FROM workclaim_queue_counts
     WHERE queue = :queue AND status = 'total'),
    (SELECT coalesce(sum(n), 0) FROM workclaim_queue_counts
     WHERE queue = :queue AND status = 'dead'),
    (SELECT coalesce(sum(n), 0) FROM workclaim_queue_counts
     WHERE queue = :queue AND status = 'cancelled')

-- name: queues
SELECT queue FROM workclaim_queue_counts WHERE status = 'total' AND n > 0 ORDER BY queue

-- name: history
SELECT item_id, kind, at, attempt, status, token, worker, error
FROM workclaim_history WHERE item_id = :id ORDER BY seq LIMIT :limit OFFSET :start

-- name: history_newest
SELECT item_id, kind, at, attempt, status, token, worker, error
FROM workclaim_history WHERE item_id = :id ORDER BY seq DESC LIMIT :limit OFFSET :start

-- name: item_exists
SELECT 1 FROM workclaim_items WHERE id = :id

-- name: items_queued
-- The queued items of a queue by id, from workclaim_items_claimable (sorted: bounded by the
-- queue's backlog, never by its finished rows).
SELECT id, queue, payload, status, priority, run_at, attempts, max_attempts, dedupe_key,
       worker, expires_at, last_error, result, created_at, updated_at, grp
FROM workclaim_items INDEXED BY workclaim_items_claimable
WHERE queue = :queue AND status = 'queued' AND +id > :after
ORDER BY id LIMIT :limit

-- name: items_claimed
-- The live leases of a queue by id, from workclaim_items_leases.
SELECT id, queue, payload, status, priority, run_at, attempts, max_attempts, dedupe_key,
       worker, expires_at, last_error, result, created_at, updated_at, grp
FROM workclaim_items INDEXED BY workclaim_items_leases
WHERE status = 'claimed' AND queue = :queue AND +id > :after
ORDER BY id LIMIT :limit

-- name: items_dead
-- The dead items of a queue by id, from workclaim_items_failed.
SELECT id, queue, payload, status, priority, run_at, attempts, max_attempts, dedupe_key,
       worker, expires_at, last_error, result, created_at, updated_at, grp
FROM workclaim_items INDEXED BY workclaim_items_failed
WHERE status IN ('dead', 'cancelled') AND status = 'dead' AND queue = :queue AND id > :after
ORDER BY id LIMIT :limit

-- name: items_cancelled
-- The cancelled items of a queue by id, from workclaim_items_failed.
SELECT id, queue, payload, status, priority, run_at, attempts, max_attempts, dedupe_key,
       worker, expires_at, last_error, result, created_at, updated_at, grp
FROM workclaim_items INDEXED BY workclaim_items_failed
WHERE status IN ('dead', 'cancelled') AND status = 'cancelled' AND queue = :queue AND id > :after
ORDER BY id LIMIT :limit

-- name: items_done
-- Done items by id: a walk of the table from :after (done items are most of a busy table).
SELECT id, queue, payload, status, priority, run_at, attempts, max_attempts, dedupe_key,
       worker, expires_at, last_error, result, created_at, updated_at, grp
FROM workclaim_items NOT INDEXED
WHERE id > :after AND queue = :queue AND status = 'done'
ORDER BY id LIMIT :limit

-- name: cancel
UPDATE workclaim_items
SET status = 'cancelled', last_event = 'cancelled', finished_at = :now, updated_at = :now
WHERE id = :id AND status = 'queued'
RETURNING 1

-- name: requeue
UPDATE workclaim_items
SET status = 'queued', last_event = 'requeued', attempts = 0,
    max_attempts = coalesce(:max_attempts, max_attempts),
    run_at = :now, finished_at = NULL, expires_at = NULL, updated_at = :now
WHERE id = :id AND status = 'dead'
RETURNING 1

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
-- The earliest lease expiry after now of any queue, from the front of workclaim_items_leases
-- (one probe; the given queues' own next expiry could take a walk past every other queue's
-- lease, and waking early for another queue's only costs a look).
SELECT min(expires_at) FROM workclaim_items WHERE status = 'claimed' AND expires_at > :now

-- name: expired_in
-- Whether a lease of the given queues (JSON array) has expired and is not reaped yet: then the
-- next claim of these queues reaps it, so it is due now. Walks the expired front of
-- workclaim_items_leases.
SELECT 1 FROM workclaim_items
WHERE status = 'claimed' AND expires_at <= :now
  AND queue IN (SELECT value FROM json_each(:queues))
LIMIT 1
