-- optimistic: a version column and compare-and-set.

-- name: claim
-- Succeeds only if nobody changed the row since it was read (same version).
UPDATE bench_actions
SET claimed_by = :worker, claimed_at = :now, version = version + 1
WHERE id = :id AND version = :version AND claimed_by IS NULL
RETURNING version

-- name: claim_mariadb
-- The same guarded update on MariaDB, which has no `UPDATE ... RETURNING`: the new version goes
-- back in the OK packet as `LAST_INSERT_ID(expr)` (no second round trip); 0 rows = lost.
UPDATE bench_actions
SET claimed_by = :worker, claimed_at = :now, version = LAST_INSERT_ID(version + 1)
WHERE id = :id AND version = :version AND claimed_by IS NULL
