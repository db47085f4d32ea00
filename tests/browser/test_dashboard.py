"""The dashboard in a real browser against a real `workclaim serve` process.

The store is seeded directly (as workers that talk to the database would) with items in every
status, including a lease that expired and a dead item whose error is HTML. The page must show
what the database holds, act on it, ask for a token, and say when the database is unreachable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.http_process import serve_process
from tests.support.servers import postgres_url, provider
from workclaim import Queue, Status
from workclaim.server.auth import new_token, token_line, write_private

pytestmark = pytest.mark.timeout(180)

HOSTILE = "<img src=x onerror=\"document.title='pwned'\"> boom & </td>\nTraceback: line two"


@dataclass
class Site:
    base: str
    url: str  # the store's URL, for checking what the page shows against the database
    root: str  # an admin token
    alice: str  # a token without the admin scope
    ids: dict[str, list[int]]


def tokens_file(tmp_path: Path) -> tuple[Path, str, str]:
    root, alice = new_token(), new_token()
    path = tmp_path / "tokens.txt"
    write_private(
        path,
        token_line(root, "root", ["admin"]) + "\n" + token_line(alice, "alice", ["work:*"]) + "\n",
    )
    return path, root, alice


def seed(url: str) -> dict[str, list[int]]:
    """Items in every status on `emails`, and some finished work on `reports`."""
    ids: dict[str, list[int]] = {}
    past = datetime.now(UTC) - timedelta(minutes=10)
    with Queue(url) as q:
        ids["done"] = [q.enqueue("emails", {"to": "a@example.org"})]
        q.complete(q.claim("emails", worker="w-1")[0], result={"sent": True})
        ids["dead"] = []
        for n in range(2):
            ids["dead"].append(q.enqueue("emails", {"to": f"bad{n}@example.org"}, max_attempts=1))
            q.fail(q.claim("emails", worker="w-1")[0], HOSTILE, retry=False)
        ids["claimed"] = [q.enqueue("emails", {"to": "b@example.org"})]
        q.claim("emails", worker="w-live", lease_seconds=600)
        ids["cancelled"] = [q.enqueue("emails", {"to": "c@example.org"})]
        q.cancel(ids["cancelled"][0])
        ids["queued"] = q.enqueue_many("emails", [{"to": f"u{i}@example.org"} for i in range(3)])
        for n in range(4):
            q.enqueue("reports", {"n": n})
        for lease in q.claim("reports", worker="w-2", limit=3):
            q.complete(lease)
        # Last, since a later claim on any queue may reap it: a lease that ran out ten minutes ago.
        ids["expired"] = [q.enqueue("emails", {"to": "gone@example.org"}, now=past)]
        q.claim("emails", worker="w-gone", lease_seconds=5, now=past)
    return ids


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """A server with auth on over a seeded SQLite file, PostgreSQL schema or MariaDB database."""
    url = provider(request.param)(request, tmp_path)
    ids = seed(url)
    path, root, alice = tokens_file(tmp_path)
    with serve_process(url, "--tokens", str(path), "--sample-seconds", "1") as base:
        yield Site(base, url, root, alice, ids)


def sign_in(page: Any, site: Site, token: str) -> None:
    page.goto(site.base + "/")
    page.locator("#token-input").fill(token)
    page.locator("#token-form button[type=submit]").click()


def card(page: Any, queue: str) -> Any:
    return page.locator(f'section.card[data-queue="{queue}"]')


def test_counts_match_the_database_and_user_data_stays_text(
    page: Any, site: Site, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    sign_in(page, site, site.root)
    emails = card(page, "emails")
    expect(emails).to_be_visible()
    with Queue(site.url) as q:
        for name in ("emails", "reports"):
            stats = q.stats(name)
            for status in ("queued", "claimed", "expired", "done", "dead", "cancelled", "total"):
                cell = card(page, name).locator(f'[data-count="{status}"]')
                expect(cell).to_have_text(str(getattr(stats, status)))
    assert (stats.done, stats.queued) == (3, 1)  # reports
    # The live leases: the expired one is highlighted as overdue, the live one is not.
    expect(
        page.locator(f'#leases tr.overdue[data-item="{site.ids["expired"][0]}"]')
    ).to_be_visible()
    live = page.locator(f'#leases tr[data-item="{site.ids["claimed"][0]}"]')
    expect(live).to_contain_text("w-live")
    expect(live).not_to_have_class(re.compile("overdue"))
    # The dead items' error is shown as the text it is, never as markup.
    errors = page.locator("#dead td.error-text")
    expect(errors).to_have_count(2)
    assert errors.first.inner_text() == HOSTILE
    assert page.locator("#dead img").count() == 0
    assert page.title() == "workclaim"
    expect(emails.locator("svg.chart")).to_be_visible()
    shot = artifacts / f"dashboard-{site.url.split(':', 1)[0]}.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert site.root not in page.url
    # The item page shows the stored error with its newlines (a traceback stays readable).
    page.goto(f"{site.base}/ui/items/{site.ids['dead'][0]}")
    stored = page.locator('td[data-field="last_error"]')
    expect(stored).to_be_visible()
    assert stored.inner_text() == HOSTILE


def test_requeue_from_the_dead_list_moves_the_item_back_to_queued(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    target = site.ids["dead"][0]
    sign_in(page, site, site.root)
    row = page.locator(f'#dead tr[data-item="{target}"]')
    expect(row).to_be_visible()
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    row.locator('button[data-action="requeue"]').click()
    expect(row).to_have_count(0)  # gone from the dead list on the next refresh
    assert dialogs and f"#{target}" in dialogs[0]
    with Queue(site.url) as q:
        item = q.get(target)
        assert item.status == Status.QUEUED and item.attempts == 0
        assert q.stats("emails").dead == 1
    expect(card(page, "emails").locator('[data-count="dead"]')).to_have_text("1")
    # The item page shows its history, requeue included.
    page.goto(f"{site.base}/ui/items/{target}")
    kinds = page.locator("#history tbody tr")
    expect(kinds).to_have_count(3)
    assert [r.get_attribute("data-kind") for r in kinds.all()] == ["claimed", "failed", "requeued"]
    expect(page.locator('td[data-field="status"]')).to_have_text("queued")


def test_a_declined_confirmation_changes_nothing(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    target = site.ids["dead"][1]
    sign_in(page, site, site.root)
    row = page.locator(f'#dead tr[data-item="{target}"]')
    page.on("dialog", lambda dialog: dialog.dismiss())
    row.locator('button[data-action="requeue"]').click()
    expect(row).to_be_visible()
    with Queue(site.url) as q:
        assert q.get(target).status == Status.DEAD


def test_the_token_prompt_refuses_bad_tokens_and_keeps_a_good_one(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    page.goto(site.base + "/")
    expect(page.locator("#login")).to_be_visible()
    sign_in(page, site, "wc_not-a-real-token")
    expect(page.locator("#login-error")).to_contain_text("refused")
    page.locator("#token-input").fill(site.alice)
    page.locator("#token-form button[type=submit]").click()
    expect(page.locator("#login-error")).to_contain_text("admin scope")
    page.locator("#token-input").fill(site.root)
    page.locator("#token-form button[type=submit]").click()
    expect(card(page, "emails")).to_be_visible()
    expect(page.locator("#login")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('workclaim.token')") == site.root
    assert site.root not in page.url
    page.reload()  # kept for the browser session: no prompt again
    expect(card(page, "emails")).to_be_visible()
    expect(page.locator("#login")).to_be_hidden()
    page.locator("#forget").click()
    expect(page.locator("#login")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('workclaim.token')") is None


def _through(url: str, port: int) -> str:
    """`url` with its host and port replaced by 127.0.0.1:`port`."""
    parts = urlsplit(url)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


@pytest.mark.timeout(240)
def test_the_banner_shows_while_the_database_is_unreachable(
    page: Any, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL-backed server reaches its database through a fault proxy; the proxy then
    refuses and resets every connection, as a stopped database would, and later lets them by."""
    from playwright.sync_api import expect

    url = postgres_url(request, tmp_path)
    ids = seed(url)
    path, root, alice = tokens_file(tmp_path)
    target = urlsplit(url)
    monkeypatch.setenv("WORKCLAIM_TIMEOUT", "2")
    with FaultProxy("127.0.0.1", target.port or 5432) as proxy:
        proxied = _through(url, proxy.port)
        with serve_process(proxied, "--tokens", str(path), "--sample-seconds", "1") as base:
            site = Site(base, url, root, alice, ids)
            sign_in(page, site, root)
            expect(card(page, "emails")).to_be_visible()
            expect(page.locator("#banner")).to_be_hidden()
            proxy.set_mode("refuse")
            proxy.reset_all()
            banner = page.locator("#banner")
            expect(banner).to_be_visible(timeout=30_000)
            expect(banner).to_contain_text("database is unreachable")
            expect(card(page, "emails")).to_be_visible()  # the last figures stay on the page
            page.screenshot(path=str(tmp_path / "banner.png"))
            proxy.set_mode("pass")
            expect(banner).to_be_hidden(timeout=30_000)
            with Queue(url) as q:
                expect(card(page, "emails").locator('[data-count="queued"]')).to_have_text(
                    str(q.stats("emails").queued)
                )


def test_cancel_from_the_item_page(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    target = site.ids["queued"][0]
    sign_in(page, site, site.root)
    expect(card(page, "emails")).to_be_visible()
    page.goto(f"{site.base}/ui/items/{target}")  # the token is still in this tab's session
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator('button[data-action="cancel"]').click()
    expect(page.locator('td[data-field="status"]')).to_have_text("cancelled")
    expect(page.locator('#history tr[data-kind="cancelled"]')).to_have_count(1)
    with Queue(site.url) as q:
        assert q.get(target).status == Status.CANCELLED
