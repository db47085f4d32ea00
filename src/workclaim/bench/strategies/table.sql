-- The spike's `actions` table, shared by the strategies that are not workclaim's own claim
-- (select-then-update, optimistic, redis-lock, naive). One dialect-neutral file: SQLite,
-- PostgreSQL and MariaDB run these; only the schema differs, and a `<name>_mariadb` query stands
-- in on MariaDB where its SQL must (no partial indexes, no `WITH ... INSERT`, no
-- `UPDATE ... RETURNING`). Parameters are named (:name).

-- name: create_sqlite
CREATE TABLE IF NOT EXISTS bench_actions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run        INTEGER NOT NULL,
    claimed_by TEXT,
    claimed_at INTEGER,
    version    INTEGER NOT NULL DEFAULT 0,
    done       INTEGER NOT NULL DEFAULT 0
)

-- name: create_postgres
CREATE TABLE IF NOT EXISTS bench_actions (
    id         BIGSERIAL PRIMARY KEY,
    run        INTEGER NOT NULL,
    claimed_by TEXT,
    claimed_at BIGINT,
    version    BIGINT NOT NULL DEFAULT 0,
    done       INTEGER NOT NULL DEFAULT 0
)

-- name: create_mariadb
CREATE TABLE IF NOT EXISTS bench_actions (
    id         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    run        INTEGER NOT NULL,
    claimed_by VARCHAR(64) NULL,
    claimed_at BIGINT NULL,
    version    BIGINT NOT NULL DEFAULT 0,
    done       INTEGER NOT NULL DEFAULT 0
) ENGINE = InnoDB

-- name: create_index
-- The candidate read walks only unclaimed rows, in id order.
CREATE INDEX IF NOT EXISTS bench_actions_unclaimed ON bench_actions (run, id)
WHERE claimed_by IS NULL

-- name: create_index_mariadb
-- No partial indexes: unclaimed rows are those with claimed_by NULL at the front of (run, ...).
CREATE INDEX IF NOT EXISTS bench_actions_unclaimed ON bench_actions (run, claimed_by, id)

-- name: insert_items
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < :count)
INSERT INTO bench_actions (run) SELECT :run FROM n
RETURNING id

-- name: insert_items_mariadb
-- The recursion is capped at 1,000 rows by default (max_recursive_iterations): lifted for this
-- statement only.
SET STATEMENT max_recursive_iterations = 100000000 FOR
INSERT INTO bench_actions (run)
SELECT :run FROM (
    WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < :count)
    SELECT x FROM n
) AS numbers
RETURNING id

-- name: candidates
-- The spike's read: the first unclaimed rows (no lock taken).
SELECT id, version FROM bench_actions
WHERE run = :run AND claimed_by IS NULL
ORDER BY id
LIMIT :limit

-- name: complete
-- Fenced by worker and version: a holder whose claim was superseded changes nothing.
UPDATE bench_actions SET done = 1
WHERE id = :id AND claimed_by = :worker AND version = :token AND done = 0

-- name: held_by
SELECT 1 FROM bench_actions WHERE id = :id AND claimed_by = :worker AND done = 0

-- name: pending
SELECT count(*) FROM bench_actions WHERE run = :run AND done = 0

-- name: final_state
SELECT id, done FROM bench_actions WHERE run = :run
