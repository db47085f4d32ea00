"""workclaim: atomic work claiming with fenced leases on SQLite, PostgreSQL and Redis.

from workclaim import Queue, LeaseLost

with Queue("sqlite:///work.db") as q:
    q.enqueue("emails", {"to": "a@example.org"})
    for lease in q.claim("emails", worker="w-1", lease_seconds=30.0, limit=10):
        try:
            send(lease.payload, fence=lease.token)
            q.complete(lease)
        except LeaseLost:
            pass  # someone else owns it now; drop the result
"""

from workclaim._version import __version__
from workclaim.api import AsyncQueueAPI, QueueAPI
from workclaim.config import Settings
from workclaim.errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
    InvalidState,
    ItemNotFound,
    LeaseLost,
    PayloadTooLarge,
    ScheduleNotFound,
    SchemaMismatch,
    StorageFailed,
    ValidationError,
    WorkclaimError,
)
from workclaim.models import (
    CatchUp,
    EventKind,
    GroupLeases,
    HistoryEvent,
    Item,
    Lease,
    QueuePolicy,
    QueueStats,
    Rate,
    Schedule,
    Status,
)
from workclaim.queue import AsyncQueue, Queue
from workclaim.retry import Backoff

__all__ = [
    "AsyncQueue",
    "AsyncQueueAPI",
    "BackendError",
    "BackendUnavailable",
    "Backoff",
    "CatchUp",
    "ConfigError",
    "EventKind",
    "GroupLeases",
    "HistoryEvent",
    "InvalidState",
    "Item",
    "ItemNotFound",
    "Lease",
    "LeaseLost",
    "PayloadTooLarge",
    "Queue",
    "QueueAPI",
    "QueuePolicy",
    "QueueStats",
    "Rate",
    "Schedule",
    "ScheduleNotFound",
    "SchemaMismatch",
    "Settings",
    "Status",
    "StorageFailed",
    "ValidationError",
    "WorkclaimError",
    "__version__",
]
