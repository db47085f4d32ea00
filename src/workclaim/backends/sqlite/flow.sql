-- Named queries of the SQLite backend's flow control (flow.py): policies, the fair and limited
-- claim of managed queues, rate windows. Times are microseconds, rate windows seconds.

-- name: policy
SELECT concurrency, group_concurrency, rate_count, rate_seconds, group_rate_count,
       group_rate_seconds, paused, managed, grouped
FROM workclaim_policies WHERE queue = :queue

-- name: set_policy
INSERT INTO workclaim_policies
    (queue, concurrency, group_concurrency, rate_count, rate_seconds, group_rate_count,
     group_rate_seconds)
VALUES (:queue, :concurrency, :group_concurrency, :rate_count, :rate_seconds, :group_rate_count,
        :group_rate_seconds)
ON CONFLICT (queue) DO UPDATE SET
    concurrency = excluded.concurrency, group_concurrency = excluded.group_concurrency,
    rate_count = excluded.rate_count, rate_seconds = excluded.rate_seconds,
    group_rate_count = excluded.group_rate_count, group_rate_seconds = excluded.group_rate_seconds

-- name: set_paused
INSERT INTO workclaim_policies (queue, paused) VALUES (:queue, :paused)
ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused

-- name: set_grouped
INSERT INTO workclaim_policies (queue, grouped) VALUES (:queue, 1)
ON CONFLICT (queue) DO UPDATE SET grouped = 1

-- name: mark_queued
-- A queue becoming managed: its queued items join the managed indexes (once per transition).
UPDATE workclaim_items SET flow = 1 WHERE queue = :queue AND status = 'queued' AND flow = 0

-- name: mark_claimed
-- ... and its leases, so that the limits count leases given before the queue was managed.
UPDATE workclaim_items SET flow = 1 WHERE status = 'claimed' AND queue = :queue AND flow = 0

-- name: mark_groups
-- ... and the groups of its queued and claimed items are walked by the claim.
INSERT INTO workclaim_groups (queue, grp)
SELECT queue, grp FROM workclaim_items WHERE queue = :queue AND status = 'queued'
UNION
SELECT queue, grp FROM workclaim_items WHERE status = 'claimed' AND queue = :queue
ON CONFLICT (queue, grp) DO UPDATE SET active = 1 WHERE active = 0

-- name: managed
-- Whether the queue is managed (an enqueue reads it once for its items' flow flag).
SELECT managed FROM workclaim_policies WHERE queue = :queue

-- name: activate_groups
-- The groups of items just enqueued into a managed queue (:groups, a JSON array) join the walk.
INSERT INTO workclaim_groups (queue, grp)
SELECT DISTINCT :queue, value FROM json_each(:groups) WHERE true
ON CONFLICT (queue, grp) DO UPDATE SET active = 1 WHERE active = 0

-- name: activate_item_group
-- A requeued item's group joins the walk again (a requeue is rare: one statement).
INSERT INTO workclaim_groups (queue, grp)
SELECT queue, grp FROM workclaim_items WHERE id = :id AND flow = 1
ON CONFLICT (queue, grp) DO UPDATE SET active = 1 WHERE active = 0

-- name: default_served
-- A queue's first group: its default group has been served (by plain claims) up to the
-- greatest token its items hold; one pass over the queue's rows, once per queue.
INSERT INTO workclaim_groups (queue, grp, served)
SELECT :queue, '', coalesce(max(token), 0) FROM workclaim_items WHERE queue = :queue AND grp = ''
ON CONFLICT (queue, grp) DO UPDATE SET served = max(served, excluded.served)

-- name: policies_of
-- The policy rows of the claimed queues (:queues, a JSON array).
SELECT queue, concurrency, group_concurrency, rate_count, rate_seconds, group_rate_count,
       group_rate_seconds, paused, managed, grouped
FROM workclaim_policies WHERE queue IN (SELECT value FROM json_each(:queues))

-- name: live_in_queue
SELECT count(*) FROM workclaim_items INDEXED BY workclaim_items_live
WHERE queue = :queue AND status = 'claimed' AND flow = 1 AND expires_at > :now

-- name: claims_in_queue
SELECT count(*) FROM workclaim_claims WHERE queue = :queue AND at > :since

-- name: prune_claims
DELETE FROM workclaim_claims WHERE queue = :queue AND at <= :cutoff

-- name: forget_claims
DELETE FROM workclaim_claims WHERE queue = :queue

-- name: next_priority
-- The best priority above :after with a claimable item in the queue (the plain claim index).
SELECT priority FROM workclaim_items
WHERE queue = :queue AND status = 'queued' AND priority > :after AND run_at <= :now
ORDER BY priority, run_at LIMIT 1

-- name: walk_groups
-- The next page of a managed queue's served active groups in served order after :served
-- (tokens are unique, so no two served groups tie), each with its first claimable item of
-- :priority (NULL if none) and, when it has one and when asked (:live, :recent), its live
-- leases and its claims since :since: one statement reads a page of the walk.
SELECT g.served, g.grp, i.run_at, i.id,
       CASE WHEN :live AND i.id IS NOT NULL THEN (
           SELECT count(*) FROM workclaim_items INDEXED BY workclaim_items_live
           WHERE queue = g.queue AND grp = g.grp AND status = 'claimed' AND flow = 1
             AND expires_at > :now) ELSE 0 END,
       CASE WHEN :recent AND i.id IS NOT NULL THEN (
           SELECT count(*) FROM workclaim_claims
           WHERE queue = g.queue AND grp = g.grp AND at > :since) ELSE 0 END
FROM workclaim_groups AS g INDEXED BY workclaim_groups_walk
LEFT JOIN workclaim_items AS i ON i.id = (
    SELECT id FROM workclaim_items INDEXED BY workclaim_items_grouped
    WHERE queue = g.queue AND grp = g.grp AND status = 'queued' AND flow = 1
      AND priority = :priority AND run_at <= :now
    ORDER BY run_at, id LIMIT 1
)
WHERE g.queue = :queue AND g.active = 1 AND g.served > :served
ORDER BY g.served LIMIT :page

-- name: never_served
-- The same for the queue's active groups never served (served = 0), all of them, ranked as
-- the fair order ties them: by their first claimable item of :priority, (run_at, id); groups
-- without one last. One index probe per such group (new groups: each is served by its first
-- claim, and leaves this list).
SELECT g.served, g.grp, i.run_at, i.id,
       CASE WHEN :live AND i.id IS NOT NULL THEN (
           SELECT count(*) FROM workclaim_items INDEXED BY workclaim_items_live
           WHERE queue = g.queue AND grp = g.grp AND status = 'claimed' AND flow = 1
             AND expires_at > :now) ELSE 0 END,
       CASE WHEN :recent AND i.id IS NOT NULL THEN (
           SELECT count(*) FROM workclaim_claims
           WHERE queue = g.queue AND grp = g.grp AND at > :since) ELSE 0 END
FROM workclaim_groups AS g INDEXED BY workclaim_groups_walk
LEFT JOIN workclaim_items AS i ON i.id = (
    SELECT id FROM workclaim_items INDEXED BY workclaim_items_grouped
    WHERE queue = g.queue AND grp = g.grp AND status = 'queued' AND flow = 1
      AND priority = :priority AND run_at <= :now
    ORDER BY run_at, id LIMIT 1
)
WHERE g.queue = :queue AND g.active = 1 AND g.served = 0
ORDER BY i.id IS NULL, i.run_at, i.id

-- name: group_items
-- A group's first :m claimable items of one priority, in (run_at, id) order (the rounds after
-- the first of a claim).
SELECT run_at, id FROM workclaim_items INDEXED BY workclaim_items_grouped
WHERE queue = :queue AND grp = :grp AND status = 'queued' AND flow = 1
  AND priority = :priority AND run_at <= :now
ORDER BY run_at, id LIMIT :m

-- name: plain_items
-- The same for a queue that is not managed (one group, its items not in the managed index).
SELECT run_at, id FROM workclaim_items
WHERE queue = :queue AND status = 'queued' AND priority = :priority AND run_at <= :now
ORDER BY run_at, id LIMIT :m

-- name: group_has_work
-- Whether a group holds a queued item or a lease (expired or not): else it leaves the walk.
SELECT EXISTS (SELECT 1 FROM workclaim_items INDEXED BY workclaim_items_grouped
               WHERE queue = :queue AND grp = :grp AND status = 'queued' AND flow = 1)
    OR EXISTS (SELECT 1 FROM workclaim_items INDEXED BY workclaim_items_live
               WHERE queue = :queue AND grp = :grp AND status = 'claimed' AND flow = 1)

-- name: deactivate_group
UPDATE workclaim_groups SET active = 0 WHERE queue = :queue AND grp = :grp

-- name: served
-- Raise the served groups' `served` to the greatest token they were just given (:rows, a JSON
-- array of [queue, grp, token]).
INSERT INTO workclaim_groups (queue, grp, served)
SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(:rows) WHERE true
ON CONFLICT (queue, grp) DO UPDATE SET served = max(served, excluded.served)

-- name: record_claims
-- The claims a rate window counts (:rows, a JSON array of [queue, grp, token]), at :at.
INSERT INTO workclaim_claims (queue, grp, at, token)
SELECT value ->> 0, value ->> 1, :at, value ->> 2 FROM json_each(:rows)

-- name: claim_ids
-- Lease the chosen items (:ids, a JSON array in claim order) with tokens in that order above
-- the counter, which the caller then advances.
UPDATE workclaim_items AS i
SET status     = 'claimed',
    last_event = 'claimed',
    token      = (SELECT value FROM workclaim_counters WHERE name = 'token') + c.rn,
    attempts   = i.attempts + 1,
    worker     = :worker,
    expires_at = :now + :lease_us,
    lease_us   = :lease_us,
    updated_at = :now
FROM (SELECT value AS id, key + 1 AS rn FROM json_each(:ids)) AS c
WHERE i.id = c.id
RETURNING id, queue, payload, token, attempts, max_attempts, expires_at, grp, created_at

-- name: live_by_group
-- The busiest groups of a queue by live leases (the dashboard), from the leases index.
SELECT grp, count(*) AS n FROM workclaim_items
WHERE status = 'claimed' AND queue = :queue AND expires_at > :now
GROUP BY grp ORDER BY n DESC, grp LIMIT :limit

-- name: rated_policies
-- The rate-limited queues among :queues (a JSON array), for next_due.
SELECT queue, rate_count, rate_seconds, group_rate_count, group_rate_seconds
FROM workclaim_policies
WHERE queue IN (SELECT value FROM json_each(:queues))
  AND (rate_count IS NOT NULL OR group_rate_count IS NOT NULL)

-- name: queue_rate_frees
-- When a queue at its rate gets a slot back: the claim that must age out is the
-- (:offset + 1)-th oldest in the window.
SELECT at FROM workclaim_claims INDEXED BY workclaim_claims_queue
WHERE queue = :queue AND at > :since ORDER BY at LIMIT 1 OFFSET :offset

-- name: group_rate_frees
-- The earliest time a group at its rate gets a slot back (its oldest claim in the window
-- ages out; early when the group is over its rate by more than one, as next_due may be).
SELECT min(first) FROM (
    SELECT min(at) AS first FROM workclaim_claims
    WHERE queue = :queue AND at > :since GROUP BY grp HAVING count(*) >= :count
)
