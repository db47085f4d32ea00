"""`workclaim worker`: run a handler `module:function` over a queue, from a database or a server."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, Any

import typer

from workclaim.api import QueueAPI
from workclaim.errors import WorkclaimError


def _load(spec: str) -> Any:
    """The callable named by `module:function` (the current directory is importable)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise typer.BadParameter("give the handler as module:function")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise typer.BadParameter(f"{module_name!r} has no {attr!r}") from exc
    if not callable(target):
        raise typer.BadParameter(f"{spec} is not callable")
    return target


def _handler_and_queues(
    ctx: typer.Context,
    handler: str | None,
    queues: list[str],
    tasks: list[str] | None,
    lease_seconds: float,
) -> tuple[Any, list[str], float]:
    """The handler to run, its queues and lease: `module:function` with --queue, or --tasks
    (queues and lease from the tasks unless given)."""
    if (handler is None) == (not tasks):
        print(
            "error: give a handler module:function or --tasks MODULE (one of them)", file=sys.stderr
        )
        raise typer.Exit(2)
    if handler is not None:
        if not queues:
            print("error: give --queue (the queue(s) to work on)", file=sys.stderr)
            raise typer.Exit(2)
        return _load(handler), queues, lease_seconds
    from workclaim.tasks.loading import task_worker

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        setup = task_worker(tasks or [], queues)
    except WorkclaimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from exc
    given = [ctx.get_parameter_source(n) for n in ("lease_seconds", "lease")]
    if all(g is None or g.name == "DEFAULT" for g in given):
        lease_seconds = setup.lease_seconds
    return setup.handler, setup.queues, lease_seconds


def worker(
    ctx: typer.Context,
    handler: Annotated[
        str | None, typer.Argument(help="The handler, as module:function (or use --tasks).")
    ] = None,
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", help="Queue(s) to work on (with --tasks: their queues)."),
    ] = None,
    tasks: Annotated[
        list[str] | None,
        typer.Option(
            "--tasks", help="Run the @task functions of this module or package (all submodules)."
        ),
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", envvar="WORKCLAIM_DB", help="Database URL.")
    ] = None,
    server: Annotated[
        str | None, typer.Option("--server", envvar="WORKCLAIM_SERVER", help="Server URL.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="WORKCLAIM_TOKEN", help="Bearer token (with --server)."),
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Items worked on at once.")] = 1,
    lease_seconds: Annotated[
        float, typer.Option(help="Lease length (s); heartbeats keep it.")
    ] = 30.0,
    wait: Annotated[float, typer.Option(help="Long-poll wait per claim (s).")] = 5.0,
    grace: Annotated[float, typer.Option(help="Seconds in-flight work gets on SIGTERM.")] = 30.0,
    name: Annotated[
        str | None, typer.Option(help="Worker name (with --db; default host-pid).")
    ] = None,
    fused: Annotated[
        bool,
        typer.Option(help="Complete finished items and claim new ones in one round trip."),
    ] = True,
    max_batch: Annotated[
        int | None,
        typer.Option(help="Most items one claim takes (default: the concurrency)."),
    ] = None,
    scheduler: Annotated[
        bool,
        typer.Option(
            help="Fire the store's schedules in a thread beside the claimer (--db only: a worker "
            "over HTTP runs none; `serve --scheduler` does)."
        ),
    ] = True,
    lease: Annotated[float | None, typer.Option("--lease", hidden=True)] = None,
) -> None:
    """Run HANDLER over items of the queue(s) until SIGTERM or SIGINT, then stop gracefully."""
    from workclaim.worker import Worker

    if lease is not None:  # the deprecated spelling of --lease-seconds
        given = ctx.get_parameter_source("lease_seconds")
        if given is not None and given.name != "DEFAULT":
            print("error: give --lease-seconds only (--lease is its old name)", file=sys.stderr)
            raise typer.Exit(2)
        print("warning: --lease is deprecated, use --lease-seconds", file=sys.stderr)
        lease_seconds = lease
    if (db is None) == (server is None):
        print("error: give exactly one of --db URL or --server URL", file=sys.stderr)
        raise typer.Exit(2)
    fn, queue, lease_seconds = _handler_and_queues(ctx, handler, queue or [], tasks, lease_seconds)
    source: QueueAPI
    try:
        if server is not None:
            from workclaim.client import Client

            source = Client(server, token=token, timeout=10.0 + wait)
        else:
            from workclaim.config import Settings
            from workclaim.queue import Queue

            assert db is not None
            source = Queue(db, settings=Settings.from_env())
        try:
            runtime = Worker(
                source,
                queues=queue,
                concurrency=concurrency,
                lease_seconds=lease_seconds,
                wait=wait,
                grace=grace,
                name=name,
                fused=None if fused else False,
                max_batch=max_batch,
                scheduler=scheduler,
            )
            runtime.run(fn)
        finally:
            source.close()
    except WorkclaimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from exc


def register(app: typer.Typer) -> None:
    """Add `worker` to the `workclaim` command."""
    app.command("worker")(worker)
