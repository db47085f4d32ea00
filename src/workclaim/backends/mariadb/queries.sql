-- Named queries of the MariaDB backend. Parameters are MySQLdb's %(name)s (a tuple parameter
-- becomes a parenthesised list, for IN); a literal percent sign is written %%. Times are
-- microseconds since the epoch. A transaction's statements get its time as %(now)s (backend
-- `_write`); a fenced write that runs as one autocommit statement reads it as WC_NOW, which
-- backend.py replaces by `COALESCE(%(now)s, <the server's UTC clock>)`: the caller's now=, or
-- the statement's own start time (UTC_TIMESTAMP is fixed for the whole statement).
-- Every state-changing statement sets last_event and adds one to event_seq: the trigger
-- workclaim_items_update (migrations/0001_initial.sql) then writes the item's history event
-- inside that statement. MariaDB evaluates a single-table UPDATE's SET list left to right, each
-- assignment seeing the ones before it: no SET below reads a column an earlier one changed.

-- name: probe_expired
-- The claim's first look: whether any lease has expired (one probe of the front of
-- workclaim_items_leases; reaping is skipped in the usual case of nothing to reap).
SELECT EXISTS (SELECT 1 FROM workclaim_items WHERE status = 'claimed' AND expires_at <= %(now)s)

-- name: reap_expired_of
-- Return up to %(limit)s of the given queues' expired leases (oldest first) to queued, or to
-- dead when no attempt is left, so that their items are claimable by this claim however many
-- leases expired elsewhere. Runs inside the claim's transaction; under READ COMMITTED a row
-- another transaction holds that no longer matches is passed over, not waited for.
UPDATE workclaim_items
SET last_error  = CONCAT('lease expired (worker ', COALESCE(worker, '?'), ', token ', token, ')'),
    finished_at = IF(attempts < max_attempts, NULL, %(now)s),
    status      = IF(attempts < max_attempts, 'queued', 'dead'),
    last_event  = 'expired',
    event_seq   = event_seq + 1,
    expires_at  = NULL,
    updated_at  = %(now)s
WHERE status = 'claimed' AND expires_at <= %(now)s AND queue IN %(queues)s
ORDER BY expires_at
LIMIT %(limit)s

-- name: reap_expired_any
-- The same for the oldest %(limit)s expired leases of any queue, so that queues nobody claims
-- are reaped too.
UPDATE workclaim_items
SET last_error  = CONCAT('lease expired (worker ', COALESCE(worker, '?'), ', token ', token, ')'),
    finished_at = IF(attempts < max_attempts, NULL, %(now)s),
    status      = IF(attempts < max_attempts, 'queued', 'dead'),
    last_event  = 'expired',
    event_seq   = event_seq + 1,
    expires_at  = NULL,
    updated_at  = %(now)s
WHERE status = 'claimed' AND expires_at <= %(now)s
ORDER BY expires_at
LIMIT %(limit)s

-- name: claim_peek
-- A claim of several queues, first: which queues the best %s claimable items are in, read
-- without a lock (a consistent read: rows other claims hold but have not committed show as
-- queued). One part per queue, joined by UNION ALL and ended by claim_peek_order (backend
-- `_lock_several`); each part walks at most %s entries of workclaim_items_claim. Positional
-- parameters per part: its number (`part`, which names the queue in the answer), queue, now,
-- the ids this claim has locked already, limit.
(SELECT %s AS part, priority, run_at, id FROM workclaim_items
 WHERE queue = %s AND status = 'queued' AND run_at <= %s AND id NOT IN %s
 ORDER BY priority, run_at, id
 LIMIT %s)

-- name: claim_peek_order
-- The end of claim_peek's union: the merged claim order, the best %s rows.
ORDER BY priority, run_at, id LIMIT %s

-- name: claim_select
-- Lock up to %(limit)s claimable items of one queue in claim order, skipping rows other claims
-- hold and the ones this claim locked already (%(taken)s): a walk of workclaim_items_claim from
-- the front of (queue, 'queued'). %(limit)s is what claim_peek found wanted of this queue, so a
-- claim of several queues locks no row it will not take.
SELECT id FROM workclaim_items
WHERE queue = %(queue)s AND status = 'queued' AND run_at <= %(now)s AND id NOT IN %(taken)s
ORDER BY priority, run_at, id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED

-- name: claim_update
-- Lease the locked items: tokens from the sequence, handed out in claim order (ORDER BY).
UPDATE workclaim_items
SET status     = 'claimed',
    last_event = 'claimed',
    event_seq  = event_seq + 1,
    token      = NEXTVAL(workclaim_tokens),
    attempts   = attempts + 1,
    worker     = %(worker)s,
    expires_at = %(now)s + %(lease_us)s,
    lease_us   = %(lease_us)s,
    updated_at = %(now)s
WHERE id IN %(ids)s
ORDER BY priority, run_at, id

-- name: claim_rows
-- The leases just given (rows.leases sorts them by token, which follows claim order).
SELECT id, queue, payload, token, attempts, max_attempts, expires_at, created_at
FROM workclaim_items WHERE id IN %(ids)s

-- name: insert_items
-- New queued items, one VALUES row (insert_row) each in place of ROWS; an item whose dedupe key
-- is held by a live item of the queue (the UNIQUE index on (queue, dedupe_live)), also one
-- earlier in the same statement, is not inserted: RETURNING gives that item's id instead. One
-- id per VALUES row, in their order.
INSERT INTO workclaim_items
    (queue, payload, status, priority, run_at, max_attempts, dedupe_key, history,
     created_at, updated_at, grp, flow)
VALUES ROWS
ON DUPLICATE KEY UPDATE id = id
RETURNING id

-- name: insert_row
(%s, %s, 'queued', %s, %s, %s, %s, %s, %s, %s, %s, %s)

-- name: heartbeat
-- Fenced: only the current, unexpired lease of this worker may extend itself. A NULL
-- %(extend_us)s extends by the lease's own length. The new expiry comes back in @wc_expires
-- (same round trip).
UPDATE workclaim_items
SET expires_at = (@wc_expires := WC_NOW + COALESCE(%(extend_us)s, lease_us)),
    last_event = 'heartbeat',
    event_seq  = event_seq + 1,
    updated_at = WC_NOW
WHERE id = %(id)s AND token = %(token)s AND worker = %(worker)s
  AND status = 'claimed' AND expires_at > WC_NOW;
SELECT @wc_expires

-- name: complete
-- Fenced like heartbeat. @wc_flow: the item's flow flag (a completion in a managed queue frees
-- a slot, so it wakes this process's waiting claims). Also inside complete_and_claim's
-- transaction, with its time as %(now)s.
UPDATE workclaim_items
SET status       = 'done',
    last_event   = 'completed',
    event_seq    = event_seq + 1,
    result       = %(result)s,
    ended_token  = token,
    ended_op     = 'complete',
    ended_status = 'done',
    finished_at  = WC_NOW,
    updated_at   = WC_NOW,
    flow         = (@wc_flow := flow),
    expires_at   = NULL
WHERE id = %(id)s AND token = %(token)s AND worker = %(worker)s
  AND status = 'claimed' AND expires_at > WC_NOW;
SELECT @wc_flow

-- name: release
-- The attempt is given back: a released item has not used an execution.
UPDATE workclaim_items
SET status       = 'queued',
    last_event   = 'released',
    event_seq    = event_seq + 1,
    attempts     = attempts - 1,
    run_at       = WC_NOW + %(delay_us)s,
    ended_token  = token,
    ended_op     = 'release',
    ended_status = 'queued',
    updated_at   = WC_NOW,
    expires_at   = NULL
WHERE id = %(id)s AND token = %(token)s AND worker = %(worker)s
  AND status = 'claimed' AND expires_at > WC_NOW

-- name: fail
-- Retry at now + %(retry_us)s while attempts remain and a retry was asked for; else dead. The
-- new status and the flow flag come back in @wc_status and @wc_flow.
UPDATE workclaim_items
SET ended_status = (@wc_status := IF(%(retry_us)s IS NOT NULL AND attempts < max_attempts,
                                     'queued', 'dead')),
    run_at       = IF(%(retry_us)s IS NOT NULL AND attempts < max_attempts,
                      WC_NOW + %(retry_us)s, run_at),
    finished_at  = IF(%(retry_us)s IS NOT NULL AND attempts < max_attempts, NULL, WC_NOW),
    status       = IF(%(retry_us)s IS NOT NULL AND attempts < max_attempts, 'queued', 'dead'),
    last_event   = 'failed',
    event_seq    = event_seq + 1,
    last_error   = %(error)s,
    ended_token  = token,
    ended_op     = 'fail',
    updated_at   = WC_NOW,
    flow         = (@wc_flow := flow),
    expires_at   = NULL
WHERE id = %(id)s AND token = %(token)s AND worker = %(worker)s
  AND status = 'claimed' AND expires_at > WC_NOW;
SELECT @wc_status, @wc_flow

-- name: lease_end
-- How the item's last lease ended, to recognise a repeated call.
SELECT ended_token, ended_op, ended_status FROM workclaim_items WHERE id = %(id)s

-- name: get_item
SELECT id, queue, payload, status, priority, run_at, attempts, max_attempts, dedupe_key,
       worker, expires_at, last_error, result, created_at, updated_at, grp
FROM workclaim_items WHERE id = %(id)s

-- name: status_of
SELECT status FROM workclaim_items WHERE id = %(id)s

-- name: stats
-- One statement, so one snapshot. Queued and claimed items are counted in their ranges of
-- workclaim_items_claim (bounded by live work); total, dead and cancelled are the sums of
-- workclaim_queue_counts' slots, and done is the rest: no finished row is read.
SELECT
    (SELECT COUNT(*) FROM workclaim_items WHERE queue = %(queue)s AND status = 'queued'),
    (SELECT COUNT(*) FROM workclaim_items WHERE queue = %(queue)s AND status = 'claimed'),
    (SELECT COUNT(*) FROM workclaim_items
     WHERE queue = %(queue)s AND status = 'claimed' AND expires_at <= %(now)s),
    (SELECT COALESCE(SUM(n), 0) FROM workclaim_queue_counts
     WHERE queue = %(queue)s AND status = 'total'),
    (SELECT COALESCE(SUM(n), 0) FROM workclaim_queue_counts
     WHERE queue = %(queue)s AND status = 'dead'),
    (SELECT COALESCE(SUM(n), 0) FROM workclaim_queue_counts
     WHERE queue = %(queue)s AND status = 'cancelled')

-- name: queues
SELECT queue FROM workclaim_queue_counts WHERE status = 'total'
GROUP BY queue HAVING SUM(n) > 0 ORDER BY queue

-- name: history
-- One statement (one snapshot): no row when there is no such item; one row with a NULL kind
-- when it exists and the page is empty.
SELECT i.id, h.kind, h.at, h.attempt, h.status, h.token, h.worker, h.error
FROM workclaim_items AS i
LEFT JOIN (
    SELECT seq, kind, at, attempt, status, token, worker, error FROM workclaim_history
    WHERE item_id = %(id)s ORDER BY seq LIMIT %(limit)s OFFSET %(start)s
) AS h ON TRUE
WHERE i.id = %(id)s
ORDER BY h.seq

-- name: history_newest
SELECT i.id, h.kind, h.at, h.attempt, h.status, h.token, h.worker, h.error
FROM workclaim_items AS i
LEFT JOIN (
    SELECT seq, kind, at, attempt, status, token, worker, error FROM workclaim_history
    WHERE item_id = %(id)s ORDER BY seq DESC LIMIT %(limit)s OFFSET %(start)s
) AS h ON TRUE
WHERE i.id = %(id)s
ORDER BY h.seq DESC

-- name: items_live
-- The queued, claimed, dead or cancelled items of a queue by id: their range of
-- workclaim_items_claim, sorted (bounded by that status's rows, never by the done ones).
SELECT id, queue, payload, status, priority, run_at, attempts, max_attempts, dedupe_key,
       worker, expires_at, last_error, result, created_at, updated_at, grp
FROM workclaim_items FORCE INDEX (workclaim_items_claim)
WHERE queue = %(queue)s AND status = %(status)s AND id > %(after)s
ORDER BY id LIMIT %(limit)s

-- name: items_done
-- Done items by id: a walk of the primary key from %(after)s (done items are most of a busy
-- table; sorting them all would cost more than walking).
SELECT id, queue, payload, status, priority, run_at, attempts, max_attempts, dedupe_key,
       worker, expires_at, last_error, result, created_at, updated_at, grp
FROM workclaim_items FORCE INDEX (PRIMARY)
WHERE id > %(after)s AND queue = %(queue)s AND status = 'done'
ORDER BY id LIMIT %(limit)s

-- name: cancel
UPDATE workclaim_items
SET status = 'cancelled', last_event = 'cancelled', event_seq = event_seq + 1,
    finished_at = %(now)s, updated_at = %(now)s
WHERE id = %(id)s AND status = 'queued'

-- name: requeue
UPDATE workclaim_items
SET status = 'queued', last_event = 'requeued', event_seq = event_seq + 1, attempts = 0,
    max_attempts = COALESCE(%(max_attempts)s, max_attempts),
    run_at = %(now)s, finished_at = NULL, expires_at = NULL, updated_at = %(now)s
WHERE id = %(id)s AND status = 'dead'

-- name: purge
-- At most %(limit)s finished items (of %(queue)s, or of every queue when it is NULL) that
-- finished at or before %(cutoff)s, oldest first, from workclaim_items_finished.
DELETE FROM workclaim_items
WHERE finished_at <= %(cutoff)s AND status IN ('done', 'dead', 'cancelled')
  AND (%(queue)s IS NULL OR queue = %(queue)s)
ORDER BY finished_at
LIMIT %(limit)s

-- name: next_due
-- next_due's three looks in one statement: whether a lease of the given queues has expired and
-- is not reaped yet (then it is due now), the earliest future run_at among their queued items,
-- and the earliest lease expiry after now of any queue (the front of workclaim_items_leases:
-- waking early for another queue's lease only costs a look).
SELECT
    EXISTS (SELECT 1 FROM workclaim_items
            WHERE status = 'claimed' AND expires_at <= %(now)s AND queue IN %(queues)s),
    (SELECT MIN(run_at) FROM workclaim_items
     WHERE queue IN %(queues)s AND status = 'queued' AND run_at > %(now)s),
    (SELECT MIN(expires_at) FROM workclaim_items
     WHERE status = 'claimed' AND expires_at > %(now)s)

-- name: change_signal
-- What the wake-up poller watches (listener.py): the newest item id and the signal counter.
SELECT (SELECT COALESCE(MAX(id), 0) FROM workclaim_items),
       (SELECT COALESCE(SUM(n), 0) FROM workclaim_signals)

-- name: signal
-- Tell other processes' pollers that work may be claimable (flow control, schedules).
INSERT INTO workclaim_signals (slot, n) VALUES (CONNECTION_ID() %% 16, 1)
ON DUPLICATE KEY UPDATE n = n + 1

-- name: clock
SELECT WC_NOW
