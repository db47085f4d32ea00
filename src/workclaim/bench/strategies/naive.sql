-- naive: read a candidate, then update it with no guard. Wrong on purpose: two workers that read
-- the same row both "win" it, under the same version. It exists to prove the checker bites.

-- name: claim
UPDATE bench_actions
SET claimed_by = :worker, claimed_at = :now, version = :version + 1
WHERE id = :id
RETURNING version

-- name: claim_mariadb
-- The same on MariaDB (no `UPDATE ... RETURNING`): the version written is :version + 1.
UPDATE bench_actions
SET claimed_by = :worker, claimed_at = :now, version = :version + 1
WHERE id = :id

-- name: complete
-- No fence either: any worker's completion is accepted.
UPDATE bench_actions SET done = 1 WHERE id = :id
