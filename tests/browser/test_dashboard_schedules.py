"""The dashboard's schedules panel in a real browser against a real `workclaim serve` process:
each schedule's queue, cron and time zone, state, next and last slot, and the last slot's item
(a link to its page, with its status); the panel follows schedules removed elsewhere, and its
Run now and Remove buttons change the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_dashboard import Site, sign_in, tokens_file
from tests.support.http_process import serve_process
from tests.support.servers import provider
from workclaim import Queue

pytestmark = pytest.mark.timeout(180)

YEARLY = "0 0 1 1 *"  # no slot comes due while a test runs, so nothing fires by itself
DECLARED = datetime(2025, 12, 31, 23, 0, tzinfo=UTC)
SLOT = datetime(2026, 1, 1, tzinfo=UTC)
NONE = "\u2013"  # what the page shows for no value (an en dash)


def seed(url: str) -> dict[str, list[int]]:
    """Three schedules: `new-year` whose slot fired and whose item is done, `berlin` (another
    time zone, disabled, never fired) and `spare`."""
    with Queue(url) as q:
        q.schedule("new-year", "greetings", YEARLY, payload={"say": "hi"}, now=DECLARED)
        fired = q.fire_slot(q.get_schedule("new-year", now=SLOT), SLOT, now=SLOT)
        assert fired is not None
        [lease] = q.claim("greetings", worker="w-1")
        q.complete(lease, result="sent")
        q.schedule("berlin", "reports", "30 6 * * 1-5", timezone="Europe/Berlin", enabled=False)
        q.schedule("spare", "reports", "@daily")
    return {"fired": [fired]}


@pytest.fixture(params=["sqlite", "mariadb"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    url = provider(request.param)(request, tmp_path)
    ids = seed(url)
    path, root, alice = tokens_file(tmp_path)
    with serve_process(url, "--tokens", str(path)) as base:
        yield Site(base, url, root, alice, ids)


def row(page: Any, name: str) -> Any:
    return page.locator(f'#schedules tr[data-schedule="{name}"]')


def test_the_panel_shows_each_schedule_and_links_its_last_item(
    page: Any, site: Site, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    sign_in(page, site, site.root)
    rows = page.locator("#schedules tr[data-schedule]")
    expect(rows).to_have_count(3)
    assert [r.get_attribute("data-schedule") for r in rows.all()] == ["berlin", "new-year", "spare"]
    fired = row(page, "new-year")
    expect(fired.locator('[data-field="queue"]')).to_have_text("greetings")
    expect(fired.locator('[data-field="cron"]')).to_have_text(f"{YEARLY} UTC")
    expect(fired.locator('[data-enabled="true"]')).to_have_text("enabled")
    expect(fired.locator('[data-field="last_slot"]')).to_contain_text("2026-01-01 00:00:00.000 UTC")
    with Queue(site.url) as q:
        stored = q.get_schedule("new-year")
    assert stored.next_slot is not None
    next_shown = stored.next_slot.strftime("%Y-%m-%d %H:%M:%S.000 UTC")
    expect(fired.locator('[data-field="next_slot"]')).to_contain_text(next_shown)
    item = site.ids["fired"][0]
    expect(fired.locator('[data-field="last_item"] [data-status]')).to_have_text("done")
    berlin = row(page, "berlin")
    expect(berlin.locator('[data-field="cron"]')).to_have_text("30 6 * * 1-5 Europe/Berlin")
    expect(berlin.locator('[data-enabled="false"]')).to_have_text("disabled")
    expect(berlin.locator('[data-field="next_slot"]')).to_have_text(NONE)
    expect(berlin.locator('[data-field="last_item"]')).to_have_text(NONE)
    page.screenshot(path=str(artifacts / "dashboard-schedules.png"), full_page=True)
    # The last item's link opens that item's page: the slot's item, done, with its result.
    fired.locator('[data-field="last_item"] a').click()
    expect(page).to_have_url(f"{site.base}/ui/items/{item}")
    expect(page.locator('td[data-field="status"]')).to_have_text("done")
    expect(page.locator('td[data-field="dedupe_key"]')).to_have_text(
        "schedule:new-year:20260101T000000Z"
    )


def test_the_panel_follows_a_schedule_removed_elsewhere(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    sign_in(page, site, site.root)
    expect(row(page, "spare")).to_be_visible()
    with Queue(site.url) as q:
        assert q.unschedule("spare") is True
    expect(row(page, "spare")).to_have_count(0)  # at the next refresh
    expect(page.locator("#schedules tr[data-schedule]")).to_have_count(2)
    with Queue(site.url) as q:
        for name in ("new-year", "berlin"):
            q.unschedule(name)
    expect(page.locator("#schedules")).to_contain_text("No schedule is declared.")


def test_run_now_and_remove_from_the_panel(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    sign_in(page, site, site.root)
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    row(page, "spare").locator('button[data-action="run"]').click()
    with Queue(site.url) as q:
        expect(page.locator("section.card[data-queue='reports']")).to_be_visible()
        [queued] = q.items("reports")
        assert queued.dedupe_key is None and q.get_schedule("spare").last_slot is None
    row(page, "spare").locator('button[data-action="unschedule"]').click()
    expect(row(page, "spare")).to_have_count(0)
    assert dialogs[0].startswith("Enqueue the item of schedule spare now")
    assert dialogs[1].startswith("Remove schedule spare?")
    with Queue(site.url) as q:
        assert [s.name for s in q.schedules()] == ["berlin", "new-year"]
        assert [x.id for x in q.items("reports")] == [queued.id]  # its item stays


def test_a_declined_removal_changes_nothing(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    sign_in(page, site, site.root)
    page.on("dialog", lambda dialog: dialog.dismiss())
    row(page, "spare").locator('button[data-action="unschedule"]').click()
    expect(row(page, "spare")).to_be_visible()
    with Queue(site.url) as q:
        assert q.get_schedule("spare").enabled is True
