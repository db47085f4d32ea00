"""Take the README's dashboard screenshot from a real run: `python -m tests.browser.screenshot`.

Starts `workclaim serve` on a fresh SQLite file with auth on, runs producers and workers for a
while (HTTP workers with `claim`/`complete_and_claim`, one worker on the database directly, one
that sometimes fails, one that crashes holding its leases), then opens the dashboard in headless
Debian Chromium, signs in with an admin token and saves a screenshot (docs/img/dashboard.png).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from pathlib import Path

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support.http_process import serve_process
from workclaim import Queue
from workclaim.client import Client
from workclaim.server.auth import new_token, token_line, write_private

ERRORS = [
    "SMTPRecipientsRefused: 550 5.1.1 <old@example.org>: mailbox unavailable",
    "TimeoutError: render took longer than 30 s",
    "ValueError: template 'welcome-v2' has no field 'first_name'",
]


def producer(base: str, token: str, stop: threading.Event) -> None:
    with Client(base, token=token) as c:
        n = 0
        while not stop.is_set():
            n += 1
            c.enqueue_many("emails", [{"to": f"user{n}-{i}@example.org"} for i in range(4)])
            c.enqueue("reports", {"report": "daily", "n": n}, max_attempts=2)
            if n % 2 == 0:
                c.enqueue_many("thumbnails", [{"image": f"img/{n}-{i}.jpg"} for i in range(6)])
            stop.wait(0.5)


def http_worker(
    base: str, token: str, queues: list[str], fail_rate: float, stop: threading.Event
) -> None:
    rng = random.Random(token)
    with Client(base, token=token) as c:
        leases = c.claim(queues, limit=4, lease_seconds=20, wait=1)
        while not stop.is_set():
            done = []
            for lease in leases:
                stop.wait(rng.uniform(0.05, 0.3))
                if rng.random() < fail_rate:
                    c.fail(lease, rng.choice(ERRORS), retry=rng.random() < 0.5)
                else:
                    done.append((lease, {"ok": True}))
            _, leases = c.complete_and_claim(done, queues, limit=4, lease_seconds=20)
            if not leases:
                leases = c.claim(queues, limit=4, lease_seconds=20, wait=1)


def direct_worker(url: str, stop: threading.Event) -> None:
    with Queue(url) as q:
        while not stop.is_set():
            for lease in q.claim(
                "thumbnails", worker="thumb-direct", limit=8, lease_seconds=30, wait=1
            ):
                stop.wait(0.04)
                q.complete(lease)


def crashing_worker(base: str, token: str) -> None:
    with Client(base, token=token) as c:
        c.claim(
            "reports", limit=2, lease_seconds=15
        )  # and never heard of again: these leases expire


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=90.0, help="How long to run work first.")
    parser.add_argument("--out", type=Path, default=Path("docs/img/dashboard.png"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'demo.db'}"
        Queue(url).close()  # create and migrate the store before the server and workers start
        tokens = {
            name: new_token()
            for name in ("ops", "mailer-1", "mailer-2", "reporter", "app", "flaky")
        }
        scopes = {"ops": ["admin"], "app": ["enqueue"]}
        lines = [token_line(t, who, scopes.get(who, ["work:*"])) for who, t in tokens.items()]
        write_private(Path(tmp) / "tokens.txt", "\n".join(lines) + "\n")
        stop = threading.Event()
        with serve_process(url, "--tokens", str(Path(tmp) / "tokens.txt")) as base:
            threads = [
                threading.Thread(target=producer, args=(base, tokens["app"], stop)),
                threading.Thread(
                    target=http_worker, args=(base, tokens["mailer-1"], ["emails"], 0.02, stop)
                ),
                threading.Thread(
                    target=http_worker, args=(base, tokens["mailer-2"], ["emails"], 0.02, stop)
                ),
                threading.Thread(
                    target=http_worker, args=(base, tokens["reporter"], ["reports"], 0.25, stop)
                ),
                threading.Thread(target=direct_worker, args=(url, stop)),
            ]
            for t in threads:
                t.start()
            try:
                time.sleep(args.seconds / 2)
                crashing_worker(base, tokens["flaky"])
                time.sleep(args.seconds / 2)
                with sync_playwright() as pw:
                    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    page.goto(base + "/")
                    page.locator("#token-input").fill(tokens["ops"])
                    page.locator("#token-form button[type=submit]").click()
                    page.locator('section.card[data-queue="emails"] svg polyline').first.wait_for()
                    page.wait_for_timeout(2500)  # one more refresh, so every card has drawn
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(args.out), full_page=True)
                    browser.close()
            finally:
                stop.set()
                for t in threads:
                    t.join()
    print(f"screenshot: {args.out}")


if __name__ == "__main__":
    main()
