"""`manage.py workclaim_worker`: run Django tasks from workclaim queues until SIGTERM/SIGINT.

The options are those of `workclaim worker`; the store and the queues come from the TASKS
backend (`--backend`, default "default"; `--queue` narrows its QUEUES).
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workclaim.django._compat import task_backends
from workclaim.django.backend import WorkclaimBackend
from workclaim.django.runner import run_task
from workclaim.errors import WorkclaimError
from workclaim.worker import Worker


class Command(BaseCommand):
    help = "Run Django tasks from workclaim queues until SIGTERM or SIGINT, then stop gracefully."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--backend", default="default", help="TASKS alias to work for.")
        parser.add_argument(
            "--queue", "-q", action="append", dest="queues", help="Queue(s) (default: QUEUES)."
        )
        parser.add_argument("--concurrency", type=int, default=1, help="Items worked on at once.")
        parser.add_argument(
            "--lease-seconds", type=float, default=30.0, help="Lease length (s); kept by beats."
        )
        parser.add_argument("--wait", type=float, default=5.0, help="Long-poll wait per claim.")
        parser.add_argument(
            "--grace", type=float, default=30.0, help="Seconds in-flight work gets on SIGTERM."
        )
        parser.add_argument("--name", default=None, help="Worker name (default host-pid).")
        parser.add_argument(
            "--fused",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="Complete finished items and claim new ones in one round trip.",
        )
        parser.add_argument(
            "--max-batch", type=int, default=None, help="Most items one claim takes."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            backend = task_backends[options["backend"]]
        except ImproperlyConfigured as exc:  # no such alias, or a backend that cannot load
            raise CommandError(str(exc)) from exc
        if not isinstance(backend, WorkclaimBackend):
            raise CommandError(
                f"TASKS[{options['backend']!r}] is {type(backend).__name__}, "
                "not workclaim.django.WorkclaimBackend"
            )
        queues = options["queues"] or sorted(backend.queues)
        if not queues:
            raise CommandError("give --queue: this backend's QUEUES allows any queue name")
        try:
            worker = Worker(
                backend.queue,
                queues=queues,
                concurrency=options["concurrency"],
                lease_seconds=options["lease_seconds"],
                wait=options["wait"],
                grace=options["grace"],
                name=options["name"],
                fused=None if options["fused"] else False,
                max_batch=options["max_batch"],
            )
            self.stdout.write(f"workclaim worker {worker.name}: queues {','.join(queues)}")
            self.stdout.flush()
            worker.run(partial(run_task, backend=options["backend"]))
        except WorkclaimError as exc:
            raise CommandError(str(exc)) from exc
