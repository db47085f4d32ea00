-- select-then-update: the spike's pseudocode plus the row-count check it left out.

-- name: claim
-- Guarded: only a row still unclaimed is taken; no row back means another worker won the race.
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
