"""The HTTP client's sans-I/O core: requests built, answers read, retries decided, once.

Nothing here opens a connection or sleeps. `Calls` checks a method's arguments like `Queue` does
and builds its `Call` (path, body, whether a repeat is safe, how to read the answer); `Options`
turns a `Call` into the `Send` a transport passes to httpx; `exchange` is the retry loop as a
plan: it yields a `Send` (the transport answers with the response or the httpx error) or a pause
in seconds (the transport sleeps), and returns the parsed result or raises the library error.
`claim_pause` decides whether an empty claim is asked again. `Client` and `AsyncClient` only run
these plans (see `_api.py`), so both behave the same by construction.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import httpx

from workclaim import fastjson
from workclaim.errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
    InvalidState,
    ItemNotFound,
    LeaseLost,
    PayloadTooLarge,
    ScheduleNotFound,
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
from workclaim.schedules import Cron, check_catch_up, check_schedule_name
from workclaim.validation import (
    MAX_ID,
    check_batch,
    check_delay,
    check_flag,
    check_group,
    check_id,
    check_int,
    check_lease,
    check_max_attempts,
    check_name,
    check_policy,
    check_priority,
    check_queues,
    check_wait,
    clip_error,
    encode_json,
)
from workclaim.wire import CLOCK_HEADER, PROBLEM_MEDIA_TYPE, PROBLEM_PREFIX

T = TypeVar("T")

LOCAL_PAYLOAD_CAP = 512 * 1024 * 1024  # the server enforces its own cap (413)
SHORT_204 = 0.05  # a 204 faster than this, with wait left, means the server caps waits low
MAX_RETRY_AFTER = 5.0  # a longer Retry-After is waited only this long before the next try


class AccessDenied(WorkclaimError):
    """401 or 403: the bearer token is missing, unknown, or lacks the scope for this call."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Send:
    """One request for the transport to send: `http.request(method, path, **options)`."""

    method: str
    path: str
    options: dict[str, Any]


Answer = httpx.Response | httpx.HTTPError | None
"""What a transport sends back into a plan: the response or the httpx error for a `Send`,
None after a pause."""

Plan = Generator[Send | float, Answer, T]
"""A call plan: yields a `Send` to make or a pause in seconds, returns the call's result."""


@dataclass(slots=True)
class Call(Generic[T]):
    """One HTTP call: what to send, whether it may be repeated, how to read the answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    body: Any = None
    params: dict[str, Any] | None = None
    idempotent: bool = False  # a repeat changes nothing the first try did, whatever came between
    now: datetime | None = None
    extra_timeout: float = 0.0
    lease: Lease | None = None
    item_id: int | None = None


# -- reading answers -------------------------------------------------------------------------
def _dt(value: Any) -> datetime:
    return datetime.fromisoformat(value)


def lease_of(data: dict[str, Any]) -> Lease:
    """A `Lease` from its JSON form."""
    return Lease(
        id=data["id"],
        queue=data["queue"],
        payload=data["payload"],
        token=data["token"],
        attempt=data["attempt"],
        max_attempts=data["max_attempts"],
        expires_at=_dt(data["expires_at"]),
        worker=data["worker"],
        lease_seconds=float(data["lease_seconds"]),
        group=data.get("group"),  # absent from a server older than flow control
    )


def item_of(data: dict[str, Any]) -> Item:
    """An `Item` from its JSON form."""
    return Item(
        id=data["id"],
        queue=data["queue"],
        payload=data["payload"],
        status=Status(data["status"]),
        priority=data["priority"],
        run_at=_dt(data["run_at"]),
        attempts=data["attempts"],
        max_attempts=data["max_attempts"],
        dedupe_key=data["dedupe_key"],
        worker=data["worker"],
        expires_at=None if data["expires_at"] is None else _dt(data["expires_at"]),
        last_error=data["last_error"],
        result=data["result"],
        created_at=_dt(data["created_at"]),
        updated_at=_dt(data["updated_at"]),
        group=data.get("group"),
    )


def stats_of(data: dict[str, Any]) -> QueueStats:
    """`QueueStats` from its JSON form."""
    names = ("queued", "claimed", "done", "dead", "cancelled", "expired")
    return QueueStats(queue=data["queue"], **{n: int(data[n]) for n in names})


def _rate_of(data: dict[str, Any] | None) -> Rate | None:
    return None if data is None else Rate(int(data["count"]), float(data["per_seconds"]))


def policy_of(data: dict[str, Any]) -> QueuePolicy:
    """A `QueuePolicy` from its JSON form."""
    return QueuePolicy(
        queue=data["queue"],
        concurrency=data["concurrency"],
        group_concurrency=data["group_concurrency"],
        rate=_rate_of(data["rate"]),
        group_rate=_rate_of(data["group_rate"]),
        paused=bool(data["paused"]),
    )


def _rate_body(rate: Rate | None) -> dict[str, Any] | None:
    return None if rate is None else {"count": rate.count, "per_seconds": rate.per_seconds}


def event_of(data: dict[str, Any]) -> HistoryEvent:
    """A `HistoryEvent` from its JSON form."""
    return HistoryEvent(
        item_id=data["item_id"],
        kind=EventKind(data["kind"]),
        at=_dt(data["at"]),
        attempt=data["attempt"],
        status=Status(data["status"]),
        token=data["token"],
        worker=data["worker"],
        error=data["error"],
    )


def _dt_or_none(value: Any) -> datetime | None:
    return None if value is None else _dt(value)


def schedule_of(data: dict[str, Any]) -> Schedule:
    """A `Schedule` from its JSON form."""
    return Schedule(
        name=data["name"],
        queue=data["queue"],
        cron=data["cron"],
        payload=data["payload"],
        timezone=data["timezone"],
        priority=data["priority"],
        max_attempts=data["max_attempts"],
        group=data["group"],
        catch_up=CatchUp(data["catch_up"]),
        enabled=bool(data["enabled"]),
        version=data["version"],
        set_at=_dt_or_none(data["set_at"]),
        last_slot=_dt_or_none(data["last_slot"]),
        last_item_id=data["last_item_id"],
        next_slot=_dt_or_none(data["next_slot"]),
    )


def _schedule(response: httpx.Response) -> Schedule:
    return schedule_of(fastjson.loads(response.content))


def _leases(response: httpx.Response) -> list[Lease]:
    if response.status_code == 204:
        return []
    return [lease_of(x) for x in fastjson.loads(response.content)["leases"]]


def _none(response: httpx.Response) -> None:
    return None


def error_for(call: Call[Any], response: httpx.Response) -> WorkclaimError:
    """The library error for a problem response."""
    status = response.status_code
    try:
        doc = fastjson.loads(response.content)
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    slug = str(doc.get("type", "")).removeprefix(PROBLEM_PREFIX)
    detail = str(doc.get("detail") or doc.get("title") or f"HTTP {status}")
    if slug == "lease-lost" or (status == 409 and call.lease is not None):
        lease = call.lease
        if lease is not None:
            return LeaseLost(lease.id, lease.token, detail.rsplit(": ", 1)[-1])
        return InvalidState(detail)
    if slug == "item-not-found" and call.item_id is not None:
        return ItemNotFound(call.item_id)
    if slug == "schedule-not-found":
        return ScheduleNotFound(detail)
    if slug == "invalid-state" or status == 409:
        return InvalidState(detail)
    if status == 413:
        return PayloadTooLarge(detail)
    if status in (400, 422):
        return ValidationError(detail)
    if status in (401, 403):
        return AccessDenied(detail, status)
    if status == 404:
        if call.item_id is not None:
            return ItemNotFound(call.item_id)
        return ConfigError(f"{call.method} {call.path}: not found; is this a workclaim server?")
    if status in (429, 503):
        return BackendUnavailable(f"{detail} (HTTP {status}); retry later")
    return BackendError(f"the server answered HTTP {status}: {detail}")


# -- building calls --------------------------------------------------------------------------
def _status(value: Status | str) -> Status:
    try:
        return Status(value)
    except ValueError:
        choices = ", ".join(s.value for s in Status)
        raise ValidationError(f"status must be one of {choices}, got {value!r}") from None


def _lease_body(lease: Lease) -> dict[str, Any]:
    if not isinstance(lease, Lease):
        raise ValidationError(f"expected a Lease from claim(), got {type(lease).__name__}")
    return {"id": lease.id, "token": lease.token, "worker": lease.worker, "attempt": lease.attempt}


def _payload(value: Any, what: str) -> Any:
    """Check a payload with the library's rules; returns it as plain JSON data."""
    return fastjson.loads(encode_json(value, what=what, max_bytes=LOCAL_PAYLOAD_CAP))


class Calls:
    """Builds each operation's `Call` after checking its arguments like `Queue` does."""

    @staticmethod
    def enqueue(
        queue: str,
        payload: Any,
        *,
        priority: int,
        delay: float,
        run_at: datetime | None,
        max_attempts: int | None,
        dedupe_key: str | None,
        now: datetime | None,
        group: str | None = None,
    ) -> Call[int]:
        queue = check_name(queue, "queue name")
        body = Calls._options(priority, delay, run_at, max_attempts, dedupe_key, group)
        body["payload"] = _payload(payload, "payload")
        return Call(
            "POST",
            f"/queues/{queue}/items",
            lambda r: int(fastjson.loads(r.content)["ids"][0]),
            body=body,
            now=now,  # not idempotent even with a dedupe key: see the package docstring
        )

    @staticmethod
    def enqueue_many(
        queue: str,
        payloads: Iterable[Any],
        *,
        priority: int,
        delay: float,
        run_at: datetime | None,
        max_attempts: int | None,
        now: datetime | None,
        group: str | None = None,
    ) -> Call[list[int]]:
        queue = check_name(queue, "queue name")
        body = Calls._options(priority, delay, run_at, max_attempts, None, group)
        body["payloads"] = [_payload(p, f"payload #{i}") for i, p in enumerate(payloads)]
        return Call(
            "POST",
            f"/queues/{queue}/items",
            lambda r: [int(x) for x in fastjson.loads(r.content)["ids"]],
            body=body,
            now=now,
        )

    @staticmethod
    def _options(
        priority: int,
        delay: float,
        run_at: datetime | None,
        max_attempts: int | None,
        dedupe_key: str | None,
        group: str | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"priority": check_priority(priority), "delay": check_delay(delay)}
        if run_at is not None:
            if not isinstance(run_at, datetime) or run_at.tzinfo is None:
                raise ValidationError("run_at must be a timezone-aware datetime")
            if delay:
                raise ValidationError("give either delay or run_at, not both")
            body["run_at"] = run_at.isoformat()
        if max_attempts is not None:
            body["max_attempts"] = check_max_attempts(max_attempts)
        if dedupe_key is not None:
            body["dedupe_key"] = check_name(dedupe_key, "dedupe key")
        group = check_group(group)
        if group is not None:  # sent only when given: an older server refuses unknown fields
            body["group"] = group
        return body

    @staticmethod
    def claim(
        queues: str | Sequence[str],
        *,
        worker: str | None,
        lease_seconds: float,
        limit: int,
        wait: float,
        now: datetime | None,
    ) -> Call[list[Lease]]:
        body: dict[str, Any] = {
            "queues": list(check_queues(queues)),
            "lease_seconds": check_lease(lease_seconds),
            "limit": check_batch(limit),
            "wait": check_wait(wait),
        }
        if worker is not None:
            body["worker"] = check_name(worker, "worker name")
        return Call("POST", "/worker/claim", _leases, body=body, now=now, extra_timeout=wait)

    @staticmethod
    def complete_and_claim(
        done: Iterable[Lease | tuple[Lease, Any]],
        queues: str | Sequence[str],
        *,
        worker: str | None,
        lease_seconds: float,
        limit: int,
        now: datetime | None,
    ) -> Call[tuple[list[Lease], list[Lease]]]:
        finished: list[Lease] = []
        refs: list[dict[str, Any]] = []
        for entry in done:
            held, result = entry if isinstance(entry, tuple) else (entry, None)
            ref = _lease_body(held)
            if result is not None:
                ref["result"] = _payload(result, "result")
            finished.append(held)
            refs.append(ref)
        body: dict[str, Any] = {
            "done": refs,
            "queues": list(check_queues(queues)),
            "lease_seconds": check_lease(lease_seconds),
            "limit": 0 if limit == 0 else check_batch(limit),
        }
        if worker is not None:
            body["worker"] = check_name(worker, "worker name")

        def parse(response: httpx.Response) -> tuple[list[Lease], list[Lease]]:
            data = fastjson.loads(response.content)
            refused = {(x["id"], x["token"]) for x in data["lost"]}
            lost = [x for x in finished if (x.id, x.token) in refused]
            return lost, [lease_of(x) for x in data["leases"]]

        # Not repeated: a lost answer would hand the same items out twice.
        return Call("POST", "/worker/complete-and-claim", parse, body=body, now=now)

    @staticmethod
    def heartbeat(lease: Lease, *, extend: float | None, now: datetime | None) -> Call[Lease]:
        body = _lease_body(lease)
        if extend is not None:
            body["extend"] = check_lease(extend)
        return Call(
            "POST",
            "/worker/heartbeat",
            lambda r: dataclasses.replace(
                lease, expires_at=_dt(fastjson.loads(r.content)["expires_at"])
            ),
            body=body,
            idempotent=True,
            now=now,
            lease=lease,
        )

    @staticmethod
    def complete(lease: Lease, *, result: Any, now: datetime | None) -> Call[None]:
        body = _lease_body(lease)
        if result is not None:
            body["result"] = _payload(result, "result")
        return Call(
            "POST", "/worker/complete", _none, body=body, idempotent=True, now=now, lease=lease
        )

    @staticmethod
    def release(lease: Lease, *, delay: float, now: datetime | None) -> Call[None]:
        body = _lease_body(lease) | {"delay": check_delay(delay)}
        return Call(
            "POST", "/worker/release", _none, body=body, idempotent=True, now=now, lease=lease
        )

    @staticmethod
    def fail(lease: Lease, error: object, *, retry: bool, now: datetime | None) -> Call[Status]:
        body = _lease_body(lease) | {"error": clip_error(error), "retry": bool(retry)}
        return Call(
            "POST",
            "/worker/fail",
            lambda r: Status(fastjson.loads(r.content)["status"]),
            body=body,
            idempotent=True,
            now=now,
            lease=lease,
        )

    @staticmethod
    def get(item_id: int) -> Call[Item]:
        item_id = check_id(item_id)
        return Call(
            "GET",
            f"/items/{item_id}",
            lambda r: item_of(fastjson.loads(r.content)),
            idempotent=True,
            item_id=item_id,
        )

    @staticmethod
    def history(
        item_id: int, *, limit: int, start: int, newest_first: bool
    ) -> Call[list[HistoryEvent]]:
        item_id = check_id(item_id)
        params: dict[str, Any] = {
            "limit": check_batch(limit, "limit"),
            "start": check_int(start, "start", low=0, high=MAX_ID),
            "order": "newest" if newest_first else "oldest",
        }
        return Call(
            "GET",
            f"/items/{item_id}/history",
            lambda r: [event_of(x) for x in fastjson.loads(r.content)["events"]],
            params=params,
            idempotent=True,
            item_id=item_id,
        )

    @staticmethod
    def items(
        queue: str, status: Status | str, *, limit: int, after: int | None
    ) -> Call[list[Item]]:
        queue = check_name(queue, "queue name")
        params: dict[str, Any] = {
            "status": _status(status).value,
            "limit": check_batch(limit, "limit"),
        }
        if after is not None:
            params["after"] = check_id(after)
        return Call(
            "GET",
            f"/queues/{queue}/items",
            lambda r: [item_of(x) for x in fastjson.loads(r.content)["items"]],
            params=params,
            idempotent=True,
        )

    @staticmethod
    def queues() -> Call[list[str]]:
        return Call(
            "GET",
            "/queues",
            lambda r: [x["queue"] for x in fastjson.loads(r.content)["queues"]],
            idempotent=True,
        )

    @staticmethod
    def stats(queue: str, *, now: datetime | None) -> Call[QueueStats]:
        queue = check_name(queue, "queue name")
        return Call(
            "GET",
            f"/queues/{queue}/stats",
            lambda r: stats_of(fastjson.loads(r.content)),
            idempotent=True,
            now=now,
        )

    @staticmethod
    def cancel(item_id: int, *, now: datetime | None) -> Call[None]:
        item_id = check_id(item_id)
        return Call("DELETE", f"/items/{item_id}", _none, now=now, item_id=item_id)

    @staticmethod
    def requeue(item_id: int, *, max_attempts: int | None, now: datetime | None) -> Call[None]:
        item_id = check_id(item_id)
        body = {} if max_attempts is None else {"max_attempts": check_max_attempts(max_attempts)}
        return Call("POST", f"/items/{item_id}/requeue", _none, body=body, now=now, item_id=item_id)

    @staticmethod
    def purge(queue: str, *, older_than: float, now: datetime | None) -> Call[int]:
        queue = check_name(queue, "queue name")
        body = {"older_than": check_delay(older_than, "older_than")}
        return Call(
            "POST",
            f"/queues/{queue}/purge",
            lambda r: int(fastjson.loads(r.content)["deleted"]),
            body=body,
            now=now,
        )

    @staticmethod
    def set_policy(
        queue: str,
        *,
        concurrency: int | None,
        group_concurrency: int | None,
        rate: Rate | tuple[int, float] | None,
        group_rate: Rate | tuple[int, float] | None,
    ) -> Call[QueuePolicy]:
        policy = check_policy(queue, concurrency, group_concurrency, rate, group_rate)
        body = {
            "concurrency": policy.concurrency,
            "group_concurrency": policy.group_concurrency,
            "rate": _rate_body(policy.rate),
            "group_rate": _rate_body(policy.group_rate),
        }
        return Call(
            "PUT",
            f"/queues/{policy.queue}/policy",
            lambda r: policy_of(r.json()),
            body=body,
            idempotent=True,  # it replaces the whole policy: a repeat changes nothing more
        )

    @staticmethod
    def policy(queue: str) -> Call[QueuePolicy]:
        queue = check_name(queue, "queue name")
        return Call(
            "GET", f"/queues/{queue}/policy", lambda r: policy_of(r.json()), idempotent=True
        )

    @staticmethod
    def set_paused(queue: str, paused: bool) -> Call[QueuePolicy]:
        queue = check_name(queue, "queue name")
        verb = "pause" if paused else "resume"
        return Call(
            "POST", f"/queues/{queue}/{verb}", lambda r: policy_of(r.json()), idempotent=True
        )

    @staticmethod
    def live_leases_by_group(
        queue: str, *, limit: int, now: datetime | None
    ) -> Call[list[GroupLeases]]:
        queue = check_name(queue, "queue name")
        return Call(
            "GET",
            f"/queues/{queue}/groups",
            lambda r: [GroupLeases(x["group"], int(x["live"])) for x in r.json()["groups"]],
            params={"limit": check_batch(limit, "limit")},
            idempotent=True,
            now=now,
        )

    @staticmethod
    def schedule(
        name: str,
        queue: str,
        cron: str,
        *,
        payload: Any,
        timezone: str,
        priority: int,
        max_attempts: int | None,
        group: str | None,
        catch_up: str,
        enabled: bool,
        now: datetime | None,
    ) -> Call[Schedule]:
        name = check_schedule_name(name)
        body: dict[str, Any] = {
            "queue": check_name(queue, "queue name"),
            "payload": _payload(payload, "payload"),
            "priority": check_priority(priority),
            "max_attempts": None if max_attempts is None else check_max_attempts(max_attempts),
            "group": check_group(group),
            "catch_up": check_catch_up(catch_up).value,
            "enabled": check_flag(enabled, "enabled"),
        }
        parsed = Cron.parse(cron, timezone)
        body |= {"cron": parsed.expression, "timezone": parsed.timezone}
        return Call(
            "PUT",
            f"/schedules/{name}",
            _schedule,
            body=body,
            idempotent=True,  # it replaces the whole schedule; the same one again changes nothing
            now=now,
        )

    @staticmethod
    def unschedule(name: str) -> Call[None]:
        name = check_schedule_name(name)
        # Not repeated: a repeat after a lost answer would say "there was none" (404).
        return Call("DELETE", f"/schedules/{name}", _none)

    @staticmethod
    def schedules(*, now: datetime | None) -> Call[list[Schedule]]:
        return Call(
            "GET",
            "/schedules",
            lambda r: [schedule_of(x) for x in fastjson.loads(r.content)["schedules"]],
            idempotent=True,
            now=now,
        )

    @staticmethod
    def get_schedule(name: str, *, now: datetime | None) -> Call[Schedule]:
        name = check_schedule_name(name)
        return Call("GET", f"/schedules/{name}", _schedule, idempotent=True, now=now)

    @staticmethod
    def run_schedule_now(name: str, *, now: datetime | None) -> Call[int]:
        name = check_schedule_name(name)
        return Call(
            "POST",
            f"/schedules/{name}/run",
            lambda r: int(fastjson.loads(r.content)["id"]),
            now=now,  # not repeated: a repeat would enqueue a second item
        )


# -- sending and retrying --------------------------------------------------------------------
def retry_after(response: httpx.Response | None) -> float | None:
    """The server's `Retry-After` in seconds (at most `MAX_RETRY_AFTER`), or None."""
    if response is None:
        return None
    raw = response.headers.get("Retry-After")
    try:
        return min(float(raw), MAX_RETRY_AFTER) if raw is not None else None
    except ValueError:
        return None


def should_retry(call: Call[Any], exc: Exception | None, response: httpx.Response | None) -> bool:
    """Whether `call` may be sent again after `exc` or `response`: only when nothing reached
    the server, or when a repeat cannot act twice (`call.idempotent`)."""
    if exc is not None:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            return True  # nothing reached the server
        return call.idempotent and isinstance(exc, httpx.TransportError)
    assert response is not None
    if response.status_code == 429:
        return True  # refused before doing anything
    return call.idempotent and response.status_code in (502, 503, 504)


def unreachable(call: Call[Any], exc: Exception) -> BackendUnavailable:
    """The error for a call that got no answer (after any retries)."""
    return BackendUnavailable(
        f"{call.method} {call.path}: the server did not answer ({type(exc).__name__}); retry later"
    )


class Options:
    """The connection options `Client` and `AsyncClient` share, checked once: where the server
    is, the headers of every request, the timeout and how often and how long to back off."""

    def __init__(
        self, url: str, token: str | None, timeout: float, retries: int, backoff: float
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"not a server URL: {url!r}; use http://host:port or https://...")
        if not 0.05 <= timeout <= 3_600:
            raise ConfigError("timeout must be between 0.05 and 3600 seconds")
        if not 0 <= retries <= 20:
            raise ConfigError("retries must be between 0 and 20")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.headers = {"Accept": f"application/json, {PROBLEM_MEDIA_TYPE}"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def request(self, call: Call[Any]) -> Send:
        """The request for `call`: its clock header, timeout, JSON body and query."""
        headers: dict[str, str] = {}
        if call.now is not None:
            if call.now.tzinfo is None:
                raise ValidationError("now must be a timezone-aware datetime")
            headers[CLOCK_HEADER] = call.now.isoformat()
        options: dict[str, Any] = {
            "headers": headers,
            "timeout": httpx.Timeout(
                self.timeout + call.extra_timeout, connect=min(self.timeout, 5.0)
            ),
        }
        if call.body is not None:
            options["content"] = fastjson.dumps(call.body)
            headers["Content-Type"] = "application/json"
        if call.params:
            options["params"] = call.params
        return Send(call.method, call.path, options)

    def pause(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before retry number `attempt + 1`: the server's `Retry-After`, else
        exponential backoff (capped at 2 s) with jitter over its upper half."""
        hinted = retry_after(response)
        if hinted is not None:
            return hinted
        raw: float = min(self.backoff * 2.0**attempt, 2.0)
        return raw / 2 + random.random() * raw / 2


def exchange(options: Options, call: Call[T]) -> Plan[T]:
    """Send `call` until it succeeds or must not be sent again; returns the parsed answer,
    raises the library error for the last answer (or `BackendUnavailable` for no answer)."""
    send = options.request(call)
    attempt = 0
    while True:
        answer = yield send
        if isinstance(answer, httpx.Response):
            if answer.status_code < 400:
                return call.parse(answer)
            response: httpx.Response | None = answer
            error: httpx.HTTPError | None = None
        else:
            response, error = None, answer
        if attempt < options.retries and should_retry(call, error, response):
            yield options.pause(attempt, response)
            attempt += 1
            continue
        if error is not None:
            raise unreachable(call, error) from error
        assert response is not None
        raise error_for(call, response)


def claim_pause(got_leases: bool, started: float, deadline: float, now: float) -> float | None:
    """After a claim answered at monotonic `now` (sent at `started`, waiting until `deadline`):
    None to return its answer, else the seconds to pause before asking again (0 for at once).

    The server may cap a long-poll shorter than the `wait` asked for, so an empty answer with
    wait left is asked again until the wait is over; an empty answer that came back at once
    (the server does not wait at all) is asked again only after a pause, so as not to spin."""
    remaining = deadline - now
    if got_leases or remaining <= 0.01:
        return None
    if now - started < SHORT_204:
        return min(0.5, remaining)
    return 0.0
