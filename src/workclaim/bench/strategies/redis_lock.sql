-- redis-lock: after a SET NX PX lock in Redis, mark the row claimed. The guard matters: without
-- it a worker that read the row before another finished it (and the lock expired) would take a
-- done item again.

-- name: claim
UPDATE bench_actions
SET claimed_by = :worker, claimed_at = :now, version = version + 1
WHERE id = :id AND claimed_by IS NULL
RETURNING version
