/*
 * The scan floor that PostgreSQL claims are to start from (issue 18; docs/postgres.md, "Under
 * sustained load"), as a Promela model for SPIN: the protocol checked before it is built.
 *
 * Why: while a snapshot is held, the index entries of every item claimed since it began stay in
 * items_claimable and every claim walks them. A claim that starts at a floor, a key below which
 * no claimable item exists, skips them. The floor must never hide a claimable item, whoever
 * writes when:
 *   - the raiser (one at a time: an advisory lock) locks the records table if no writer has an
 *     insert into it open, then walks the queue under a snapshot taken after that lock, sets the
 *     floor to the smallest queued key it saw (TOP if none) and, if it locked the table,
 *     truncates it; rows locked by claims still count, as the queued rows they still are;
 *   - every statement that makes an item queued (enqueue, release, retry, reap, requeue) appends
 *     a record of the item's key in the same transaction, whatever the floor is, unless the
 *     records table already holds a committed record at or below that key ("covered", schema
 *     version 14, used for the lease marks): then it takes the insert's lock on the table all
 *     the same (an INSERT ... WHERE NOT EXISTS that inserts nothing) and holds it until its
 *     transaction ends, so the covering record cannot be truncated before it commits;
 *   - a claim starts at the lower of the floor and every record it sees, and takes the smallest
 *     unlocked queued item from there (SKIP LOCKED).
 * Each store statement is one atomic step; a transaction stays open across steps, so that any
 * other statement may run between a writer's insert and its commit (an enqueue in the caller's
 * own transaction) and between a claim's lock and its commit or rollback.
 *
 * Safety (the assertion in Claimer): a claim's starting key is at or below every committed
 * queued item that no other transaction has locked, so with the floor a claim takes what a walk
 * from the start of the index would.
 *
 * Mutants (-D flags), each of which must give a counterexample:
 *   MUTANT_NO_RECORD          writers append no record (the floor alone)
 *   MUTANT_RECORD_IF_BELOW    a writer appends a record only if its key is below the floor it
 *                             reads (the race with a raiser whose snapshot misses the writer)
 *   MUTANT_WALK_BEFORE_LOCK   the raiser walks first and locks the records table after
 *   MUTANT_TWO_RAISERS        two raisers at once (no advisory lock)
 *   MUTANT_CLAIM_RAISES       claims raise the floor themselves, to the key they took, before
 *                             they commit (past rows they skipped as locked by others)
 *   MUTANT_COVERED_UNLOCKED   a covered writer appends nothing and holds no lock on the records
 *                             table (a raiser truncates the covering record before it commits)
 */

#define NI 3           /* items */
#define TOP 9          /* a floor above every key: no queued item was seen */
#define ROUNDS 2       /* each raiser's rounds */

mtype = { ABSENT, QUEUED, CLAIMED };

byte key[NI];          /* each item's place in claim order, (priority, run_at, id) */
mtype cst[NI];         /* committed status */
byte own[NI];          /* the transaction with an open write or lock on the row; 0 none */
byte floor = 0;        /* the committed floor */
bool rec[NI];          /* a committed record of the item's key */
bool prec[NI];         /* a record of it in an open transaction */
bool pheld[NI];        /* its writer holds the insert's lock without a record (covered) */
byte open_records;     /* transactions with an insert into the records table open */
bool table_locked;     /* a raiser holds the records table (to truncate it) */

inline append_record(i) {
    prec[i] = true;
    open_records++
}

inline end_record(i, keep) {
    if
    :: prec[i] -> prec[i] = false; open_records--; rec[i] = rec[i] || keep
    :: pheld[i] -> pheld[i] = false; open_records--
    :: else
    fi
}

/* Schema version 14's writer: a record unless a committed one at or below the key is there;
 * covered, it holds the insert's lock (an insert that inserted nothing) instead. */
inline record_unless_covered(i) {
    covered = false;
    for (j : 0 .. NI - 1) {
        if
        :: rec[j] && key[j] <= key[i] -> covered = true
        :: else
        fi
    }
    if
    :: covered ->
#ifdef MUTANT_COVERED_UNLOCKED
        skip
#else
        pheld[i] = true; open_records++
#endif
    :: else -> append_record(i)
    fi
}

/* A statement that makes item i queued: an enqueue (from ABSENT) or a release, retry or reap
 * (from CLAIMED); then the transaction commits or rolls back. */
proctype Writer(byte i; mtype from; byte tx) {
    byte eff, j;
    bool covered;
end_wait:
    atomic {
        !table_locked && own[i] == 0 && cst[i] == from ->
        own[i] = tx;
#if defined(MUTANT_NO_RECORD)
        skip
#elif defined(MUTANT_RECORD_IF_BELOW)
        eff = floor;
        if
        :: key[i] < eff -> append_record(i)
        :: else
        fi
#else
        record_unless_covered(i)
#endif
    }
    if
    :: atomic { cst[i] = QUEUED; own[i] = 0; end_record(i, true) }
    :: atomic { own[i] = 0; end_record(i, false) }
    fi
}

proctype Claimer(byte tx) {
    byte i, eff, best;
    atomic {
        eff = floor;
        for (i : 0 .. NI - 1) {
            if
            :: rec[i] && key[i] < eff -> eff = key[i]
            :: else
            fi
        }
        for (i : 0 .. NI - 1) {
            assert(!(cst[i] == QUEUED && own[i] == 0 && key[i] < eff))
        }
        best = NI;
        for (i : 0 .. NI - 1) {
            if
            :: cst[i] == QUEUED && own[i] == 0 && key[i] >= eff &&
               (best == NI || key[i] < key[best]) -> best = i
            :: else
            fi
        }
        if
        :: best < NI -> own[best] = tx
        :: else
        fi
    }
#ifdef MUTANT_CLAIM_RAISES
    if
    :: best < NI && key[best] > floor -> floor = key[best]
    :: else
    fi
#endif
    if
    :: best < NI -> atomic { cst[best] = CLAIMED; own[best] = 0 }
    :: best < NI -> atomic { own[best] = 0 }    /* rolled back: the item stays queued */
    :: else
    fi
}

proctype Raiser() {
    byte i, w, round;
    bool truncate;
    do
    :: round < ROUNDS ->
#ifndef MUTANT_WALK_BEFORE_LOCK
        atomic {
            if
            :: open_records == 0 && !table_locked -> table_locked = true; truncate = true
            :: else -> truncate = false
            fi
        }
#endif
        atomic {
            w = TOP;
            for (i : 0 .. NI - 1) {
                if
                :: cst[i] == QUEUED && key[i] < w -> w = key[i]
                :: else
                fi
            }
        }
#ifdef MUTANT_WALK_BEFORE_LOCK
        atomic {
            if
            :: open_records == 0 && !table_locked -> table_locked = true; truncate = true
            :: else -> truncate = false
            fi
        }
#endif
        atomic {
            floor = w;
            if
            :: truncate ->
                for (i : 0 .. NI - 1) { rec[i] = false }
                table_locked = false
            :: else
            fi
        }
        round++
    :: else -> break
    od
}

init {
    atomic {
        /* item 0 queued from the start; item 1 enqueued later at a smaller key (a higher
           priority, or an enqueue whose transaction began earlier); item 2 at a larger one */
        key[0] = 1; cst[0] = QUEUED;
        key[1] = 0; cst[1] = ABSENT;
        key[2] = 2; cst[2] = ABSENT;
        run Raiser();
#ifdef MUTANT_TWO_RAISERS
        run Raiser();
#endif
        run Claimer(1);
        run Claimer(2);
        run Claimer(6);    /* a third claim sees what two claims and a raise left behind */
        run Writer(1, ABSENT, 3);
        run Writer(2, ABSENT, 4);
        run Writer(0, CLAIMED, 5);    /* item 0 released, retried or reaped once claimed */
    }
}
