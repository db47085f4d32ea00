-- optimistic: a version column and compare-and-set.

-- name: claim
-- Succeeds only if nobody changed the row since it was read (same version).
UPDATE bench_actions
SET claimed_by = :worker, claimed_at = :now, version = version + 1
WHERE id = :id AND version = :version AND claimed_by IS NULL
RETURNING version
