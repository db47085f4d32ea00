"""The public surface is pinned: a change to it is a deliberate act."""

from __future__ import annotations

import workclaim


def test_all_is_sorted_and_complete() -> None:
    assert workclaim.__all__ == sorted(workclaim.__all__)
    assert workclaim.__all__ == [
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
    for name in workclaim.__all__:
        assert hasattr(workclaim, name)


def test_every_error_derives_from_the_root() -> None:
    for name in workclaim.__all__:
        value = getattr(workclaim, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, workclaim.WorkclaimError)
    assert issubclass(workclaim.ValidationError, ValueError)
    assert issubclass(workclaim.BackendUnavailable, workclaim.BackendError)
