"""The dashboard's flow control in a real browser against a real `workclaim serve` process: the
policy and paused state per queue, the busiest groups, items' groups, and pause/resume buttons
that change the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_dashboard import Site, card, sign_in, tokens_file
from tests.support.http_process import serve_process
from workclaim import Queue

pytestmark = pytest.mark.timeout(180)


def seed(url: str) -> dict[str, list[int]]:
    """A limited queue `emails` with live leases in two groups and the default group, and an
    unlimited queue `reports`."""
    ids: dict[str, list[int]] = {}
    with Queue(url) as q:
        q.set_policy("emails", concurrency=50, group_concurrency=3, rate=(100, 60))
        ids["big"] = q.enqueue_many("emails", [1, 2, 3], group="tenant-big")
        ids["small"] = [q.enqueue("emails", 4, group="tenant-small")]
        ids["default"] = [q.enqueue("emails", 5)]
        q.claim("emails", worker="w-1", lease_seconds=600, limit=10)
        ids["queued"] = [q.enqueue("emails", 6, group="tenant-new")]  # claimable
        q.enqueue("reports", {"n": 1})
    return ids


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    url = f"sqlite:///{tmp_path / 'flow.db'}"
    ids = seed(url)
    path, root, alice = tokens_file(tmp_path)
    with serve_process(url, "--tokens", str(path), "--sample-seconds", "1") as base:
        yield Site(base, url, root, alice, ids)


def test_the_policy_groups_and_leases_show_what_the_store_holds(
    page: Any, site: Site, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    sign_in(page, site, site.root)
    emails = card(page, "emails")
    expect(emails.locator('[data-state="active"]')).to_be_visible()
    expect(emails.locator('[data-limit="concurrency"]')).to_have_text("50")
    expect(emails.locator('[data-limit="group_concurrency"]')).to_have_text("3")
    expect(emails.locator('[data-limit="rate"]')).to_have_text("100 per 60 s")
    expect(emails.locator('[data-limit="group_rate"]')).to_have_text("none")
    # The busiest groups, most live leases first (ties by name, the default group first).
    groups = emails.locator("[data-groups] [data-group]")
    expect(groups).to_have_count(3)
    assert [g.get_attribute("data-group") for g in groups.all()] == [
        "tenant-big",
        "(default)",
        "tenant-small",
    ]
    expect(emails.locator('[data-group="tenant-big"]')).to_have_text("tenant-big 3")
    reports = card(page, "reports")
    expect(reports.locator('[data-limit="concurrency"]')).to_have_text("none")
    expect(reports.locator("[data-groups]")).to_have_count(0)  # no live lease, no list
    # The live leases name their group.
    row = page.locator(f'#leases tr[data-item="{site.ids["small"][0]}"]')
    expect(row.locator('td[data-field="group"]')).to_have_text("tenant-small")
    default = page.locator(f'#leases tr[data-item="{site.ids["default"][0]}"]')
    expect(default.locator('td[data-field="group"]')).to_have_text("(default)")
    page.screenshot(path=str(artifacts / "dashboard-flow.png"), full_page=True)
    # The item page shows the item's group.
    page.goto(f"{site.base}/ui/items/{site.ids['queued'][0]}")
    expect(page.locator('td[data-field="group"]')).to_have_text("tenant-new")


def test_pause_and_resume_from_the_dashboard(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    sign_in(page, site, site.root)
    emails = card(page, "emails")
    expect(emails.locator('[data-state="active"]')).to_be_visible()
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    emails.locator('button[data-action="pause"]').click()
    expect(emails.locator('[data-state="paused"]')).to_be_visible()
    assert dialogs and "Pause queue emails" in dialogs[0]
    with Queue(site.url) as q:
        assert q.policy("emails").paused is True
        assert q.policy("emails").group_concurrency == 3  # the limits are kept
        assert q.claim("emails", worker="w-2") == []  # tenant-new's item waits
        assert q.policy("reports").paused is False  # only that queue
    emails.locator('button[data-action="resume"]').click()
    expect(emails.locator('[data-state="active"]')).to_be_visible()
    expect(emails.locator('button[data-action="pause"]')).to_be_visible()
    with Queue(site.url) as q:
        assert q.policy("emails").paused is False
        assert [x.id for x in q.claim("emails", worker="w-2")] == site.ids["queued"]


def test_a_declined_pause_changes_nothing(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    sign_in(page, site, site.root)
    emails = card(page, "emails")
    page.on("dialog", lambda dialog: dialog.dismiss())
    emails.locator('button[data-action="pause"]').click()
    expect(emails.locator('[data-state="active"]')).to_be_visible()
    with Queue(site.url) as q:
        assert q.policy("emails").paused is False
