"""Schedules over HTTP: the five routes, their answers as stored, their problem answers (bad
input, unknown schedule) and their `admin` scope, and both clients' schedule verbs.

Against a live uvicorn server on a SQLite store (as `test_http_flow.py`) that honours the test
clock header, so next slots are exact; each test uses its own schedule and queue names. Whether
slots fire exactly once is the contract suite's job (`tests/contract/test_schedules.py`, both
transports); here one slot is fired through the library to show that the routes read it back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.served_api import Api, problem, served_api
from workclaim import CatchUp, Schedule, ScheduleNotFound, Settings, ValidationError
from workclaim.client import AsyncClient
from workclaim.wire import CLOCK_HEADER

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
AT_T0 = {CLOCK_HEADER: T0.isoformat()}
DAILY = {"queue": "reports", "cron": "30 6 * * *"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    scopes = {"alice": ["work:*", "enqueue"], "root": ["admin"]}
    with served_api(
        tmp_path_factory.mktemp("schedules"),
        scopes,
        settings=Settings(max_payload_bytes=1024),
        allow_clock_override=True,
    ) as api:
        yield api


def put(api: Api, name: str, body: dict[str, Any], **options: Any) -> dict[str, Any]:
    """PUT a schedule as root at T0; asserts a 200 and returns the answer."""
    answer = api.call("root", "PUT", f"/schedules/{name}", json=body, headers=AT_T0, **options)
    assert answer.status_code == 200, answer.text
    doc: dict[str, Any] = answer.json()
    return doc


def test_a_schedule_round_trips_with_every_field(api: Api) -> None:
    body = {
        "queue": "emails",
        "cron": "0  9 * * 1-5",  # spaces are normalised
        "payload": {"digest": True, "n": [1, 2]},
        "timezone": "Europe/Berlin",
        "priority": 5,
        "max_attempts": 3,
        "group": "tenant-7",
        "catch_up": "all",
        "enabled": True,
    }
    stored = put(api, "weekday-digest", body)
    assert stored == {
        **body,
        "name": "weekday-digest",
        "cron": "0 9 * * 1-5",
        "version": 1,
        "set_at": "2026-03-01T12:00:00Z",
        "last_slot": None,
        "last_item_id": None,
        "next_slot": "2026-03-02T08:00:00Z",  # Monday 09:00 in Berlin (UTC+1)
    }
    with api.http("root") as root:
        assert root.get("/schedules/weekday-digest", headers=AT_T0).json() == stored
        listed = root.get("/schedules", headers=AT_T0).json()["schedules"]
        assert stored in listed and [x["name"] for x in listed] == sorted(x["name"] for x in listed)


def test_defaults_and_declaring_again_and_changing(api: Api) -> None:
    first = put(api, "redeclared", DAILY)
    assert (first["payload"], first["timezone"], first["priority"]) == (None, "UTC", 0)
    assert (first["max_attempts"], first["group"], first["catch_up"]) == (None, None, "latest")
    assert first["enabled"] is True and first["version"] == 1
    assert first["next_slot"] == "2026-03-02T06:30:00Z"
    later = {CLOCK_HEADER: "2026-03-01T13:00:00+00:00"}
    with api.http("root") as root:
        same = root.put("/schedules/redeclared", json=DAILY, headers=later).json()
        assert (same["version"], same["set_at"]) == (1, first["set_at"])  # nothing changed
        off = root.put("/schedules/redeclared", json={**DAILY, "enabled": False}, headers=later)
        assert off.json()["version"] == 2 and off.json()["set_at"] == "2026-03-01T13:00:00Z"
        assert off.json()["enabled"] is False and off.json()["next_slot"] is None


def test_run_now_enqueues_the_schedules_item_and_leaves_its_slots(api: Api) -> None:
    body = {**DAILY, "queue": "run-now", "payload": {"k": 1}, "priority": 7, "group": "g1"}
    put(api, "run-me", {**body, "max_attempts": 2})
    with api.http("root") as root:
        ran = root.post("/schedules/run-me/run", headers=AT_T0)
        assert ran.status_code == 201, ran.text
        assert ran.json().keys() == {"name", "id"} and ran.json()["name"] == "run-me"
        item = root.get(f"/items/{ran.json()['id']}").json()
        assert (item["queue"], item["payload"], item["priority"]) == ("run-now", {"k": 1}, 7)
        assert (item["group"], item["max_attempts"], item["status"]) == ("g1", 2, "queued")
        assert item["dedupe_key"] is None  # not a slot
        again = root.post("/schedules/run-me/run", headers=AT_T0).json()["id"]
        assert again != ran.json()["id"]  # each run is an item of its own
        after = root.get("/schedules/run-me", headers=AT_T0).json()
        assert (after["last_slot"], after["last_item_id"], after["version"]) == (None, None, 1)


def test_a_fired_slot_shows_as_the_last_slot_with_its_item(api: Api) -> None:
    put(api, "fired", {**DAILY, "queue": "fired-q"})
    slot = datetime(2026, 3, 2, 6, 30, tzinfo=UTC)
    store = api.queue.sync
    item_id = store.fire_slot(store.get_schedule("fired", now=slot), slot, now=slot)
    assert item_id is not None
    with api.http("root") as root:
        shown = root.get("/schedules/fired", headers={CLOCK_HEADER: slot.isoformat()}).json()
        assert shown["last_slot"] == "2026-03-02T06:30:00Z"
        assert shown["last_item_id"] == item_id
        assert shown["next_slot"] == "2026-03-03T06:30:00Z"
        item = root.get(f"/items/{item_id}").json()
        assert item["dedupe_key"] == "schedule:fired:20260302T063000Z"
        rows = {x["name"]: x for x in root.get("/dashboard").json()["schedules"]}
        assert rows["fired"]["last_item_id"] == item_id
        assert rows["fired"]["last_status"] == "queued"


def test_delete_answers_204_then_404_and_leaves_the_items(api: Api) -> None:
    put(api, "gone", {**DAILY, "queue": "gone-q"})
    with api.http("root") as root:
        item = root.post("/schedules/gone/run").json()["id"]
        deleted = root.delete("/schedules/gone")
        assert deleted.status_code == 204 and deleted.content == b""
        problem(root.get("/schedules/gone"), 404, "schedule-not-found")
        problem(root.delete("/schedules/gone"), 404, "schedule-not-found")
        assert "gone" not in [x["name"] for x in root.get("/schedules").json()["schedules"]]
        assert root.get(f"/items/{item}").json()["status"] == "queued"


def test_an_unknown_schedule_is_a_404_problem(api: Api) -> None:
    with api.http("root") as root:
        for method, path in (
            ("GET", "/schedules/never"),
            ("DELETE", "/schedules/never"),
            ("POST", "/schedules/never/run"),
        ):
            doc = problem(root.request(method, path), 404, "schedule-not-found")
            assert "never" in doc["detail"]
        assert root.get("/queues/never/items").json()["items"] == []  # run enqueued nothing


SCHEDULE_ROUTES = [
    ("GET", "/schedules", None),
    ("GET", "/schedules/guarded", None),
    ("PUT", "/schedules/guarded", {**DAILY, "cron": "* * * * *"}),
    ("DELETE", "/schedules/guarded", None),
    ("POST", "/schedules/guarded/run", None),
]


def test_the_schedule_routes_need_the_admin_scope(api: Api) -> None:
    put(api, "guarded", DAILY)
    for method, path, body in SCHEDULE_ROUTES:
        problem(api.call(None, method, path, json=body), 401, "unauthorized")
        problem(api.call("alice", method, path, json=body), 403, "forbidden")
    # Nothing was changed by the refused calls: still there, as declared, nothing enqueued.
    with api.http("root") as root:
        kept = root.get("/schedules/guarded").json()
        assert (kept["cron"], kept["version"], kept["last_item_id"]) == ("30 6 * * *", 1, None)
        assert root.get("/queues/reports/items").json()["items"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"cron": "* * * * *"},  # no queue
        {"queue": "reports"},  # no cron
        {**DAILY, "cron": ""},
        {**DAILY, "cron": "every day"},
        {**DAILY, "cron": "61 * * * *"},
        {**DAILY, "cron": "* * * * * * *"},
        {**DAILY, "cron": "@fortnightly"},
        {**DAILY, "cron": 5},
        {**DAILY, "cron": "*" * 201},
        {**DAILY, "timezone": "Mars/Olympus_Mons"},
        {**DAILY, "timezone": ""},
        {**DAILY, "timezone": "../../etc/passwd"},
        {**DAILY, "timezone": "America"},  # a folder of the time zone database, not a zone
        {**DAILY, "timezone": None},
        {**DAILY, "queue": "bad name"},
        {**DAILY, "queue": None},
        {**DAILY, "priority": 2**31},
        {**DAILY, "priority": "1"},
        {**DAILY, "max_attempts": 0},
        {**DAILY, "group": "no spaces"},
        {**DAILY, "catch_up": "sometimes"},
        {**DAILY, "enabled": "yes"},
        {**DAILY, "enabled": 1},
        {**DAILY, "next_slot": "2026-03-02T06:30:00Z"},  # not a field of the body
        {**DAILY, "version": 3},
    ],
)
def test_a_bad_schedule_is_a_422_problem_and_stores_nothing(api: Api, body: dict[str, Any]) -> None:
    with api.http("root") as root:
        problem(root.put("/schedules/bad-body", json=body), 422, "validation-error")
        problem(root.get("/schedules/bad-body"), 404, "schedule-not-found")


def test_other_bad_schedule_input_is_a_problem(api: Api) -> None:
    put(api, "kept", DAILY)
    with api.http("root") as root:
        for path in ("/schedules/bad name", "/schedules/" + "x" * 81, "/schedules/-lead"):
            problem(root.get(path), 422, "validation-error")
            problem(root.put(path, json=DAILY), 422, "validation-error")
            problem(root.delete(path), 422, "validation-error")
            problem(root.post(path + "/run"), 422, "validation-error")
        assert put(api, "x" * 80, DAILY)["name"] == "x" * 80  # the longest name is fine
        not_json = root.put(
            "/schedules/kept", content=b"{nope", headers={"content-type": "application/json"}
        )
        problem(not_json, 400, "bad-request")
        big = root.put("/schedules/kept", json={**DAILY, "payload": "x" * 2000})
        problem(big, 413, "payload-too-large")
        problem(root.post("/schedules/kept"), 405, "method-not-allowed")
        assert root.get("/schedules/kept").json()["payload"] is None  # unchanged


def test_the_client_speaks_schedules(api: Api) -> None:
    with api.client("root") as root:
        stored = root.schedule(
            "c-hourly",
            "c-queue",
            "@hourly",
            payload={"n": 1},
            timezone="Asia/Kolkata",  # UTC+05:30: hourly slots fall on the half hour in UTC
            priority=2,
            max_attempts=4,
            group="tenant-1",
            catch_up="none",
            now=T0,
        )
        assert stored == Schedule(
            name="c-hourly",
            queue="c-queue",
            cron="@hourly",
            payload={"n": 1},
            timezone="Asia/Kolkata",
            priority=2,
            max_attempts=4,
            group="tenant-1",
            catch_up=CatchUp.NONE,
            enabled=True,
            version=1,
            set_at=T0,
            next_slot=datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
        )
        assert root.get_schedule("c-hourly", now=T0) == stored
        assert stored in root.schedules(now=T0)
        item = root.run_schedule_now("c-hourly")
        assert root.get(item).payload == {"n": 1} and root.get(item).group == "tenant-1"
        assert root.unschedule("c-hourly") is True
        assert root.unschedule("c-hourly") is False
        with pytest.raises(ScheduleNotFound):
            root.get_schedule("c-hourly")
        with pytest.raises(ScheduleNotFound):
            root.run_schedule_now("c-hourly")
        # Checked before sending, as `Queue` checks them.
        bad_options: list[dict[str, Any]] = [
            {"cron": "nope"},
            {"timezone": "Nowhere/City"},
            {"timezone": "Europe"},
            {"catch_up": "some"},
            {"enabled": 1},
            {"name": "x" * 81},
        ]
        for options in bad_options:
            with pytest.raises(ValidationError):
                root.schedule(**{"name": "c-bad", "queue": "q", "cron": "* * * * *", **options})
        with pytest.raises(ValidationError):
            root.get_schedule("x" * 81)


def test_the_async_client_speaks_schedules(api: Api) -> None:
    async def scenario() -> None:
        async with AsyncClient(api.base, token=api.tokens["root"], retries=0) as root:
            stored = await root.schedule("a-daily", "a-queue", "0 0 * * *", now=T0)
            assert stored.next_slot == datetime(2026, 3, 2, tzinfo=UTC)
            assert await root.get_schedule("a-daily", now=T0) == stored
            assert [s.name for s in await root.schedules() if s.name == "a-daily"] == ["a-daily"]
            assert (await root.get(await root.run_schedule_now("a-daily"))).queue == "a-queue"
            assert await root.unschedule("a-daily") is True
            assert await root.unschedule("a-daily") is False
            with pytest.raises(ScheduleNotFound):
                await root.get_schedule("a-daily")

    asyncio.run(scenario())
