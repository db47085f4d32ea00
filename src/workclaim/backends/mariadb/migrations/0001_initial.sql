-- workclaim MariaDB schema, version 1: items, tokens, attempt history, per-queue counts and the
-- wake-up signal.
--
-- How migrations run (schema.py): the files of migrations/ in order, each statement on its own
-- (MariaDB commits DDL at once: there is no transactional DDL), under the named lock
-- GET_LOCK('workclaim_migrate:<database>'), each file recorded in workclaim_schema_version once
-- it has run whole. Every statement is written to be safe to run again (IF NOT EXISTS, CREATE OR
-- REPLACE), so a migration cut off half way (a crash, a lost connection) simply runs again.
-- Statements end with `;` at the end of a line; compound statements (triggers, procedures) are
-- wrapped in `DELIMITER //` ... `//` ... `DELIMITER ;`, as the mariadb client reads them.
--
-- Design:
-- * InnoDB, utf8mb4 with the binary collation utf8mb4_bin: queue names, dedupe keys, groups and
--   workers compare byte for byte (case-sensitive), as on the other backends.
-- * Times are BIGINT microseconds since the Unix epoch, as SQLite stores them (so both share
--   backends/_rows.py). The store's clock is the server's UTC_TIMESTAMP(6), read as
--   TIMESTAMPDIFF(MICROSECOND, '1970-01-01', UTC_TIMESTAMP(6)); a caller's now= overrides it.
-- * Fencing tokens come from the SEQUENCE workclaim_tokens: NEXTVAL is strictly increasing and
--   never hands a value out twice (not after a rollback, a purge or a restart), and takes no
--   row lock that every claim would queue on. Its cache is the server's (shared by all
--   sessions, not per session), so a token is greater than every token issued before it; a
--   restart skips the rest of the cached block. MySQL has no sequences: it is refused.
-- * No partial indexes in MariaDB: the claim walks (queue, status, priority, run_at, id), where
--   the queued rows of a queue are one contiguous range in claim order, whatever the number of
--   finished rows; expired leases are the front of the (status, expires_at) range 'claimed'.

CREATE SEQUENCE IF NOT EXISTS workclaim_tokens
    START WITH 1 INCREMENT BY 1 MINVALUE 1 CACHE 1000 NOCYCLE ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS workclaim_items (
    -- AUTO_INCREMENT: InnoDB never hands an id out again (it persists the counter since 10.2.4).
    id            BIGINT      NOT NULL AUTO_INCREMENT,
    queue         VARCHAR(128) NOT NULL,
    payload       LONGTEXT    NOT NULL,
    status        ENUM('queued', 'claimed', 'done', 'dead', 'cancelled') NOT NULL,
    priority      INT         NOT NULL,
    run_at        BIGINT      NOT NULL,
    attempts      INT         NOT NULL DEFAULT 0,
    max_attempts  INT         NOT NULL,
    dedupe_key    VARCHAR(128) NULL,
    -- The current (or last) lease: token, holder, expiry and length.
    token         BIGINT      NULL,
    worker        VARCHAR(128) NULL,
    expires_at    BIGINT      NULL,
    lease_us      BIGINT      NULL,
    -- How the last lease ended, so that repeating that very call returns its outcome.
    ended_token   BIGINT      NULL,
    ended_op      VARCHAR(16) NULL,
    ended_status  VARCHAR(16) NULL,
    last_error    MEDIUMTEXT  NULL,
    result        LONGTEXT    NULL,
    created_at    BIGINT      NOT NULL,
    updated_at    BIGINT      NOT NULL,
    finished_at   BIGINT      NULL,
    -- Whether the item's state changes are recorded (fixed at enqueue).
    history       TINYINT     NOT NULL DEFAULT 1,
    -- The kind of the item's last state change, and how many changes it has had: every
    -- state-changing statement sets last_event and adds one to event_seq, and the trigger below
    -- writes the history event (numbered event_seq) inside that very statement, whoever runs it.
    last_event    VARCHAR(16) NULL,
    event_seq     INT         NOT NULL DEFAULT 0,
    -- Flow control (mdb-flow's migrations/0002_flow_control.sql): the item's group ('' is the
    -- queue's default group) and whether its queue was managed when it was enqueued.
    grp           VARCHAR(128) NOT NULL DEFAULT '',
    flow          TINYINT     NOT NULL DEFAULT 0,
    -- A dedupe key is held while its item is queued or claimed: the UNIQUE index below sees the
    -- key only then (NULLs never collide).
    dedupe_live   VARCHAR(128) AS (IF(status IN ('queued', 'claimed'), dedupe_key, NULL)) PERSISTENT,
    PRIMARY KEY (id),
    -- The claim's walk (and stats' queued and claimed counts, bounded by live work).
    KEY workclaim_items_claim (queue, status, priority, run_at, id),
    -- Expired leases: the front of status = 'claimed' (the claim's bounded reap, next_due).
    KEY workclaim_items_leases (status, expires_at),
    -- Retention and purge walk finished items by age (unfinished rows are NULL, left out).
    KEY workclaim_items_finished (finished_at),
    UNIQUE KEY workclaim_items_dedupe (queue, dedupe_live)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per event, clustered by item: an item's events are read (and purged) together.
CREATE TABLE IF NOT EXISTS workclaim_history (
    item_id  BIGINT      NOT NULL,
    seq      INT         NOT NULL,
    kind     VARCHAR(16) NOT NULL,
    at       BIGINT      NOT NULL,
    attempt  INT         NOT NULL,
    status   VARCHAR(16) NOT NULL,
    token    BIGINT      NULL,
    worker   VARCHAR(128) NULL,
    error    MEDIUMTEXT  NULL,
    PRIMARY KEY (item_id, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Per queue: how many items it holds ('total') and how many are 'dead' or 'cancelled', so that
-- stats and queues never count finished rows (done = total - queued - claimed - dead -
-- cancelled). Split in 16 slots per (queue, status), picked by CONNECTION_ID(): concurrent
-- enqueues into one queue add to different rows instead of queueing on one row lock until they
-- commit, and one transaction touches one row per status. A slot may go negative (a purge
-- subtracts in its own slot); only the sum means anything.
CREATE TABLE IF NOT EXISTS workclaim_queue_counts (
    queue   VARCHAR(128) NOT NULL,
    status  ENUM('total', 'dead', 'cancelled') NOT NULL,
    slot    TINYINT     NOT NULL,
    n       BIGINT      NOT NULL,
    PRIMARY KEY (queue, status, slot)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The wake-up signal (listener.py polls its sum and MAX(id) of items): bumped when an item
-- becomes queued again (release, retry, requeue, an expired lease reaped), by the trigger below,
-- and by flow control and schedules when they free slots or move a slot (backend.signal). Slots
-- by CONNECTION_ID(), as the counts: no row lock shared by all writers.
CREATE TABLE IF NOT EXISTS workclaim_signals (
    slot  TINYINT NOT NULL,
    n     BIGINT  NOT NULL,
    PRIMARY KEY (slot)
) ENGINE = InnoDB;

DELIMITER //
CREATE OR REPLACE TRIGGER workclaim_items_insert
AFTER INSERT ON workclaim_items FOR EACH ROW
BEGIN
    INSERT INTO workclaim_queue_counts (queue, status, slot, n)
    VALUES (NEW.queue, 'total', CONNECTION_ID() % 16, 1)
    ON DUPLICATE KEY UPDATE n = n + 1;
END
//
DELIMITER ;

-- The claim procedure (workclaim_take) marks the rows of a batch 'claimed-bulk' and writes their
-- history itself, in one multi-row INSERT per claim: a row trigger's INSERT costs several times
-- more. Every other change, whoever makes it, is recorded here.
-- attempt: the lease's for lease events (OLD.attempts, since release gives its attempt back),
-- the new count for a claim and a requeue (0), the count the item had for the others.
-- token/worker: the lease's; none for the admin events requeued and cancelled.
DELIMITER //
CREATE OR REPLACE TRIGGER workclaim_items_update
AFTER UPDATE ON workclaim_items FOR EACH ROW
BEGIN
    IF NEW.event_seq <> OLD.event_seq AND NEW.history AND NEW.last_event <> 'claimed-bulk' THEN
        INSERT INTO workclaim_history
            (item_id, seq, kind, at, attempt, status, token, worker, error)
        VALUES (
            NEW.id,
            NEW.event_seq,
            NEW.last_event,
            NEW.updated_at,
            IF(NEW.last_event IN ('claimed', 'requeued'), NEW.attempts, OLD.attempts),
            NEW.status,
            IF(NEW.last_event IN ('requeued', 'cancelled'), NULL, NEW.token),
            IF(NEW.last_event IN ('requeued', 'cancelled'), NULL, NEW.worker),
            IF(NEW.last_event IN ('failed', 'expired'), NEW.last_error, NULL)
        );
    END IF;
    IF NEW.status <> OLD.status THEN
        IF NEW.status IN ('dead', 'cancelled') AND OLD.status NOT IN ('dead', 'cancelled') THEN
            INSERT INTO workclaim_queue_counts (queue, status, slot, n)
            VALUES (NEW.queue, NEW.status, CONNECTION_ID() % 16, 1)
            ON DUPLICATE KEY UPDATE n = n + 1;
        ELSEIF OLD.status IN ('dead', 'cancelled') AND NEW.status NOT IN ('dead', 'cancelled') THEN
            INSERT INTO workclaim_queue_counts (queue, status, slot, n)
            VALUES (OLD.queue, OLD.status, CONNECTION_ID() % 16, -1)
            ON DUPLICATE KEY UPDATE n = n - 1;
        END IF;
        IF NEW.status = 'queued' THEN
            INSERT INTO workclaim_signals (slot, n) VALUES (CONNECTION_ID() % 16, 1)
            ON DUPLICATE KEY UPDATE n = n + 1;
        END IF;
    END IF;
END
//
DELIMITER ;

-- A deleted (purged) item takes its history and its place in the counts with it, in the
-- purge's own transaction.
DELIMITER //
CREATE OR REPLACE TRIGGER workclaim_items_delete
AFTER DELETE ON workclaim_items FOR EACH ROW
BEGIN
    INSERT INTO workclaim_queue_counts (queue, status, slot, n)
    VALUES (OLD.queue, 'total', CONNECTION_ID() % 16, -1)
    ON DUPLICATE KEY UPDATE n = n - 1;
    IF OLD.status IN ('dead', 'cancelled') THEN
        INSERT INTO workclaim_queue_counts (queue, status, slot, n)
        VALUES (OLD.queue, OLD.status, CONNECTION_ID() % 16, -1)
        ON DUPLICATE KEY UPDATE n = n - 1;
    END IF;
    DELETE FROM workclaim_history WHERE item_id = OLD.id;
END
//
DELIMITER ;

-- Whether claims of a queue take flow control's path (a policy, a pause or groups). Here: never;
-- flow control's migration (0002) replaces this function with one that reads its policies, so
-- the claim procedures below send a managed queue's claim back to Python (flow.py) at no extra
-- round trip for the others.
DELIMITER //
CREATE OR REPLACE FUNCTION workclaim_managed(p_queue VARCHAR(128)) RETURNS TINYINT
    READS SQL DATA
BEGIN
    RETURN 0;
END
//
DELIMITER ;

-- The claim of one queue, inside the caller's transaction (the fused complete_and_claim, and
-- workclaim_claim below). Returns one result set: the leases (id, queue, payload, token,
-- attempt, max_attempts, expires_at, created_at; rows.leases sorts them by token), or, when the
-- queue is managed, one row of NULLs and no change (the caller then takes through flow.py).
-- First returns bounded batches of expired leases to queued (or dead): up to p_reap of this
-- queue's, oldest first, then up to p_reap of any queue's, only when the front of
-- workclaim_items_leases shows one. Then the claim, set-based (three statements whatever
-- p_limit is; a single item is taken by a static UPDATE whose event the trigger writes):
-- 1. one SELECT ... FOR UPDATE SKIP LOCKED locks up to p_limit claimable items in claim order,
--    skipping rows other claims hold (READ COMMITTED: no gap locks), their ids gathered as
--    text;
-- 2. one UPDATE of those ids, ORDER BY the claim order, so that NEXTVAL hands out the tokens
--    strictly increasing in claim order (it is evaluated per row as the rows are updated);
-- 3. one INSERT ... SELECT writes their 'claimed' history events (items enqueued with history).
-- Step 2 marks its rows last_event = 'claimed-bulk', which the items trigger skips: the mark is
-- on the very rows step 3 records, in the same transaction, so no other change is ever left
-- unrecorded, and an error between 2 and 3 rolls both back (the callers' EXIT handlers).
DELIMITER //
CREATE OR REPLACE PROCEDURE workclaim_take(
    IN p_queue VARCHAR(128), IN p_worker VARCHAR(128), IN p_lease_us BIGINT, IN p_limit INT,
    IN p_now BIGINT, IN p_reap INT)
    MODIFIES SQL DATA
BEGIN
    DECLARE v_ids LONGTEXT DEFAULT NULL;
    DECLARE v_expired TINYINT DEFAULT 0;
    IF workclaim_managed(p_queue) THEN
        SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL;
    ELSE
        -- SELECT ... INTO, not IF EXISTS (SELECT ...): MariaDB runs a subquery of a routine's
        -- IF as a locking read (S locks), which made concurrent fused turns deadlock on the
        -- leases index entries their completions had just changed; SELECT ... INTO is a
        -- consistent read and waits on nobody.
        SELECT EXISTS (SELECT 1 FROM workclaim_items
                       WHERE status = 'claimed' AND expires_at <= p_now) INTO v_expired;
        IF v_expired THEN
            UPDATE workclaim_items
            SET last_error  = CONCAT('lease expired (worker ', COALESCE(worker, '?'),
                                     ', token ', token, ')'),
                finished_at = IF(attempts < max_attempts, NULL, p_now),
                status      = IF(attempts < max_attempts, 'queued', 'dead'),
                last_event  = 'expired',
                event_seq   = event_seq + 1,
                expires_at  = NULL,
                updated_at  = p_now
            WHERE status = 'claimed' AND expires_at <= p_now AND queue = p_queue
            ORDER BY expires_at
            LIMIT p_reap;
            UPDATE workclaim_items
            SET last_error  = CONCAT('lease expired (worker ', COALESCE(worker, '?'),
                                     ', token ', token, ')'),
                finished_at = IF(attempts < max_attempts, NULL, p_now),
                status      = IF(attempts < max_attempts, 'queued', 'dead'),
                last_event  = 'expired',
                event_seq   = event_seq + 1,
                expires_at  = NULL,
                updated_at  = p_now
            WHERE status = 'claimed' AND expires_at <= p_now
            ORDER BY expires_at
            LIMIT p_reap;
        END IF;
        -- Room for p_limit ids of up to 20 digits and a comma: never a truncated list.
        IF p_limit * 21 > @@SESSION.group_concat_max_len THEN
            SET @@SESSION.group_concat_max_len = p_limit * 21;
        END IF;
        SELECT GROUP_CONCAT(c.id) INTO v_ids
        FROM (SELECT id FROM workclaim_items
              WHERE queue = p_queue AND status = 'queued' AND run_at <= p_now
              ORDER BY priority, run_at, id
              LIMIT p_limit
              FOR UPDATE SKIP LOCKED) AS c;
        IF v_ids IS NOT NULL AND LOCATE(',', v_ids) = 0 THEN
            -- One item: a static UPDATE, its event written by the trigger (no statement to
            -- prepare, one statement fewer).
            UPDATE workclaim_items
            SET status     = 'claimed',
                last_event = 'claimed',
                event_seq  = event_seq + 1,
                token      = NEXTVAL(workclaim_tokens),
                attempts   = attempts + 1,
                worker     = p_worker,
                expires_at = p_now + p_lease_us,
                lease_us   = p_lease_us,
                updated_at = p_now
            WHERE id = CAST(v_ids AS SIGNED);
        ELSEIF v_ids IS NOT NULL THEN
            -- The ids are the BIGINTs just read: the text is digits and commas only.
            EXECUTE IMMEDIATE CONCAT(
                'UPDATE workclaim_items',
                ' SET status = ''claimed'', last_event = ''claimed-bulk'',',
                ' event_seq = event_seq + 1, token = NEXTVAL(workclaim_tokens),',
                ' attempts = attempts + 1, worker = ?, expires_at = ?, lease_us = ?,',
                ' updated_at = ?',
                ' WHERE id IN (', v_ids, ') ORDER BY priority, run_at, id')
                USING p_worker, p_now + p_lease_us, p_lease_us, p_now;
            INSERT INTO workclaim_history
                (item_id, seq, kind, at, attempt, status, token, worker, error)
            SELECT i.id, i.event_seq, 'claimed', p_now, i.attempts, 'claimed', i.token,
                   p_worker, NULL
            FROM JSON_TABLE(CONCAT('[', v_ids, ']'), '$[*]' COLUMNS (id BIGINT PATH '$')) AS j
            JOIN workclaim_items AS i ON i.id = j.id
            WHERE i.history = 1;
        END IF;
        SELECT i.id, i.queue, i.payload, i.token, i.attempts, i.max_attempts, i.expires_at,
               i.created_at
        FROM JSON_TABLE(CONCAT('[', COALESCE(v_ids, ''), ']'), '$[*]'
                        COLUMNS (id BIGINT PATH '$')) AS j
        JOIN workclaim_items AS i ON i.id = j.id;
    END IF;
END
//
DELIMITER ;

-- The whole claim of one queue as one transaction in one round trip (an autocommit CALL):
-- READ COMMITTED, the store's clock (or p_now), workclaim_take, COMMIT. Any error rolls the
-- transaction back and reaches the caller (a deadlock is retried there).
DELIMITER //
CREATE OR REPLACE PROCEDURE workclaim_claim(
    IN p_queue VARCHAR(128), IN p_worker VARCHAR(128), IN p_lease_us BIGINT, IN p_limit INT,
    IN p_now BIGINT, IN p_reap INT)
    MODIFIES SQL DATA
BEGIN
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        ROLLBACK;
        RESIGNAL;
    END;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;
    START TRANSACTION;
    CALL workclaim_take(
        p_queue, p_worker, p_lease_us, p_limit,
        COALESCE(p_now, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))),
        p_reap);
    COMMIT;
END
//
DELIMITER ;

-- The fused turn of the worker runtime (complete_and_claim) for one queue, as one transaction
-- in one round trip. p_done: a JSON array of [id, token, worker, result] (result: the JSON
-- text, or null). Each completion is fenced like `complete`; its flag is 1 when it completed,
-- or when this very lease was already ended by a complete (a repeat), else 0 and the item is
-- left alone. Returns a result set (flags, as a string of 0/1 in p_done's order; 1 if a
-- completion freed a slot of a managed queue), then, when p_limit > 0, workclaim_take's.
-- A managed queue (workclaim_managed) is answered by one row of NULLs and no change at all: the
-- caller then runs the turn in Python (flow.py).
DELIMITER //
CREATE OR REPLACE PROCEDURE workclaim_complete_and_claim(
    IN p_done LONGTEXT, IN p_queue VARCHAR(128), IN p_worker VARCHAR(128),
    IN p_lease_us BIGINT, IN p_limit INT, IN p_now BIGINT, IN p_reap INT)
    MODIFIES SQL DATA
BEGIN
    DECLARE v_now BIGINT;
    DECLARE v_i INT DEFAULT 0;
    DECLARE v_n INT DEFAULT JSON_LENGTH(p_done);
    DECLARE v_id BIGINT;
    DECLARE v_token BIGINT;
    DECLARE v_flags LONGTEXT DEFAULT '';
    DECLARE v_freed TINYINT DEFAULT 0;
    DECLARE v_flag TINYINT;
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        ROLLBACK;
        RESIGNAL;
    END;
    IF workclaim_managed(p_queue) THEN
        SELECT NULL, NULL;
    ELSE
        SET TRANSACTION ISOLATION LEVEL READ COMMITTED;
        START TRANSACTION;
        SET v_now = COALESCE(
            p_now, TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)));
        WHILE v_i < v_n DO
            SET v_id = CAST(JSON_VALUE(p_done, CONCAT('$[', v_i, '][0]')) AS SIGNED);
            SET v_token = CAST(JSON_VALUE(p_done, CONCAT('$[', v_i, '][1]')) AS SIGNED);
            SET @wc_flow = NULL;
            UPDATE workclaim_items
            SET status       = 'done',
                last_event   = 'completed',
                event_seq    = event_seq + 1,
                result       = JSON_VALUE(p_done, CONCAT('$[', v_i, '][3]')),
                ended_token  = token,
                ended_op     = 'complete',
                ended_status = 'done',
                finished_at  = v_now,
                updated_at   = v_now,
                flow         = (@wc_flow := flow),
                expires_at   = NULL
            WHERE id = v_id AND token = v_token
              AND worker = JSON_VALUE(p_done, CONCAT('$[', v_i, '][2]'))
              AND status = 'claimed' AND expires_at > v_now;
            IF @wc_flow IS NOT NULL THEN
                SET v_flag = 1;
                SET v_freed = GREATEST(v_freed, @wc_flow);
            ELSE
                SET v_flag = 0;
                SELECT COUNT(*) INTO v_flag FROM workclaim_items
                WHERE id = v_id AND ended_token = v_token AND ended_op = 'complete';
            END IF;
            SET v_flags = CONCAT(v_flags, v_flag);
            SET v_i = v_i + 1;
        END WHILE;
        SELECT v_flags, v_freed;
        IF p_limit > 0 THEN
            CALL workclaim_take(p_queue, p_worker, p_lease_us, p_limit, v_now, p_reap);
        END IF;
        COMMIT;
    END IF;
END
//
DELIMITER ;
