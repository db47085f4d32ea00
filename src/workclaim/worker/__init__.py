"""The worker runtime: claim, run a handler, heartbeat, complete or fail, shut down cleanly.

    from workclaim import Queue
    from workclaim.worker import Worker

    worker = Worker(Queue("sqlite:///work.db"), queues=["emails"], concurrency=4)

    @worker.handler
    def send(ctx):
        deliver(ctx.lease.payload, fence=ctx.lease.token)
        if ctx.lost.is_set():   # someone else may own the item now: stop early
            return None

    worker.run()                # until SIGTERM / SIGINT

The source is a `Queue` or an HTTP `Client` (same API). One claimer thread per worker hands the
leases its handlers finished to `complete_and_claim` and claims as many new items as it has free
capacity in the same round trip (the fused path), batching adaptively: the batch grows while full
batches keep coming and shrinks to what the queue had; once the queue runs dry the claimer
long-polls with `claim(wait=...)` (no tight loop) and handlers complete their own items meanwhile.
Handlers run on a pool of `concurrency` threads, heartbeat every
`lease_seconds * heartbeat_fraction` while they run (setting `ctx.lost` if the lease is lost),
fail with the error and traceback on an exception, and on SIGTERM/SIGINT the worker stops
claiming, gives in-flight work `grace` seconds, completes what finished, releases what is left,
and returns.
"""

from workclaim.worker._batching import MAX_LINGER
from workclaim.worker._context import Context, Handler
from workclaim.worker._runtime import Worker, log
from workclaim.worker._state import Outcome
from workclaim.worker._steering import HandlerTimeout, Permanent, RetryAfter

__all__ = [
    "MAX_LINGER",
    "Context",
    "Handler",
    "HandlerTimeout",
    "Outcome",
    "Permanent",
    "RetryAfter",
    "Worker",
    "log",
]
