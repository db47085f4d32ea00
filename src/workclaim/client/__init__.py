"""`Client` and `AsyncClient`: the `Queue` API over HTTP, for a `workclaim serve` server.

Same methods, arguments and errors as `workclaim.Queue`: arguments are checked here with the same
rules (so bad input never leaves the process), and the server's problem documents come back as
the same exceptions (409 lease-lost -> `LeaseLost`, 404 -> `ItemNotFound`, 413 ->
`PayloadTooLarge`, 400/422 -> `ValidationError`, 503 -> `BackendUnavailable`). Two additions:
`AccessDenied` for 401/403, and `worker` may be omitted (the server uses the token's identity).

Every call has a timeout. A call is retried with backoff only when repeating it is safe whatever
happened to the first try: any call whose connection never opened (nothing reached the server)
or that got 429 (refused before doing anything), and otherwise only calls whose repeat changes
nothing the first did not: the reads (get, stats, history, items, queues), heartbeat (a second
extension from a later now), and complete/release/fail (fenced by the token: a repeat returns
the first outcome or `LeaseLost`, and never changes anything). Every other call may have
committed before its answer was lost, and repeating it could act twice, so it is sent again only
when its connection never opened: claim and complete-and-claim (a second batch of leases),
enqueue and enqueue_many (a second item; with a dedupe key too, since the first item may have
finished and freed its key in between), cancel, requeue and purge.

    from workclaim.client import Client

    with Client("http://127.0.0.1:8000", token="wc_...") as q:
        for lease in q.claim("emails", lease_seconds=30, limit=10, wait=20):
            q.complete(lease)

Layout: `_wire.py` is the sans-I/O core (arguments checked, requests built, answers read into
models or errors, the retry and re-poll decisions), `_api.py` holds each public method once as a
call plan over that core, `_connection.py` holds what both clients share (options, the pool),
and `_sync.py` / `_async.py` only send what the plans yield.
"""

from __future__ import annotations

from workclaim.client._async import AsyncClient
from workclaim.client._sync import Client
from workclaim.client._wire import AccessDenied
from workclaim.wire import CLOCK_HEADER, PROBLEM_PREFIX

# Named as before the split, so reprs, tracebacks and pickles keep saying `workclaim.client`.
for _public in (AccessDenied, AsyncClient, Client):
    _public.__module__ = __name__

__all__ = ["CLOCK_HEADER", "PROBLEM_PREFIX", "AccessDenied", "AsyncClient", "Client"]
