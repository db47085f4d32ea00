-- Named queries of the MariaDB backend's flow control (flow.py): policies, the fair and limited
-- claim of managed queues, rate windows. Times are microseconds, rate windows seconds. Lists
-- (:queues, :groups, :ids) are Python tuples, which the driver writes as `(a, b, ...)`.

-- name: policy
SELECT concurrency, group_concurrency, rate_count, rate_seconds, group_rate_count,
       group_rate_seconds, paused, managed, grouped
FROM workclaim_policies WHERE queue = %(queue)s

-- name: set_policy
INSERT INTO workclaim_policies
    (queue, concurrency, group_concurrency, rate_count, rate_seconds, group_rate_count,
     group_rate_seconds)
VALUES (%(queue)s, %(concurrency)s, %(group_concurrency)s, %(rate_count)s, %(rate_seconds)s,
        %(group_rate_count)s, %(group_rate_seconds)s)
ON DUPLICATE KEY UPDATE
    concurrency = VALUES(concurrency), group_concurrency = VALUES(group_concurrency),
    rate_count = VALUES(rate_count), rate_seconds = VALUES(rate_seconds),
    group_rate_count = VALUES(group_rate_count), group_rate_seconds = VALUES(group_rate_seconds)

-- name: set_paused
INSERT INTO workclaim_policies (queue, paused) VALUES (%(queue)s, %(paused)s)
ON DUPLICATE KEY UPDATE paused = VALUES(paused)

-- name: set_grouped
INSERT INTO workclaim_policies (queue, grouped) VALUES (%(queue)s, 1)
ON DUPLICATE KEY UPDATE grouped = 1

-- name: mark_flow
-- A queue becoming managed: its queued and claimed items get the `flow` flag (once per
-- transition), as the items enqueued into it from now on do: a lease's end knows from it that
-- it may free a slot (and wakes waiting claims).
UPDATE workclaim_items SET flow = 1
WHERE queue = %(queue)s AND status IN ('queued', 'claimed') AND flow = 0

-- name: mark_groups
-- A queue becoming managed: the groups of its queued and claimed items, and its default group,
-- are walked by the claim from now on (once per transition).
INSERT INTO workclaim_groups (queue, grp)
SELECT %(queue)s, '' FROM DUAL
UNION
SELECT DISTINCT queue, grp FROM workclaim_items WHERE queue = %(queue)s AND status = 'queued'
UNION
SELECT DISTINCT queue, grp FROM workclaim_items WHERE queue = %(queue)s AND status = 'claimed'
ON DUPLICATE KEY UPDATE active = 1

-- name: any_managed
-- Whether any of the claimed queues is managed (the claim's routing probe).
SELECT EXISTS (SELECT 1 FROM workclaim_policies WHERE queue IN %(queues)s AND managed)

-- name: managed
-- Whether the queue is managed (an enqueue reads it once).
SELECT managed FROM workclaim_policies WHERE queue = %(queue)s

-- name: lock_groups
-- The rows of the groups an enqueue or requeue puts an item into, read with a shared lock held
-- to its commit: a claim cannot take a group out of the walk under it (see deactivate_group).
SELECT grp, active FROM workclaim_groups
WHERE queue = %(queue)s AND grp IN %(groups)s LOCK IN SHARE MODE

-- name: activate_group
-- A group without a row, or one out of the walk, joins it.
INSERT INTO workclaim_groups (queue, grp) VALUES (%s, %s)
ON DUPLICATE KEY UPDATE active = 1

-- name: item_group
-- A requeued item's queue and group, when its queue is managed.
SELECT i.queue, i.grp FROM workclaim_items AS i
JOIN workclaim_policies AS p ON p.queue = i.queue AND p.managed
WHERE i.id = %(id)s

-- name: default_served
-- A queue's first group: its default group has been served (by plain claims) up to the
-- greatest token its items hold; one pass over the queue's rows, once per queue.
INSERT INTO workclaim_groups (queue, grp, served)
SELECT %(queue)s, '', coalesce(max(token), 0) FROM workclaim_items
WHERE queue = %(queue)s AND grp = ''
ON DUPLICATE KEY UPDATE served = GREATEST(served, VALUES(served))

-- name: lock_policies
-- The policy rows of the claimed queues, locked in queue order: every claim of a managed queue
-- waits here for the one before it to commit, so each counts the leases and claims the one
-- before it gave (READ COMMITTED: every later statement reads the newest commits).
SELECT queue, concurrency, group_concurrency, rate_count, rate_seconds, group_rate_count,
       group_rate_seconds, paused, managed, grouped
FROM workclaim_policies WHERE queue IN %(queues)s
ORDER BY queue FOR UPDATE

-- name: live_in_queue
SELECT count(*) FROM workclaim_items FORCE INDEX (workclaim_items_grouped)
WHERE queue = %(queue)s AND status = 'claimed' AND expires_at > %(now)s

-- name: claims_in_queue
SELECT count(*) FROM workclaim_claims FORCE INDEX (workclaim_claims_queue)
WHERE queue = %(queue)s AND at > %(since)s

-- name: prune_claims
DELETE FROM workclaim_claims WHERE queue = %(queue)s AND at <= %(cutoff)s

-- name: forget_claims
DELETE FROM workclaim_claims WHERE queue = %(queue)s

-- name: next_priority
-- The best priority above :after with a claimable item in the queue.
SELECT priority FROM workclaim_items
WHERE queue = %(queue)s AND status = 'queued' AND priority > %(after)s AND run_at <= %(now)s
ORDER BY priority, run_at LIMIT 1

-- name: walk_groups
-- The next page of a managed queue's served active groups in served order after :served
-- (tokens are unique, so no two served groups tie), each with its first claimable item of
-- :priority (NULL if none) and, when it has one and when asked (:live, :recent), its live
-- leases and its claims since :since: one statement reads a page of the walk.
SELECT g.served, g.grp, i.run_at, i.id,
       CASE WHEN %(live)s AND i.id IS NOT NULL THEN (
           SELECT count(*) FROM workclaim_items AS l FORCE INDEX (workclaim_items_grouped)
           WHERE l.queue = g.queue AND l.status = 'claimed' AND l.grp = g.grp
             AND l.expires_at > %(now)s) ELSE 0 END,
       CASE WHEN %(recent)s AND i.id IS NOT NULL THEN (
           SELECT count(*) FROM workclaim_claims AS r
           WHERE r.queue = g.queue AND r.grp = g.grp AND r.at > %(since)s) ELSE 0 END
FROM (
    SELECT w.queue, w.grp, w.served, (
        SELECT h.id FROM workclaim_items AS h FORCE INDEX (workclaim_items_grouped)
        WHERE h.queue = w.queue AND h.status = 'queued' AND h.grp = w.grp
          AND h.priority = %(priority)s AND h.run_at <= %(now)s
        ORDER BY h.run_at, h.id LIMIT 1) AS head
    FROM workclaim_groups AS w FORCE INDEX (workclaim_groups_walk)
    WHERE w.queue = %(queue)s AND w.active = 1 AND w.served > %(served)s
    ORDER BY w.served LIMIT %(page)s
) AS g
LEFT JOIN workclaim_items AS i ON i.id = g.head
ORDER BY g.served

-- name: never_served
-- The same for the queue's active groups never served (served = 0), all of them, ranked as
-- the fair order ties them: by their first claimable item of :priority, (run_at, id); groups
-- without one last.
SELECT g.served, g.grp, i.run_at, i.id,
       CASE WHEN %(live)s AND i.id IS NOT NULL THEN (
           SELECT count(*) FROM workclaim_items AS l FORCE INDEX (workclaim_items_grouped)
           WHERE l.queue = g.queue AND l.status = 'claimed' AND l.grp = g.grp
             AND l.expires_at > %(now)s) ELSE 0 END,
       CASE WHEN %(recent)s AND i.id IS NOT NULL THEN (
           SELECT count(*) FROM workclaim_claims AS r
           WHERE r.queue = g.queue AND r.grp = g.grp AND r.at > %(since)s) ELSE 0 END
FROM (
    SELECT w.queue, w.grp, w.served, (
        SELECT h.id FROM workclaim_items AS h FORCE INDEX (workclaim_items_grouped)
        WHERE h.queue = w.queue AND h.status = 'queued' AND h.grp = w.grp
          AND h.priority = %(priority)s AND h.run_at <= %(now)s
        ORDER BY h.run_at, h.id LIMIT 1) AS head
    FROM workclaim_groups AS w FORCE INDEX (workclaim_groups_walk)
    WHERE w.queue = %(queue)s AND w.active = 1 AND w.served = 0
) AS g
LEFT JOIN workclaim_items AS i ON i.id = g.head
ORDER BY i.id IS NULL, i.run_at, i.id

-- name: group_items
-- A group's first :m claimable items of one priority, in (run_at, id) order (the rounds after
-- the first of a claim).
SELECT run_at, id FROM workclaim_items FORCE INDEX (workclaim_items_grouped)
WHERE queue = %(queue)s AND status = 'queued' AND grp = %(grp)s
  AND priority = %(priority)s AND run_at <= %(now)s
ORDER BY run_at, id LIMIT %(m)s

-- name: plain_items
-- The same for a queue that is not managed (one group: all its items).
SELECT run_at, id FROM workclaim_items
WHERE queue = %(queue)s AND status = 'queued' AND priority = %(priority)s AND run_at <= %(now)s
ORDER BY run_at, id LIMIT %(m)s

-- name: lock_group
-- A named group found without a claimable item: its row, unless an enqueue holds it (then an
-- item is on its way, and the group stays in the walk).
SELECT active FROM workclaim_groups
WHERE queue = %(queue)s AND grp = %(grp)s FOR UPDATE SKIP LOCKED

-- name: group_has_work
-- Whether a group holds a queued item or a lease (expired or not): else it leaves the walk.
SELECT EXISTS (SELECT 1 FROM workclaim_items FORCE INDEX (workclaim_items_grouped)
               WHERE queue = %(queue)s AND status = 'queued' AND grp = %(grp)s)
    OR EXISTS (SELECT 1 FROM workclaim_items FORCE INDEX (workclaim_items_grouped)
               WHERE queue = %(queue)s AND status = 'claimed' AND grp = %(grp)s)

-- name: deactivate_group
UPDATE workclaim_groups SET active = 0 WHERE queue = %(queue)s AND grp = %(grp)s

-- name: lock_served
-- The served groups' rows, unless an enqueue holds one (then its rank is raised by a later
-- claim: the fair order is best effort under concurrency).
SELECT grp FROM workclaim_groups
WHERE queue = %(queue)s AND grp IN %(groups)s
ORDER BY grp FOR UPDATE SKIP LOCKED

-- name: served
-- Raise a served group's `served` to the greatest token it was just given.
UPDATE workclaim_groups SET served = GREATEST(served, %(token)s)
WHERE queue = %(queue)s AND grp = %(grp)s

-- name: record_claim
-- A claim a rate window counts, at the claim's time.
INSERT INTO workclaim_claims (queue, grp, at, token) VALUES (%s, %s, %s, %s)

-- name: lock_items
-- The chosen items, locked (another claim of a queue not managed may hold or have taken one).
SELECT id FROM workclaim_items WHERE id IN %(ids)s AND status = 'queued'
FOR UPDATE SKIP LOCKED

-- name: lease_ids
-- Lease the chosen and locked items, tokens from the sequence in claim order: {order} is the
-- ids in that order (integers, written in by flow.py).
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
ORDER BY FIELD(id, {order})

-- name: leased_rows
-- The leases just given, with their groups (rows.leases sorts them by token: claim order).
SELECT id, queue, payload, token, attempts, max_attempts, expires_at, grp, created_at
FROM workclaim_items WHERE id IN %(ids)s

-- name: live_by_group
-- The busiest groups of a queue by live leases (the dashboard), from the leases index.
SELECT grp, count(*) AS n FROM workclaim_items FORCE INDEX (workclaim_items_grouped)
WHERE queue = %(queue)s AND status = 'claimed' AND expires_at > %(now)s
GROUP BY grp ORDER BY n DESC, grp LIMIT %(limit)s

-- name: rated_policies
-- The rate-limited queues among :queues, for next_due.
SELECT queue, rate_count, rate_seconds, group_rate_count, group_rate_seconds
FROM workclaim_policies
WHERE queue IN %(queues)s AND (rate_count IS NOT NULL OR group_rate_count IS NOT NULL)

-- name: queue_rate_frees
-- When a queue at its rate gets a slot back: the claim that must age out is the
-- (:offset + 1)-th oldest in the window.
SELECT at FROM workclaim_claims FORCE INDEX (workclaim_claims_queue)
WHERE queue = %(queue)s AND at > %(since)s ORDER BY at LIMIT 1 OFFSET %(offset)s

-- name: group_rate_frees
-- The earliest time a group at its rate gets a slot back (its oldest claim in the window
-- ages out; early when the group is over its rate by more than one, as next_due may be).
SELECT min(first) FROM (
    SELECT min(at) AS first FROM workclaim_claims
    WHERE queue = %(queue)s AND at > %(since)s GROUP BY grp HAVING count(*) >= %(count)s
) AS g
