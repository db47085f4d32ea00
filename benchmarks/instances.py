"""Several `workclaim serve` instances behind HAProxy: how fast a long-poll waiting on one
instance is woken by an enqueue through another, and how 1,000 long-polling workers spread over
the instances pick up work.

    python benchmarks/instances.py --postgres 'postgresql://postgres@127.0.0.1:5432/test' \
        --redis 'redis://127.0.0.1:6379/15'

For each store: `--rounds` cross-instance wake-ups (a long-poll through HAProxy, the enqueue
straight to the other instance; p50/p95/max from the enqueue's answer to the long-poll's), then
`--workers` long-polling workers (`--processes` OS processes of asyncio clients) draining
`--items` items enqueued in batches of 100 through HAProxy (pickup = enqueue sent to claim
answered; every item must be claimed exactly once). Target: wake-up p95 <= 100 ms.
Each store gets a schema or key prefix of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
from collections import Counter
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.fleet import Fleet, run_fleet, wake_across
from tests.support.instances import cluster
from tests.support.pgserver import drop_schema
from tests.support.redisserver import delete_prefix
from tests.support.servers import with_query

WAIT = 25.0


def quantile(values: list[float], q: float) -> float:
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, int(q * len(ranked)))]


def measure(store: str, url: str, args: argparse.Namespace, directory: Path) -> dict[str, object]:
    row: dict[str, object] = {"store": store, "instances": args.instances}
    serve_args = ["--max-wait", str(WAIT), "--max-longpolls", str(2 * args.workers)]
    with cluster(url, directory, instances=args.instances, args=serve_args) as front:
        wakes = []
        for n in range(args.rounds):
            answer, ids, seconds = asyncio.run(wake_across(front, f"wake{n}", WAIT))
            assert answer.status_code == 200 and answer.json()["leases"][0]["id"] == ids[0]
            wakes.append(seconds * 1000)
        row |= {
            "wake_ms_p50": round(quantile(wakes, 0.5), 1),
            "wake_ms_p95": round(quantile(wakes, 0.95), 1),
            "wake_ms_max": round(max(wakes), 1),
        }
        fleet = Fleet(front.url, "fleet", args.processes, args.workers // args.processes)
        result = run_fleet(front, fleet, args.items // 100, 100, pause=args.pause)
        assert not result.errors, result.errors[:5]
        assert Counter(i for i, _ in result.claims) == Counter(result.ids), "claimed twice/never"
        row |= {
            "workers": fleet.processes * fleet.clients,
            "items": len(result.ids),
            "items_per_s": round(len(result.ids) / result.seconds, 1),
            "pickup_ms_p50": round(result.pickup(0.5) * 1000, 1),
            "pickup_ms_p95": round(result.pickup(0.95) * 1000, 1),
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", help="PostgreSQL URL (a schema of its own is added)")
    parser.add_argument("--redis", help="Redis URL (a key prefix of its own is added)")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between batches")
    args = parser.parse_args()
    tag = secrets.token_hex(4)
    stores = []
    if args.postgres:
        schema = f"wc_inst_{tag}"
        drop = partial(drop_schema, args.postgres, schema)
        stores.append(("postgres", with_query(args.postgres, schema=schema), drop))
    if args.redis:
        prefix = f"wcinst{tag}"
        drop = partial(delete_prefix, args.redis, prefix)
        stores.append(("redis", with_query(args.redis, prefix=prefix), drop))
    if not stores:
        parser.error("give --postgres and/or --redis")
    for store, url, clean in stores:
        try:
            with tempfile.TemporaryDirectory(prefix="wc-instances-") as directory:
                print(json.dumps(measure(store, url, args, Path(directory))), flush=True)
        finally:
            clean()


if __name__ == "__main__":
    main()
