-- workclaim MariaDB schema, version 2: flow control (docs/contract.md, "Flow control"): queue
-- policies (limits and the paused flag), the groups a managed queue's claim walks in fair order,
-- and the claims a rate window counts. The items' `grp` column is version 1's.
--
-- A claim of a queue with no policy row (never limited, paused or grouped) takes the plain path
-- of version 1 and touches none of these tables.

-- A managed queue's claim reads each group's claimable items in claim order from here (the head
-- of a group at one priority is one probe), and counts a queue's or a group's live leases from
-- its range of status 'claimed' (at most the limit plus the expired leases not yet reaped).
-- MariaDB has no partial index, so every item is in it and SQLite's `flow` flag (which keeps
-- the items of queues without flow control out of its indexes) is not used here.
CREATE INDEX IF NOT EXISTS workclaim_items_grouped
    ON workclaim_items (queue, status, grp, priority, run_at, id);

-- One row per queue ever given a policy or a group. Rates are (count, window in seconds);
-- NULL is no limit. `managed`: whether claims of the queue take the flow-control path. Every
-- managed claim locks its queues' rows FOR UPDATE, so the claims of a managed queue run one at a
-- time from that lock to their commit (flow.py says why that makes the limits exact and the
-- pause linearisable).
CREATE TABLE IF NOT EXISTS workclaim_policies (
    queue              VARCHAR(128) NOT NULL PRIMARY KEY,
    concurrency        INT NULL,
    group_concurrency  INT NULL,
    rate_count         INT NULL,
    rate_seconds       DOUBLE NULL,
    group_rate_count   INT NULL,
    group_rate_seconds DOUBLE NULL,
    paused             TINYINT NOT NULL DEFAULT 0,
    grouped            TINYINT NOT NULL DEFAULT 0,
    managed            TINYINT AS (
        paused OR grouped OR concurrency IS NOT NULL OR group_concurrency IS NOT NULL
        OR rate_count IS NOT NULL OR group_rate_count IS NOT NULL
    ) VIRTUAL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Per group of a managed queue ('' the default group): `served`, the greatest lease token issued
-- to an item of the group (0: never served; the fair order ranks groups by it), and `active`, 0
-- once a claim found the group with neither queued nor claimed items (the walk then skips it)
-- until an item of it is enqueued or requeued. An enqueue reads its groups' rows with a shared
-- lock (held to its commit) and a claim takes a group out of the walk only on a row it locks
-- with SKIP LOCKED, so a group never goes inactive under an item being enqueued into it.
CREATE TABLE IF NOT EXISTS workclaim_groups (
    queue   VARCHAR(128) NOT NULL,
    grp     VARCHAR(128) NOT NULL,
    served  BIGINT NOT NULL DEFAULT 0,
    active  TINYINT NOT NULL DEFAULT 1,
    PRIMARY KEY (queue, grp),
    KEY workclaim_groups_walk (queue, active, served, grp)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per item a claim took from a queue with a rate or group rate, at the claim's store
-- time (microseconds): the windows count these. Pruned by the queue's claims as they age out of
-- its longest window, so the table holds about one window's worth.
CREATE TABLE IF NOT EXISTS workclaim_claims (
    queue  VARCHAR(128) NOT NULL,
    grp    VARCHAR(128) NOT NULL,
    at     BIGINT NOT NULL,
    token  BIGINT NOT NULL,
    PRIMARY KEY (queue, grp, at, token),
    KEY workclaim_claims_queue (queue, at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Whether claims of a queue take flow control's path (version 1's stand-in answered never): the
-- claim procedures of version 1 read it and send a managed queue's claim back to flow.py. A
-- SELECT ... INTO, not a subquery in RETURN: the latter, evaluated in a procedure's IF, reads
-- the policy row with a shared lock held to the commit, and two claims holding it then deadlock
-- when each asks flow.py's exclusive lock on the same row. MAX: always one row (no NOT FOUND
-- condition for the caller's handler).
DELIMITER //
CREATE OR REPLACE FUNCTION workclaim_managed(p_queue VARCHAR(128)) RETURNS TINYINT
    READS SQL DATA
BEGIN
    DECLARE v_managed TINYINT DEFAULT 0;
    SELECT COALESCE(MAX(managed), 0) INTO v_managed FROM workclaim_policies
    WHERE queue = p_queue;
    RETURN v_managed;
END
//
DELIMITER ;

-- A lease of a managed queue (flow = 1) that ends done or dead may free a slot: bump the
-- wake-up signal so other processes' claims waiting on the queue's limits look again (an item
-- that becomes queued bumps it already, by workclaim_items_update). Leases of other queues
-- bump nothing.
DELIMITER //
CREATE OR REPLACE TRIGGER workclaim_items_slot_freed
AFTER UPDATE ON workclaim_items FOR EACH ROW
BEGIN
    IF NEW.flow = 1 AND OLD.status = 'claimed' AND NEW.status IN ('done', 'dead') THEN
        INSERT INTO workclaim_signals (slot, n) VALUES (CONNECTION_ID() % 16, 1)
        ON DUPLICATE KEY UPDATE n = n + 1;
    END IF;
END
//
DELIMITER ;
