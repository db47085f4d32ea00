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
        for lease in q.claim("emails", lease=30, max=10, wait=20):
            q.complete(lease)
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpx

from workclaim.errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
    InvalidState,
    ItemNotFound,
    LeaseLost,
    PayloadTooLarge,
    ValidationError,
    WorkclaimError,
)
from workclaim.models import EventKind, HistoryEvent, Item, Lease, QueueStats, Status
from workclaim.validation import (
    MAX_ID,
    check_batch,
    check_delay,
    check_id,
    check_int,
    check_lease,
    check_max_attempts,
    check_name,
    check_priority,
    check_queues,
    check_wait,
    clip_error,
    encode_json,
)

T = TypeVar("T")

CLOCK_HEADER = "X-Workclaim-Now"
PROBLEM_PREFIX = "urn:workclaim:problem:"
_LOCAL_PAYLOAD_CAP = 512 * 1024 * 1024  # the server enforces its own cap (413)
_SHORT_204 = 0.05  # a 204 faster than this, with wait left, means the server caps waits low


class AccessDenied(WorkclaimError):
    """401 or 403: the bearer token is missing, unknown, or lacks the scope for this call."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Call(Generic[T]):
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
    headers: dict[str, str] = field(default_factory=dict)


# -- parsing ---------------------------------------------------------------------------------
def _dt(value: Any) -> datetime:
    return datetime.fromisoformat(value)


def _lease(data: dict[str, Any]) -> Lease:
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
    )


def _item(data: dict[str, Any]) -> Item:
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
    )


def _stats(data: dict[str, Any]) -> QueueStats:
    names = ("queued", "claimed", "done", "dead", "cancelled", "expired")
    return QueueStats(queue=data["queue"], **{n: int(data[n]) for n in names})


def _event(data: dict[str, Any]) -> HistoryEvent:
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


def _status(value: Status | str) -> Status:
    try:
        return Status(value)
    except ValueError:
        choices = ", ".join(s.value for s in Status)
        raise ValidationError(f"status must be one of {choices}, got {value!r}") from None


def _leases(response: httpx.Response) -> list[Lease]:
    if response.status_code == 204:
        return []
    return [_lease(x) for x in response.json()["leases"]]


def _none(response: httpx.Response) -> None:
    return None


def _error_for(call: _Call[Any], response: httpx.Response) -> WorkclaimError:
    """The library error for a problem response."""
    status = response.status_code
    try:
        doc = response.json()
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


def _retry_after(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    raw = response.headers.get("Retry-After")
    try:
        return min(float(raw), 5.0) if raw is not None else None
    except ValueError:
        return None


def _lease_body(lease: Lease) -> dict[str, Any]:
    if not isinstance(lease, Lease):
        raise ValidationError(f"expected a Lease from claim(), got {type(lease).__name__}")
    return {"id": lease.id, "token": lease.token, "worker": lease.worker, "attempt": lease.attempt}


def _payload(value: Any, what: str) -> Any:
    """Check a payload with the library's rules; returns it as plain JSON data."""
    return json.loads(encode_json(value, what=what, max_bytes=_LOCAL_PAYLOAD_CAP))


class _Calls:
    """Builds each operation's `_Call` after checking its arguments like `Queue` does."""

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
    ) -> _Call[int]:
        queue = check_name(queue, "queue name")
        body = _Calls._options(priority, delay, run_at, max_attempts, dedupe_key)
        body["payload"] = _payload(payload, "payload")
        return _Call(
            "POST",
            f"/queues/{queue}/items",
            lambda r: int(r.json()["ids"][0]),
            body=body,
            now=now,  # not idempotent even with a dedupe key: see the module docstring
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
    ) -> _Call[list[int]]:
        queue = check_name(queue, "queue name")
        body = _Calls._options(priority, delay, run_at, max_attempts, None)
        body["payloads"] = [_payload(p, f"payload #{i}") for i, p in enumerate(payloads)]
        return _Call(
            "POST",
            f"/queues/{queue}/items",
            lambda r: [int(x) for x in r.json()["ids"]],
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
        return body

    @staticmethod
    def claim(
        queues: str | Sequence[str],
        *,
        worker: str | None,
        lease: float,
        max: int,
        wait: float,
        now: datetime | None,
    ) -> _Call[list[Lease]]:
        body: dict[str, Any] = {
            "queues": list(check_queues(queues)),
            "lease": check_lease(lease),
            "max": check_batch(max),
            "wait": check_wait(wait),
        }
        if worker is not None:
            body["worker"] = check_name(worker, "worker name")
        return _Call("POST", "/worker/claim", _leases, body=body, now=now, extra_timeout=wait)

    @staticmethod
    def complete_and_claim(
        done: Iterable[Lease | tuple[Lease, Any]],
        queues: str | Sequence[str],
        *,
        worker: str | None,
        lease: float,
        max: int,
        now: datetime | None,
    ) -> _Call[tuple[list[Lease], list[Lease]]]:
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
            "lease": check_lease(lease),
            "max": 0 if max == 0 else check_batch(max),
        }
        if worker is not None:
            body["worker"] = check_name(worker, "worker name")

        def parse(response: httpx.Response) -> tuple[list[Lease], list[Lease]]:
            data = response.json()
            refused = {(x["id"], x["token"]) for x in data["lost"]}
            lost = [x for x in finished if (x.id, x.token) in refused]
            return lost, [_lease(x) for x in data["leases"]]

        # Not repeated: a lost answer would hand the same items out twice.
        return _Call("POST", "/worker/complete-and-claim", parse, body=body, now=now)

    @staticmethod
    def heartbeat(lease: Lease, *, extend: float | None, now: datetime | None) -> _Call[Lease]:
        body = _lease_body(lease)
        if extend is not None:
            body["extend"] = check_lease(extend)
        return _Call(
            "POST",
            "/worker/heartbeat",
            lambda r: dataclasses.replace(lease, expires_at=_dt(r.json()["expires_at"])),
            body=body,
            idempotent=True,
            now=now,
            lease=lease,
        )

    @staticmethod
    def complete(lease: Lease, *, result: Any, now: datetime | None) -> _Call[None]:
        body = _lease_body(lease)
        if result is not None:
            body["result"] = _payload(result, "result")
        return _Call(
            "POST", "/worker/complete", _none, body=body, idempotent=True, now=now, lease=lease
        )

    @staticmethod
    def release(lease: Lease, *, delay: float, now: datetime | None) -> _Call[None]:
        body = _lease_body(lease) | {"delay": check_delay(delay)}
        return _Call(
            "POST", "/worker/release", _none, body=body, idempotent=True, now=now, lease=lease
        )

    @staticmethod
    def fail(lease: Lease, error: object, *, retry: bool, now: datetime | None) -> _Call[Status]:
        body = _lease_body(lease) | {"error": clip_error(error), "retry": bool(retry)}
        return _Call(
            "POST",
            "/worker/fail",
            lambda r: Status(r.json()["status"]),
            body=body,
            idempotent=True,
            now=now,
            lease=lease,
        )

    @staticmethod
    def get(item_id: int) -> _Call[Item]:
        item_id = check_id(item_id)
        return _Call(
            "GET", f"/items/{item_id}", lambda r: _item(r.json()), idempotent=True, item_id=item_id
        )

    @staticmethod
    def history(
        item_id: int, *, limit: int, start: int, newest_first: bool
    ) -> _Call[list[HistoryEvent]]:
        item_id = check_id(item_id)
        params: dict[str, Any] = {
            "limit": check_batch(limit, "limit"),
            "start": check_int(start, "start", low=0, high=MAX_ID),
            "order": "newest" if newest_first else "oldest",
        }
        return _Call(
            "GET",
            f"/items/{item_id}/history",
            lambda r: [_event(x) for x in r.json()["events"]],
            params=params,
            idempotent=True,
            item_id=item_id,
        )

    @staticmethod
    def items(
        queue: str, status: Status | str, *, limit: int, after: int | None
    ) -> _Call[list[Item]]:
        queue = check_name(queue, "queue name")
        params: dict[str, Any] = {
            "status": _status(status).value,
            "limit": check_batch(limit, "limit"),
        }
        if after is not None:
            params["after"] = check_id(after)
        return _Call(
            "GET",
            f"/queues/{queue}/items",
            lambda r: [_item(x) for x in r.json()["items"]],
            params=params,
            idempotent=True,
        )

    @staticmethod
    def queues() -> _Call[list[str]]:
        return _Call(
            "GET", "/queues", lambda r: [x["queue"] for x in r.json()["queues"]], idempotent=True
        )

    @staticmethod
    def stats(queue: str, *, now: datetime | None) -> _Call[QueueStats]:
        queue = check_name(queue, "queue name")
        return _Call(
            "GET", f"/queues/{queue}/stats", lambda r: _stats(r.json()), idempotent=True, now=now
        )

    @staticmethod
    def cancel(item_id: int, *, now: datetime | None) -> _Call[None]:
        item_id = check_id(item_id)
        return _Call("DELETE", f"/items/{item_id}", _none, now=now, item_id=item_id)

    @staticmethod
    def requeue(item_id: int, *, max_attempts: int | None, now: datetime | None) -> _Call[None]:
        item_id = check_id(item_id)
        body = {} if max_attempts is None else {"max_attempts": check_max_attempts(max_attempts)}
        return _Call(
            "POST", f"/items/{item_id}/requeue", _none, body=body, now=now, item_id=item_id
        )

    @staticmethod
    def purge(queue: str, *, older_than: float, now: datetime | None) -> _Call[int]:
        queue = check_name(queue, "queue name")
        body = {"older_than": check_delay(older_than, "older_than")}
        return _Call(
            "POST",
            f"/queues/{queue}/purge",
            lambda r: int(r.json()["deleted"]),
            body=body,
            now=now,
        )


class _Settings:
    """Connection options shared by `Client` and `AsyncClient`."""

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
        self.headers = {"Accept": "application/json, application/problem+json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def request_args(self, call: _Call[Any]) -> dict[str, Any]:
        headers = dict(call.headers)
        if call.now is not None:
            if call.now.tzinfo is None:
                raise ValidationError("now must be a timezone-aware datetime")
            headers[CLOCK_HEADER] = call.now.isoformat()
        args: dict[str, Any] = {
            "headers": headers,
            "timeout": httpx.Timeout(
                self.timeout + call.extra_timeout, connect=min(self.timeout, 5.0)
            ),
        }
        if call.body is not None:
            args["content"] = json.dumps(call.body, ensure_ascii=False, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        if call.params:
            args["params"] = call.params
        return args

    def pause(self, attempt: int, response: httpx.Response | None) -> float:
        hinted = _retry_after(response)
        if hinted is not None:
            return hinted
        raw: float = min(self.backoff * 2.0**attempt, 2.0)
        return raw / 2 + random.random() * raw / 2

    @staticmethod
    def should_retry(
        call: _Call[Any], exc: Exception | None, response: httpx.Response | None
    ) -> bool:
        """Whether `call` may be sent again after `exc` or `response`: only when nothing
        reached the server, or when a repeat cannot act twice (`call.idempotent`)."""
        if exc is not None:
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
                return True  # nothing reached the server
            return call.idempotent and isinstance(exc, httpx.TransportError)
        assert response is not None
        if response.status_code == 429:
            return True  # refused before doing anything
        return call.idempotent and response.status_code in (502, 503, 504)

    @staticmethod
    def unreachable(call: _Call[Any], exc: Exception) -> BackendUnavailable:
        return BackendUnavailable(
            f"{call.method} {call.path}: the server did not answer ({type(exc).__name__}); "
            "retry later"
        )


class Client:
    """The `Queue` API over HTTP (sync). One `httpx.Client`, safe to share between threads."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.1,
        max_connections: int = 100,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._cfg = _Settings(url, token, timeout, retries, backoff)
        self.url = self._cfg.url
        self._http = httpx.Client(
            base_url=self._cfg.url,
            headers=self._cfg.headers,
            limits=httpx.Limits(max_connections=max_connections),
            transport=transport,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def migrate(self) -> None:
        """Nothing to do: the server migrates its own store."""

    def _send(self, call: _Call[T]) -> T:
        args = self._cfg.request_args(call)
        attempt = 0
        while True:
            response: httpx.Response | None = None
            error: Exception | None = None
            try:
                response = self._http.request(call.method, call.path, **args)
            except httpx.HTTPError as exc:
                error = exc
            if response is not None and response.status_code < 400:
                return call.parse(response)
            if attempt < self._cfg.retries and self._cfg.should_retry(call, error, response):
                time.sleep(self._cfg.pause(attempt, response))
                attempt += 1
                continue
            if error is not None:
                raise self._cfg.unreachable(call, error) from error
            assert response is not None
            raise _error_for(call, response)

    def enqueue(
        self,
        queue: str,
        payload: Any,
        *,
        priority: int = 0,
        delay: float = 0.0,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        dedupe_key: str | None = None,
        now: datetime | None = None,
    ) -> int:
        """See `Queue.enqueue`."""
        return self._send(
            _Calls.enqueue(
                queue,
                payload,
                priority=priority,
                delay=delay,
                run_at=run_at,
                max_attempts=max_attempts,
                dedupe_key=dedupe_key,
                now=now,
            )
        )

    def enqueue_many(
        self,
        queue: str,
        payloads: Iterable[Any],
        *,
        priority: int = 0,
        delay: float = 0.0,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        now: datetime | None = None,
    ) -> list[int]:
        """See `Queue.enqueue_many`."""
        call = _Calls.enqueue_many(
            queue,
            payloads,
            priority=priority,
            delay=delay,
            run_at=run_at,
            max_attempts=max_attempts,
            now=now,
        )
        if not call.body["payloads"]:
            return []
        return self._send(call)

    def claim(
        self,
        queues: str | Sequence[str],
        *,
        worker: str | None = None,
        lease: float = 30.0,
        max: int = 1,
        wait: float = 0.0,
        now: datetime | None = None,
    ) -> list[Lease]:
        """See `Queue.claim`. `worker` may be omitted: the server uses the token's identity.
        A server that caps waits shorter than `wait` is asked again until `wait` is over."""
        call = _Calls.claim(queues, worker=worker, lease=lease, max=max, wait=wait, now=now)
        deadline = time.monotonic() + call.body["wait"]
        while True:
            started = time.monotonic()
            leases = self._send(call)
            remaining = deadline - time.monotonic()
            if leases or remaining <= 0.01:
                return leases
            if time.monotonic() - started < _SHORT_204:
                time.sleep(min(0.5, remaining))  # the server does not wait: do not spin
                remaining = deadline - time.monotonic()
            call = _Calls.claim(
                queues, worker=worker, lease=lease, max=max, wait=_larger(remaining, 0.0), now=now
            )

    def heartbeat(
        self, lease: Lease, *, extend: float | None = None, now: datetime | None = None
    ) -> Lease:
        """See `Queue.heartbeat`."""
        return self._send(_Calls.heartbeat(lease, extend=extend, now=now))

    def complete(self, lease: Lease, *, result: Any = None, now: datetime | None = None) -> None:
        """See `Queue.complete`."""
        self._send(_Calls.complete(lease, result=result, now=now))

    def release(self, lease: Lease, *, delay: float = 0.0, now: datetime | None = None) -> None:
        """See `Queue.release`."""
        self._send(_Calls.release(lease, delay=delay, now=now))

    def fail(
        self, lease: Lease, error: object, *, retry: bool = True, now: datetime | None = None
    ) -> Status:
        """See `Queue.fail`."""
        return self._send(_Calls.fail(lease, error, retry=retry, now=now))

    def get(self, item_id: int) -> Item:
        """See `Queue.get`."""
        return self._send(_Calls.get(item_id))

    def complete_and_claim(
        self,
        done: Iterable[Lease | tuple[Lease, Any]],
        queues: str | Sequence[str],
        *,
        worker: str | None = None,
        lease: float = 30.0,
        max: int = 1,
        now: datetime | None = None,
    ) -> tuple[list[Lease], list[Lease]]:
        """See `Queue.complete_and_claim`; `worker` may be omitted (the token's identity).
        Never sent twice."""
        return self._send(
            _Calls.complete_and_claim(done, queues, worker=worker, lease=lease, max=max, now=now)
        )

    def history(
        self, item_id: int, *, limit: int = 1_000, start: int = 0, newest_first: bool = False
    ) -> list[HistoryEvent]:
        """See `Queue.history`."""
        return self._send(
            _Calls.history(item_id, limit=limit, start=start, newest_first=newest_first)
        )

    def items(
        self,
        queue: str,
        status: Status | str = Status.QUEUED,
        *,
        limit: int = 100,
        after: int | None = None,
    ) -> list[Item]:
        """See `Queue.items`."""
        return self._send(_Calls.items(queue, status, limit=limit, after=after))

    def queues(self) -> list[str]:
        """See `Queue.queues` (admin)."""
        return self._send(_Calls.queues())

    def stats(self, queue: str, *, now: datetime | None = None) -> QueueStats:
        """See `Queue.stats` (needs the admin scope)."""
        return self._send(_Calls.stats(queue, now=now))

    def cancel(self, item_id: int, *, now: datetime | None = None) -> None:
        """See `Queue.cancel`."""
        self._send(_Calls.cancel(item_id, now=now))

    def requeue(
        self, item_id: int, *, max_attempts: int | None = None, now: datetime | None = None
    ) -> None:
        """See `Queue.requeue` (admin)."""
        self._send(_Calls.requeue(item_id, max_attempts=max_attempts, now=now))

    def purge(self, queue: str, *, older_than: float, now: datetime | None = None) -> int:
        """See `Queue.purge` (admin)."""
        return self._send(_Calls.purge(queue, older_than=older_than, now=now))


class AsyncClient:
    """The `AsyncQueue` API over HTTP, on `httpx.AsyncClient`."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.1,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._cfg = _Settings(url, token, timeout, retries, backoff)
        self.url = self._cfg.url
        self._http = httpx.AsyncClient(
            base_url=self._cfg.url,
            headers=self._cfg.headers,
            limits=httpx.Limits(max_connections=max_connections),
            transport=transport,
        )

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def migrate(self) -> None:
        """Nothing to do: the server migrates its own store."""

    async def _send(self, call: _Call[T]) -> T:
        args = self._cfg.request_args(call)
        attempt = 0
        while True:
            response: httpx.Response | None = None
            error: Exception | None = None
            try:
                response = await self._http.request(call.method, call.path, **args)
            except httpx.HTTPError as exc:
                error = exc
            if response is not None and response.status_code < 400:
                return call.parse(response)
            if attempt < self._cfg.retries and self._cfg.should_retry(call, error, response):
                await asyncio.sleep(self._cfg.pause(attempt, response))
                attempt += 1
                continue
            if error is not None:
                raise self._cfg.unreachable(call, error) from error
            assert response is not None
            raise _error_for(call, response)

    async def enqueue(
        self,
        queue: str,
        payload: Any,
        *,
        priority: int = 0,
        delay: float = 0.0,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        dedupe_key: str | None = None,
        now: datetime | None = None,
    ) -> int:
        """See `Queue.enqueue`."""
        return await self._send(
            _Calls.enqueue(
                queue,
                payload,
                priority=priority,
                delay=delay,
                run_at=run_at,
                max_attempts=max_attempts,
                dedupe_key=dedupe_key,
                now=now,
            )
        )

    async def enqueue_many(
        self,
        queue: str,
        payloads: Iterable[Any],
        *,
        priority: int = 0,
        delay: float = 0.0,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        now: datetime | None = None,
    ) -> list[int]:
        """See `Queue.enqueue_many`."""
        call = _Calls.enqueue_many(
            queue,
            payloads,
            priority=priority,
            delay=delay,
            run_at=run_at,
            max_attempts=max_attempts,
            now=now,
        )
        if not call.body["payloads"]:
            return []
        return await self._send(call)

    async def claim(
        self,
        queues: str | Sequence[str],
        *,
        worker: str | None = None,
        lease: float = 30.0,
        max: int = 1,
        wait: float = 0.0,
        now: datetime | None = None,
    ) -> list[Lease]:
        """See `Client.claim`."""
        call = _Calls.claim(queues, worker=worker, lease=lease, max=max, wait=wait, now=now)
        deadline = time.monotonic() + call.body["wait"]
        while True:
            started = time.monotonic()
            leases = await self._send(call)
            remaining = deadline - time.monotonic()
            if leases or remaining <= 0.01:
                return leases
            if time.monotonic() - started < _SHORT_204:
                await asyncio.sleep(min(0.5, remaining))
                remaining = deadline - time.monotonic()
            call = _Calls.claim(
                queues, worker=worker, lease=lease, max=max, wait=_larger(remaining, 0.0), now=now
            )

    async def heartbeat(
        self, lease: Lease, *, extend: float | None = None, now: datetime | None = None
    ) -> Lease:
        """See `Queue.heartbeat`."""
        return await self._send(_Calls.heartbeat(lease, extend=extend, now=now))

    async def complete(
        self, lease: Lease, *, result: Any = None, now: datetime | None = None
    ) -> None:
        """See `Queue.complete`."""
        await self._send(_Calls.complete(lease, result=result, now=now))

    async def release(
        self, lease: Lease, *, delay: float = 0.0, now: datetime | None = None
    ) -> None:
        """See `Queue.release`."""
        await self._send(_Calls.release(lease, delay=delay, now=now))

    async def fail(
        self, lease: Lease, error: object, *, retry: bool = True, now: datetime | None = None
    ) -> Status:
        """See `Queue.fail`."""
        return await self._send(_Calls.fail(lease, error, retry=retry, now=now))

    async def get(self, item_id: int) -> Item:
        """See `Queue.get`."""
        return await self._send(_Calls.get(item_id))

    async def complete_and_claim(
        self,
        done: Iterable[Lease | tuple[Lease, Any]],
        queues: str | Sequence[str],
        *,
        worker: str | None = None,
        lease: float = 30.0,
        max: int = 1,
        now: datetime | None = None,
    ) -> tuple[list[Lease], list[Lease]]:
        """See `Client.complete_and_claim`."""
        return await self._send(
            _Calls.complete_and_claim(done, queues, worker=worker, lease=lease, max=max, now=now)
        )

    async def history(
        self, item_id: int, *, limit: int = 1_000, start: int = 0, newest_first: bool = False
    ) -> list[HistoryEvent]:
        """See `Queue.history`."""
        return await self._send(
            _Calls.history(item_id, limit=limit, start=start, newest_first=newest_first)
        )

    async def items(
        self,
        queue: str,
        status: Status | str = Status.QUEUED,
        *,
        limit: int = 100,
        after: int | None = None,
    ) -> list[Item]:
        """See `Queue.items`."""
        return await self._send(_Calls.items(queue, status, limit=limit, after=after))

    async def queues(self) -> list[str]:
        """See `Queue.queues` (admin)."""
        return await self._send(_Calls.queues())

    async def stats(self, queue: str, *, now: datetime | None = None) -> QueueStats:
        """See `Queue.stats` (admin)."""
        return await self._send(_Calls.stats(queue, now=now))

    async def cancel(self, item_id: int, *, now: datetime | None = None) -> None:
        """See `Queue.cancel`."""
        await self._send(_Calls.cancel(item_id, now=now))

    async def requeue(
        self, item_id: int, *, max_attempts: int | None = None, now: datetime | None = None
    ) -> None:
        """See `Queue.requeue` (admin)."""
        await self._send(_Calls.requeue(item_id, max_attempts=max_attempts, now=now))

    async def purge(self, queue: str, *, older_than: float, now: datetime | None = None) -> int:
        """See `Queue.purge` (admin)."""
        return await self._send(_Calls.purge(queue, older_than=older_than, now=now))


def _larger(a: float, b: float) -> float:
    """`max` of two floats (the builtin is shadowed by the `max` argument in `claim`)."""
    return a if a >= b else b
