/*
 * workclaim's lease protocol, as a Promela model for the SPIN model checker (docs/model.md).
 *
 * A small world explored completely: two worker threads that share one worker name (as the
 * threads of one worker process do, so only the token tells their leases apart: the harder case
 * for the fence), two items in one group of one queue with group_concurrency 1, a discrete
 * store clock, and an operator who pauses and resumes the queue. A third thread or item
 * multiplies the states tenfold (30 million and more) for no new kind of interleaving: every
 * rule is a comparison between two leases, or between a lease and the clock. Each store verb is one `atomic` step, as it is
 * one transaction (PostgreSQL, SQLite) or one script (Redis) in the code; the comment above each
 * names the code it mirrors.
 *
 * Safety (assertions and the LTL formulas below): at most one live lease per item, tokens
 * strictly increasing per item, no write accepted from a stale or expired lease, at most one
 * accepted completion per item, the queue's and groups' concurrency limits never exceeded, no
 * claim while paused. Liveness, under weak fairness: every item ends done or dead.
 *
 * Mutants (docs/model.md, `make model-mutants`): each -D flag breaks one rule, and SPIN must
 * then find a counterexample.
 *   MUTANT_NO_TOKEN_CHECK      complete's fence checks the worker but not the token
 *   MUTANT_CLIENT_CLOCK_REAP   the reap compares expiry with `<` against the client's clock,
 *                              which runs one tick ahead of the store's
 *   MUTANT_REAP_ANY_STATUS     the reap does not check that the item is claimed
 *   MUTANT_LIMIT_BEFORE_COMMIT the claim counts live leases in one step and takes the item in a
 *                              later one (another claim can run in between)
 *   MUTANT_NO_PAUSE_CHECK      the claim does not read the paused flag
 *   MUTANT_NO_REAP             claims never return expired leases to the queue (liveness: an
 *                              item whose worker crashed is never finished)
 */

#define NT 2          /* worker threads */
#define NI 2          /* items */
#define LEASE 1       /* a lease's length, in clock ticks */
#define MAXATT 2      /* max_attempts of every item */
#define QLIMIT 2      /* the queue's concurrency (the same count as a group's, over the queue) */
#define GLIMIT 1      /* group_concurrency: the two items compete for one slot */
#define BUDGET 1      /* each thread's heartbeats, releases, stalls and crashes, in all */
#define TMAX 3        /* the clock's last value before it shifts back (see Clock) */
#define SHIFT 1

mtype = { QUEUED, CLAIMED, DONE, DEAD };

typedef Item {
    mtype status;
    byte token;        /* the token of the current (or last) lease; 0 before the first */
    byte worker;       /* the worker name of that lease */
    byte expires;      /* its expiry on the store's clock while claimed; 0 (long past) once the
                          lease ended, so the status check is the reap's only guard (the code
                          clears it to NULL, which no comparison matches: stronger) */
    byte attempts;
    byte group;
};

Item items[NI];
byte now = SHIFT;      /* the store's clock */
bool paused;

/* Ghosts: what the threads hold and what the properties count. */
byte hold[NT];         /* item + 1 that the thread believes it holds, 0 for none */
byte htok[NT];         /* the token of that lease */
byte hexp[NT];         /* its expiry as the claim returned it (store clock) */
byte completions[NI];  /* completions the store accepted per item */
bool claimed_while_paused;

#define WORKER(t) 0                       /* both threads are threads of worker 0 */
#define LIVE(i) (items[i].status == CLAIMED && items[i].expires > now)
#define LIVE_IN(i, g) (LIVE(i) && items[i].group == g)
#define QUEUE_LIVE (LIVE(0) + LIVE(1))
#define GROUP_LIVE(g) (LIVE_IN(0, g) + LIVE_IN(1, g))
#define BELIEVES(t, i) (hold[t] == i + 1 && hexp[t] > now)
#define TWO_HOLD(a, b, i) (BELIEVES(a, i) && BELIEVES(b, i))
#define FINISHED(i) (items[i].status == DONE || items[i].status == DEAD)

/* At most one thread holds a live lease on an item, judged on the store's clock. */
ltl one_lease { [] !(TWO_HOLD(0, 1, 0) || TWO_HOLD(0, 1, 1)) }
/* The queue's concurrency and each group's, at every instant. */
ltl limits { [] (QUEUE_LIVE <= QLIMIT && GROUP_LIVE(0) <= GLIMIT) }
/* At most one accepted completion per item. */
ltl once { [] (completions[0] <= 1 && completions[1] <= 1) }
/* No claim takes an item while the queue is paused. */
ltl pause_holds { [] !claimed_while_paused }
/* Every item ends done or dead (run with weak fairness: pan -a -f). */
ltl finish { <> (FINISHED(0) && FINISHED(1)) }

/* A lease ended (any way): its expiry and worker are cleared, as the code clears them. */
inline ended(c) {
    items[c].expires = 0;
    items[c].worker = 0
}

/* A thread lets go of its lease (after ending it, or on LeaseLost, or a crash). */
inline drop(t) {
    hold[t] = 0;
    htok[t] = 0;
    hexp[t] = 0
}

/* The reap of expired leases, the first step of every claim.
 * postgres/migrations/0005_reap_claimed_queues.sql claim() step 1; sqlite/queries.sql
 * reap_expired; redis/scripts/_claim.lua (the reap of the leases zset). */
inline reap(t) {
#if defined(MUTANT_NO_REAP)
    skip
#else
    i = 0;
    do
    :: i < NI ->
#if defined(MUTANT_REAP_ANY_STATUS)
        if
        :: items[i].expires <= now ->
#elif defined(MUTANT_CLIENT_CLOCK_REAP)
        if
        :: items[i].status == CLAIMED && items[i].expires < now + 2 ->
#else
        if
        :: items[i].status == CLAIMED && items[i].expires <= now ->
#endif
            if
            :: items[i].attempts < MAXATT -> items[i].status = QUEUED
            :: else -> items[i].status = DEAD
            fi;
            ended(i)
        :: else -> skip
        fi;
        i++
    :: else -> break
    od;
    i = 0
#endif
}

/* Whether item c may be leased now: queued, the queue not paused (unless a mutant skips the
 * check), and after taking it the queue and its group within their limits. */
#if defined(MUTANT_NO_PAUSE_CHECK)
#define PAUSE_OK true
#else
#define PAUSE_OK (!paused)
#endif
#define TAKEABLE(c) (items[c].status == QUEUED && PAUSE_OK && QUEUE_LIVE < QLIMIT \
                     && GROUP_LIVE(items[c].group) < GLIMIT)

/* Lease item c to thread t: a new token above every token issued, attempts + 1, an expiry.
 * The store's tokens come from one counter for all items (unique in the store); only their order
 * per item matters to the fence, so the model numbers each item's leases 1, 2, 3... (a smaller
 * world with the same comparisons).
 * postgres 0005 claim() step 2 (token_seq); sqlite/queries.sql claim_one_queue + advance_token;
 * redis/scripts/_claim.lua (INCR of the token counter). */
inline lease(t, c) {
    assert(items[c].status == QUEUED);
    claimed_while_paused = claimed_while_paused || paused;
    items[c].status = CLAIMED;
    items[c].token++;  /* above every token the item had: its tokens strictly increase */
    items[c].worker = WORKER(t);
    items[c].expires = now + LEASE;
    items[c].attempts++;
    hold[t] = c + 1;
    htok[t] = items[c].token;
    hexp[t] = now + LEASE
}

/* A claim of one item: reap, then lease a takeable item if there is one (which one is a free
 * choice here: the model checks every order, the fair order included). */
inline claim(t) {
#if defined(MUTANT_LIMIT_BEFORE_COMMIT)
    /* Broken: the limits are read in one step, the item taken in a later one. */
    atomic {
        reap(t);
        if
        :: TAKEABLE(0) -> pick = 1
        :: TAKEABLE(1) -> pick = 2
        :: else -> pick = 0
        fi
    };
    atomic {
        if
        :: pick > 0 && items[pick - 1].status == QUEUED -> lease(t, pick - 1)
        :: else -> skip
        fi;
        pick = 0
    }
#else
    atomic {
        reap(t);
        if
        :: TAKEABLE(0) -> lease(t, 0)
        :: TAKEABLE(1) -> lease(t, 1)
        :: else -> skip
        fi
    }
#endif
}

/* The fence every lease-ending write passes: the item is claimed by this lease and unexpired.
 * postgres/queries.sql complete/release/fail/heartbeat (WHERE i.token = ... AND i.worker = ...
 * AND i.status = 'claimed' AND i.expires_at > clock.now); sqlite/queries.sql the same;
 * redis/scripts/_common.lua the fence. */
#if defined(MUTANT_NO_TOKEN_CHECK)
#define FENCE(t, c) (items[c].worker == WORKER(t) && items[c].status == CLAIMED \
                     && items[c].expires > now)
#else
#define FENCE(t, c) (items[c].token == htok[t] && items[c].worker == WORKER(t) \
                     && items[c].status == CLAIMED && items[c].expires > now)
#endif

/* complete: done if fenced, a quiet repeat if this lease's complete already ended it, else
 * refused (LeaseLost). postgres/queries.sql complete (+ the repeat check, lease_end);
 * sqlite/backend.py complete; redis/scripts/complete.lua. */
inline complete(t) {
    atomic {
        c = hold[t] - 1;
        if
        :: FENCE(t, c) ->
            assert(htok[t] == items[c].token);  /* no write from a stale lease */
            assert(hexp[t] > now);         /* nor from an expired one */
            items[c].status = DONE;
            ended(c);
            completions[c]++
        :: else -> skip                    /* LeaseLost, or the quiet repeat: nothing changes */
        fi;
        drop(t); c = 0
    }
}

/* complete_and_claim: the completion and the next claim in one step.
 * postgres/migrations/0004 complete_and_claim(); sqlite/backend.py complete_and_claim;
 * redis/scripts/complete_and_claim.lua. */
inline complete_and_claim(t) {
    atomic {
        complete(t);
        reap(t);
        if
        :: TAKEABLE(0) -> lease(t, 0)
        :: TAKEABLE(1) -> lease(t, 1)
        :: else -> skip
        fi
    }
}

/* fail: queued again while attempts remain, else dead (retry delays are not modelled).
 * postgres/queries.sql fail; sqlite/queries.sql fail; redis/scripts/fail.lua. */
inline fail(t) {
    atomic {
        c = hold[t] - 1;
        if
        :: FENCE(t, c) ->
            assert(htok[t] == items[c].token);
            if
            :: items[c].attempts < MAXATT -> items[c].status = QUEUED
            :: else -> items[c].status = DEAD
            fi;
            ended(c)
        :: else -> skip
        fi;
        drop(t); c = 0
    }
}

/* release: queued again, the attempt given back. postgres/queries.sql release;
 * sqlite/queries.sql release; redis/scripts/release.lua. */
inline release(t) {
    atomic {
        c = hold[t] - 1;
        if
        :: FENCE(t, c) ->
            assert(htok[t] == items[c].token);
            items[c].status = QUEUED;
            items[c].attempts--;
            ended(c)
        :: else -> skip
        fi;
        drop(t); c = 0
    }
}

/* heartbeat: the expiry pushed to now + LEASE if fenced, else LeaseLost (the thread drops the
 * lease). postgres/queries.sql heartbeat; sqlite/queries.sql heartbeat;
 * redis/scripts/heartbeat.lua. */
inline heartbeat(t) {
    atomic {
        c = hold[t] - 1;
        if
        :: FENCE(t, c) ->
            items[c].expires = now + LEASE;
            hexp[t] = now + LEASE
        :: else -> drop(t)
        fi;
        c = 0
    }
}

/* A worker thread (worker/_runtime.py): claims, then ends its lease one way or another. Each
 * thread has a budget of actions that do not end an item (heartbeats, releases, stalls, crashes),
 * so that every run is finite in what the workers choose to delay. */
proctype Thread(byte t) {
    byte budget = BUDGET;
    byte i, c, pick;
    do
    :: hold[t] == 0 -> claim(t)
    :: hold[t] != 0 ->
        if
        :: complete(t)
        :: complete_and_claim(t)
        :: fail(t)
        :: budget > 0 -> budget--; heartbeat(t)
        :: budget > 0 -> budget--; release(t)
        /* a stall past the lease (a GC pause, a stopped process): it wakes once the store's
           clock has passed its expiry, then completes as if nothing happened */
        :: budget > 0 -> budget--; (hexp[t] <= now); complete(t)
        /* a crash: the lease is abandoned; the thread starts again with none */
        :: budget > 0 -> budget--; drop(t)
        fi
    od
}

/* The store's clock. To keep the world finite it runs from SHIFT to TMAX and then moves every
 * time back by SHIFT together (the clock, each expiry, each thread's view of its expiry), which
 * keeps every comparison of two times as it was: the order of times is all the protocol reads.
 * An expiry that would fall below 0 is long past and stays past at 0. */
inline shift_back() {
    now = now - SHIFT;
    j = 0;
    do
    :: j < NI ->
        if
        :: items[j].expires >= SHIFT -> items[j].expires = items[j].expires - SHIFT
        :: else -> items[j].expires = 0
        fi;
        j++
    :: else -> break
    od;
    j = 0;
    do
    :: j < NT ->
        if
        :: hexp[j] >= SHIFT -> hexp[j] = hexp[j] - SHIFT
        :: else -> hexp[j] = 0
        fi;
        j++
    :: else -> break
    od;
    j = 0
}

active proctype Clock() {
    byte j;
    do
    :: atomic { now < TMAX -> now++ }
    :: atomic { now == TMAX -> shift_back() }
    od
}

/* The operator: pauses the queue at any time and resumes it later, a bounded number of times
 * (a queue paused for good cannot finish its items). Queue.pause/resume -> set_paused in each
 * backend. */
active proctype Operator() {
    byte pauses = 2;
    do
    :: atomic { !paused && pauses > 0 -> paused = true; pauses-- }
    :: atomic { paused -> paused = false }
    od
}

init {
    atomic {
        items[0].status = QUEUED; items[0].group = 0;
        items[1].status = QUEUED; items[1].group = 0;
        run Thread(0);
        run Thread(1)
    }
}
