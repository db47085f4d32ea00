"""Request and response bodies (pydantic), so the served OpenAPI is exact.

Ids and tokens are JSON integers (below 2**53). Numbers are strict: `"5"` or `true` is not a
count. Bounds mirror `workclaim.validation`, which still checks every value on the way in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
)

from workclaim.errors import ValidationError
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
from workclaim.server.renamed import RENAMED, both_given
from workclaim.validation import (
    MAX_ATTEMPTS_LIMIT,
    MAX_BATCH,
    MAX_DELAY_SECONDS,
    MAX_ERROR_CHARS,
    MAX_ID,
    MAX_LEASE_SECONDS,
    MAX_LIMIT,
    MAX_RATE_WINDOW_SECONDS,
    MAX_WAIT_SECONDS,
    MIN_LEASE_SECONDS,
    NAME_PATTERN,
    PRIORITY_MAX,
    PRIORITY_MIN,
)

NAME_REGEX = f"^{NAME_PATTERN.pattern}$"
Name = Annotated[str, Field(pattern=NAME_REGEX, max_length=128)]
ItemId = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
Token = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
Seconds = Annotated[StrictFloat, Field(ge=0, le=MAX_DELAY_SECONDS)]
LeaseSeconds = Annotated[StrictFloat, Field(ge=MIN_LEASE_SECONDS, le=MAX_LEASE_SECONDS)]
Priority = Annotated[StrictInt, Field(ge=PRIORITY_MIN, le=PRIORITY_MAX)]
MaxAttempts = Annotated[StrictInt, Field(ge=1, le=MAX_ATTEMPTS_LIMIT)]
Limit = Annotated[StrictInt, Field(ge=1, le=MAX_LIMIT)]
GROUP_DESCRIPTION = "The flow-control group (null: the queue's default group)."
MAX_CRON_CHARS = 200  # the longest sensible six-field expression is far shorter
MAX_TIMEZONE_CHARS = 64  # the longest IANA name is about half of it


DEPRECATED: dict[str, Any] = {"deprecated": True}  # an OpenAPI field's `deprecated: true`


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Renamed(_In):
    """A claim body, which still takes its fields' old names (`max`, `lease`) for one release
    (`workclaim.server.renamed`). The old fields are declared (deprecated in the OpenAPI) so that
    pydantic checks them without a Python validator on every request."""

    def with_new_names(self) -> tuple[Self, bool]:
        """This body with an old field's value under its new name, and whether a request used
        an old name; a `ValidationError` (422) if it named a field both ways."""
        sent = self.model_fields_set
        if "max" not in sent and "lease" not in sent:
            return self, False
        update: dict[str, Any] = {}
        for old, new in RENAMED.items():
            value = getattr(self, old)
            if value is not None:
                if new in sent:
                    raise ValidationError(both_given(old))
                update[new] = value
        return self.model_copy(update=update), bool(update)


class ClaimIn(_Renamed):
    """Claim up to `limit` items from `queues` (or one `queue`)."""

    queue: Name | None = Field(None, description="One queue (or use `queues`).")
    queues: list[Name] | None = Field(
        None, min_length=1, max_length=100, description="Queues, claimed in priority order."
    )
    limit: Annotated[StrictInt, Field(ge=1, le=MAX_BATCH)] = 1
    lease_seconds: LeaseSeconds = 30.0
    wait: Annotated[StrictFloat, Field(ge=0, le=MAX_WAIT_SECONDS)] = Field(
        0.0, description="Seconds to long-poll for work; capped by the server's max_wait."
    )
    worker: Name | None = Field(
        None,
        description="Ignored-if-equal check: the worker is the token's identity; a different "
        "name is refused (403). Only a --no-auth server takes it as the worker name.",
    )
    max: Annotated[StrictInt, Field(ge=1, le=MAX_BATCH)] | None = Field(
        None, description="The old name of `limit`.", json_schema_extra=DEPRECATED
    )
    lease: LeaseSeconds | None = Field(
        None, description="The old name of `lease_seconds`.", json_schema_extra=DEPRECATED
    )


class LeaseOut(BaseModel):
    """A lease: the right to work on one item until `expires_at` (store clock)."""

    id: int
    queue: str
    payload: Any
    token: int = Field(description="Fencing token: send it back with every call on this lease.")
    attempt: int
    max_attempts: int
    expires_at: datetime
    worker: str
    lease_seconds: float
    group: str | None = Field(description=GROUP_DESCRIPTION)

    @classmethod
    def of(cls, lease: Lease) -> LeaseOut:
        """From a library lease (by keywords, not `model_validate`: this runs for every lease a
        claim hands out)."""
        return cls(
            id=lease.id,
            queue=lease.queue,
            payload=lease.payload,
            token=lease.token,
            attempt=lease.attempt,
            max_attempts=lease.max_attempts,
            expires_at=lease.expires_at,
            worker=lease.worker,
            lease_seconds=lease.lease_seconds,
            group=lease.group,
        )

    @staticmethod
    def doc(lease: Lease) -> dict[str, Any]:
        """The JSON document of `of(lease)`, built without a model (the hot claim answers encode
        it with orjson); a test checks that it encodes exactly as the model does."""
        return {
            "id": lease.id,
            "queue": lease.queue,
            "payload": lease.payload,
            "token": lease.token,
            "attempt": lease.attempt,
            "max_attempts": lease.max_attempts,
            "expires_at": lease.expires_at,
            "worker": lease.worker,
            "lease_seconds": float(lease.lease_seconds),
            "group": lease.group,
        }


class ClaimOut(BaseModel):
    """The leases of one claim, in claim order."""

    leases: list[LeaseOut]


class LeaseRef(_In):
    """Names a lease: the item id and the token its claim returned."""

    id: ItemId
    token: Token
    worker: Name | None = Field(
        None, description="Optional; must be the token's identity (else 409 lease-lost)."
    )
    attempt: Annotated[StrictInt, Field(ge=1, le=MAX_ATTEMPTS_LIMIT)] | None = Field(
        None, description="The lease's attempt (used for the retry backoff of `fail`)."
    )


class HeartbeatIn(LeaseRef):
    """Extend a lease to now + `extend` (default: its own length)."""

    extend: LeaseSeconds | None = None


class HeartbeatOut(BaseModel):
    """The lease's new expiry."""

    id: int
    token: int
    expires_at: datetime


class CompleteIn(LeaseRef):
    """Mark the item done, optionally storing a JSON `result`."""

    result: Any = None


class ReleaseIn(LeaseRef):
    """Give the item back (after `delay` seconds) without using up an attempt."""

    delay: Seconds = 0.0


class FailIn(LeaseRef):
    """Record a failure: retried after a backoff while attempts remain, unless `retry` is false."""

    error: Annotated[str, Field(max_length=MAX_ERROR_CHARS)]
    retry: StrictBool = True


class OutcomeOut(BaseModel):
    """The item's status after a lease-ending call."""

    id: int
    status: Status


class EnqueueIn(_In):
    """One item (`payload`) or a batch (`payloads`, all or none), with shared options."""

    payload: Any = Field(None, description="The item's JSON payload (for one item).")
    payloads: list[Any] | None = Field(None, description="Payloads of a batch, all or none.")
    priority: Priority = 0
    delay: Seconds = 0.0
    run_at: AwareDatetime | None = None
    max_attempts: MaxAttempts | None = None
    dedupe_key: Name | None = Field(None, description="Only with `payload`.")
    group: Name | None = Field(
        None,
        description="The flow-control group of the item (or of every item of the batch); "
        "omitted or null: the queue's default group.",
    )


class EnqueueOut(BaseModel):
    """Ids in input order (an existing id where a dedupe key was held)."""

    ids: list[int]


class ItemOut(BaseModel):
    """An item as stored. Never shows a lease token."""

    id: int
    queue: str
    payload: Any
    status: Status
    priority: int
    run_at: datetime
    attempts: int
    max_attempts: int
    dedupe_key: str | None
    worker: str | None
    expires_at: datetime | None
    last_error: str | None
    result: Any
    created_at: datetime
    updated_at: datetime
    group: str | None = Field(description=GROUP_DESCRIPTION)

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, item: Item) -> ItemOut:
        """From a library item, field by field by attribute name."""
        return cls.model_validate(item)


class RequeueIn(_In):
    """Move a dead item back to queued with fresh attempts."""

    max_attempts: MaxAttempts | None = None


class StatsOut(BaseModel):
    """Counts of a queue's items per status, plus claimed items whose lease expired."""

    model_config = ConfigDict(from_attributes=True)

    queue: str
    queued: int
    claimed: int
    done: int
    dead: int
    cancelled: int
    expired: int
    total: int

    @classmethod
    def of(cls, s: QueueStats) -> StatsOut:
        """From library stats, field by field by attribute name (`total` included)."""
        return cls.model_validate(s)


class PurgeIn(_In):
    """Delete the queue's finished items older than `older_than` seconds."""

    older_than: Seconds


class PurgeOut(BaseModel):
    """How many items were deleted."""

    deleted: int


class HealthOut(BaseModel):
    """Liveness or readiness."""

    status: str


class ProblemOut(BaseModel):
    """RFC 9457 problem details (`application/problem+json`)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


class QueuesOut(BaseModel):
    """Every queue that holds at least one item, by name, with its counts."""

    queues: list[StatsOut]


class ItemsOut(BaseModel):
    """One page of a queue's items in one status, by ascending id. A page ends early when its
    payloads and results pass the server's byte budget: only a null `next_after` is the end."""

    items: list[ItemOut]
    next_after: int | None = Field(
        description="Pass as `after` for the next page; null when this page was the last."
    )


class HistoryEventOut(BaseModel):
    """One entry of an item's attempt history."""

    item_id: int
    kind: EventKind
    at: datetime
    attempt: int
    status: Status
    token: int | None
    worker: str | None
    error: str | None

    @classmethod
    def of(cls, event: HistoryEvent) -> HistoryEventOut:
        """From a library event."""
        return cls(
            item_id=event.item_id,
            kind=event.kind,
            at=event.at,
            attempt=event.attempt,
            status=event.status,
            token=event.token,
            worker=event.worker,
            error=event.error,
        )


class HistoryOut(BaseModel):
    """A page of an item's attempt history (empty when its queue keeps none)."""

    item_id: int
    events: list[HistoryEventOut]
    next_start: int | None = Field(
        None, description="Pass as `start` for the next page; null when this page was the last."
    )


class DoneIn(LeaseRef):
    """A finished lease to complete, with an optional JSON `result`."""

    result: Any = None


class CompleteAndClaimIn(_Renamed):
    """Complete the `done` leases, then claim up to `limit` items, in one store transaction."""

    done: list[DoneIn] = Field(default_factory=list, max_length=MAX_BATCH)
    queue: Name | None = Field(None, description="One queue (or use `queues`).")
    queues: list[Name] | None = Field(None, min_length=1, max_length=100)
    limit: Annotated[StrictInt, Field(ge=0, le=MAX_BATCH)] = Field(
        1, description="Items to claim; 0 only completes."
    )
    lease_seconds: LeaseSeconds = 30.0
    worker: Name | None = Field(
        None, description="As for a claim: the token's identity; only --no-auth takes a name."
    )
    max: Annotated[StrictInt, Field(ge=0, le=MAX_BATCH)] | None = Field(
        None, description="The old name of `limit`.", json_schema_extra=DEPRECATED
    )
    lease: LeaseSeconds | None = Field(
        None, description="The old name of `lease_seconds`.", json_schema_extra=DEPRECATED
    )


class LeaseKey(BaseModel):
    """Names a lease by item id and token."""

    id: int
    token: int


class CompleteAndClaimOut(BaseModel):
    """The finished leases whose completion was refused as stale, and the new leases."""

    lost: list[LeaseKey]
    leases: list[LeaseOut]


class RateBody(_In):
    """A rate limit: at most `count` claims in any window of `per_seconds` (store clock).
    Always this object, never a `[count, per_seconds]` pair."""

    count: Limit = Field(description="Claims allowed in one window.")
    per_seconds: Annotated[StrictFloat, Field(gt=0, le=MAX_RATE_WINDOW_SECONDS)] = Field(
        description="The window's length in seconds (more than 0, at most a day)."
    )

    def rate(self) -> Rate:
        """As the library's `Rate`."""
        return Rate(self.count, self.per_seconds)


class RateOut(BaseModel):
    """A stored rate limit: at most `count` claims in any window of `per_seconds`."""

    count: int
    per_seconds: float


class PolicyIn(_In):
    """All four limits of a queue at once: a limit left out or null is lifted. The paused flag
    is kept (set it with `/pause` and `/resume`)."""

    concurrency: Limit | None = Field(None, description="Most live leases in the queue.")
    group_concurrency: Limit | None = Field(
        None, description="Most live leases in any one group of the queue."
    )
    rate: RateBody | None = Field(None, description="Most claims of the queue per window.")
    group_rate: RateBody | None = Field(
        None, description="Most claims of any one group per window."
    )


class PolicyOut(BaseModel):
    """A queue's policy as stored: its limits (null: none) and whether it is paused."""

    queue: str
    concurrency: int | None
    group_concurrency: int | None
    rate: RateOut | None
    group_rate: RateOut | None
    paused: bool

    @classmethod
    def of(cls, policy: QueuePolicy) -> PolicyOut:
        """From the library's policy."""
        return cls(
            queue=policy.queue,
            concurrency=policy.concurrency,
            group_concurrency=policy.group_concurrency,
            rate=_rate_out(policy.rate),
            group_rate=_rate_out(policy.group_rate),
            paused=policy.paused,
        )


def _rate_out(rate: Rate | None) -> RateOut | None:
    return None if rate is None else RateOut(count=rate.count, per_seconds=rate.per_seconds)


class GroupLeasesOut(BaseModel):
    """How many live leases one group of a queue holds now."""

    group: str | None = Field(description=GROUP_DESCRIPTION)
    live: int

    @classmethod
    def of(cls, row: GroupLeases) -> GroupLeasesOut:
        """From the library's row."""
        return cls(group=row.group, live=row.live)


class GroupsOut(BaseModel):
    """The groups of a queue holding the most live leases now, most first; groups holding none
    are left out."""

    queue: str
    groups: list[GroupLeasesOut]


class ScheduleIn(_In):
    """A schedule to create or replace: `payload` is enqueued into `queue` once per slot of
    `cron` in `timezone`. Every field left out takes its default, as in `Queue.schedule`;
    declaring the same schedule again changes nothing."""

    queue: Name = Field(description="The queue each slot's item goes to.")
    cron: Annotated[str, Field(min_length=1, max_length=MAX_CRON_CHARS)] = Field(
        description="Five fields (minute hour day month weekday), an optional sixth for "
        "seconds, or @yearly, @monthly, @weekly, @daily, @midnight, @hourly."
    )
    payload: Any = Field(None, description="The JSON payload of every item it enqueues.")
    timezone: Annotated[str, Field(min_length=1, max_length=MAX_TIMEZONE_CHARS)] = Field(
        "UTC", description="The IANA time zone the expression is read in."
    )
    priority: Priority = 0
    max_attempts: MaxAttempts | None = None
    group: Name | None = Field(None, description=GROUP_DESCRIPTION)
    catch_up: CatchUp = Field(
        CatchUp.LATEST,
        description="Slots missed while no scheduler ran: enqueue the latest, none, or all.",
    )
    enabled: StrictBool = True


class ScheduleOut(BaseModel):
    """A schedule as stored, with its next slot (null when disabled) and the last slot it
    enqueued and that slot's item. `version` grows with every change; `set_at` is when the
    current version was set (store clock): no slot before it is ever enqueued."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    queue: str
    cron: str
    payload: Any
    timezone: str
    priority: int
    max_attempts: int | None
    group: str | None = Field(description=GROUP_DESCRIPTION)
    catch_up: CatchUp
    enabled: bool
    version: int
    set_at: datetime | None
    last_slot: datetime | None
    last_item_id: int | None
    next_slot: datetime | None

    @classmethod
    def of(cls, schedule: Schedule) -> Self:
        """From a library schedule, field by field by attribute name."""
        return cls.model_validate(schedule)


class SchedulesOut(BaseModel):
    """Every schedule, by name."""

    schedules: list[ScheduleOut]


class ScheduleRunOut(BaseModel):
    """The item a schedule enqueued when run now."""

    name: str
    id: int


class ScheduleRowOut(ScheduleOut):
    """A schedule as the dashboard lists it: with its last item's status (null when it has
    none, or the item was purged)."""

    last_status: Status | None = None


class RatePoint(BaseModel):
    """Items per second over one sampling interval ending at `at`."""

    at: datetime
    claimed: float
    completed: float


class LatencyOut(BaseModel):
    """Percentiles of this server's own handling time, over the last `window_seconds`."""

    count: int
    p50: float | None = Field(description="Seconds; null without observations.")
    p95: float | None
    window_seconds: float


class LeaseRowOut(BaseModel):
    """A live lease, as the dashboard lists it."""

    id: int
    worker: str | None
    attempt: int
    max_attempts: int
    expires_at: datetime | None
    claimed_at: datetime | None = Field(
        description="When this attempt was claimed (from the history); null if none is kept."
    )
    updated_at: datetime = Field(description="The last claim or heartbeat.")
    overdue: bool
    group: str | None = Field(description=GROUP_DESCRIPTION)


class DeadRowOut(BaseModel):
    """A dead item and its last error."""

    id: int
    attempts: int
    max_attempts: int
    last_error: str | None
    updated_at: datetime
    group: str | None = Field(description=GROUP_DESCRIPTION)


class QueuePanelOut(BaseModel):
    """Everything the dashboard shows for one queue."""

    name: str
    stats: StatsOut
    series: list[RatePoint]
    claim_latency: LatencyOut
    fused_latency: LatencyOut
    leases: list[LeaseRowOut]
    dead: list[DeadRowOut]
    policy: PolicyOut
    groups: list[GroupLeasesOut] = Field(
        description="The groups holding the most live leases (up to 10), most first."
    )


class DashboardOut(BaseModel):
    """The dashboard's data: per queue counts, rates, latency, live leases, dead items, the
    policy and the busiest groups."""

    now: datetime
    sample_seconds: float
    queues: list[QueuePanelOut]
    truncated: bool = Field(description="True when there were more queues than shown.")
    schedules: list[ScheduleRowOut] = Field(
        description="The schedules (the first 50 by name) with their last item's status."
    )
    schedules_truncated: bool = Field(description="True when there were more schedules.")
