-- redis-lock: after a SET NX PX lock in Redis, mark the row claimed. The guard matters: without
-- it a worker that read the row before another finished it (and the lock expired) would take a
-- done item again.

-- name: claim
UPDATE bench_actions
SET claimed_by = :worker, claimed_at = :now, version = version + 1
WHERE id = :id AND claimed_by IS NULL
RETURNING version

-- name: claim_mariadb
-- The same guarded update on MariaDB, which has no `UPDATE ... RETURNING`: the new version goes
-- back in the OK packet as `LAST_INSERT_ID(expr)` (no second round trip); 0 rows = lost.
UPDATE bench_actions
SET claimed_by = :worker, claimed_at = :now, version = LAST_INSERT_ID(version + 1)
WHERE id = :id AND claimed_by IS NULL
