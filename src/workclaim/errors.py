"""The exceptions workclaim raises; every one derives from `WorkclaimError`.

    WorkclaimError
    ├── ConfigError            bad URL, settings or environment; a missing optional extra
    ├── ValidationError        bad arguments (also a ValueError); nothing was written
    │   └── PayloadTooLarge    payload or result over the size cap
    ├── ItemNotFound           no item with that id
    ├── ScheduleNotFound       no schedule with that name
    ├── InvalidState           the item's status does not allow the call (cancel a claimed item)
    ├── LeaseLost              the lease is stale, expired or another worker's: drop the work
    └── BackendError           the store failed; the cause is chained
        ├── BackendUnavailable the store cannot be reached or is busy; retry later
        └── SchemaMismatch     the store's schema is newer or missing and migrations are off

`LeaseLost` is the one a worker is expected to handle: it means someone else may own the
item now and whatever the worker was doing must not be reported.
"""

from __future__ import annotations


class WorkclaimError(Exception):
    """Root of every error workclaim raises."""


class ConfigError(WorkclaimError):
    """The URL, a setting or the environment is wrong; the message says how to fix it."""


class ValidationError(WorkclaimError, ValueError):
    """An argument was refused before anything was written."""


class PayloadTooLarge(ValidationError):
    """A payload or result is larger than the configured cap."""


class ItemNotFound(WorkclaimError, LookupError):
    """No item has that id (it may have been purged)."""

    def __init__(self, item_id: int) -> None:
        super().__init__(f"no item with id {item_id}")
        self.item_id = item_id


class ScheduleNotFound(WorkclaimError, LookupError):
    """No schedule has that name."""


class InvalidState(WorkclaimError):
    """The item's current status does not allow the operation."""


class LeaseLost(WorkclaimError):
    """The lease is not the item's current, unexpired lease; nothing was changed."""

    def __init__(self, item_id: int, token: int, reason: str = "stale or expired") -> None:
        super().__init__(f"lease on item {item_id} (token {token}) is lost: {reason}")
        self.item_id = item_id
        self.token = token


class BackendError(WorkclaimError):
    """The store reported an error; the driver's exception is the cause."""


class BackendUnavailable(BackendError):
    """The store cannot be reached, timed out, or stayed busy past the deadline; retry later."""


class StorageFailed(BackendError):
    """The store's disk failed a write or a sync (EIO): the change may or may not be on disk.
    The queue refuses every later call, since the OS may have dropped the unsynced pages and a
    retried sync would falsely succeed; open a new queue once the disk is healthy (it recovers
    from what the disk really holds)."""


class SchemaMismatch(BackendError):
    """The store's schema is missing or newer than this version of workclaim understands."""
