"""`workclaim serve` and `workclaim token create`."""

from __future__ import annotations

import contextlib
import signal
import ssl
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from workclaim.errors import ConfigError, WorkclaimError

DEFAULT_DB = "sqlite:///workclaim.db"


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(1)


class _Signalled(Exception):
    """SIGTERM or SIGINT reached `serve` outside uvicorn's own handlers."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _scheduler_beside(db: str, settings: Any) -> Iterator[None]:
    """A scheduler thread for the block, stopped before the process ends.

    uvicorn shuts down on SIGTERM/SIGINT, then puts back the handlers it found and raises the
    signal again to end the process; the handler here turns that signal (or one that comes
    before uvicorn starts) into an exception, so the scheduler stops, and then passes the signal
    on with the handlers of before: `serve` ends as it would without `--scheduler`.
    """
    from workclaim.scheduler import scheduler_on

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise _Signalled(signum)

    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    caught: int | None = None
    try:
        with scheduler_on(db, settings):
            yield
    except _Signalled as exc:
        caught = exc.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught is not None:
        signal.raise_signal(caught)


def serve(
    db: Annotated[
        str, typer.Option("--db", envvar="WORKCLAIM_DB", help="Database URL.")
    ] = DEFAULT_DB,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    tokens: Annotated[
        Path | None,
        typer.Option(
            "--tokens",
            envvar="WORKCLAIM_TOKENS_FILE",
            help="Tokens file (lines from `workclaim token create`); re-read when it changes.",
        ),
    ] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="No authentication: local development ONLY.")
    ] = False,
    threads: Annotated[int, typer.Option(help="Threads for blocking store calls.")] = 16,
    max_wait: Annotated[float, typer.Option(help="Cap on a claim's long-poll wait (s).")] = 30.0,
    max_lease: Annotated[float, typer.Option(help="Cap on a lease's length (s).")] = 86_400.0,
    max_batch: Annotated[int, typer.Option(help="Cap on items per claim or enqueue.")] = 1_000,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Cap on a request body (default: payload cap + 64 KiB).")
    ] = None,
    max_longpolls: Annotated[
        int, typer.Option(help="Long-polls one token may have waiting at once.")
    ] = 100,
    max_longpolls_total: Annotated[
        int, typer.Option(help="Long-polls the server may have waiting at once, all tokens.")
    ] = 5_000,
    max_page_bytes: Annotated[
        int, typer.Option(help="About how many payload and result bytes a listing page holds.")
    ] = 4 * 1024 * 1024,
    sample_seconds: Annotated[
        float, typer.Option(help="Seconds between the dashboard's rate samples (0: off).")
    ] = 2.0,
    max_header_bytes: Annotated[
        int, typer.Option(help="Cap on a request's line and headers (431 beyond).")
    ] = 32 * 1024,
    header_timeout: Annotated[
        float, typer.Option(help="Seconds a client may take to send a request's headers.")
    ] = 10.0,
    body_timeout: Annotated[
        float, typer.Option(help="Seconds a client may take to send a request's body.")
    ] = 30.0,
    max_connections: Annotated[
        int | None,
        typer.Option(help="Connections held at once (default 4096, or fewer to fit the fd limit)."),
    ] = None,
    api_docs: Annotated[
        bool, typer.Option("--api-docs", help="Serve /docs and /redoc (they load CDN scripts).")
    ] = False,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    ssl_ca_certs: Annotated[
        Path | None,
        typer.Option(help="CA bundle: clients must present a certificate it signed (mutual TLS)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            max=256,
            help="Server processes on this port (each with its own limits); see deployment.md.",
        ),
    ] = 1,
    scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler",
            help="Also fire the store's schedules (one scheduler, in the serving process or, "
            "with --processes, the supervising one).",
        ),
    ] = False,
) -> None:
    """Run the HTTP service (FastAPI on uvicorn)."""
    try:
        import uvicorn

        from workclaim import logs
        from workclaim.queue import Queue
        from workclaim.server.app import create_app
        from workclaim.server.processes import Recipe, run_processes
        from workclaim.server.transport import protocol_for
    except ImportError as exc:
        _fail(f"the server needs {exc.name}: pip install 'workclaim[server]'")
        return
    log_format, log_threshold = logs.current()
    recipe = Recipe(
        db=db,
        tokens=tokens,
        no_auth=no_auth,
        log_format=log_format,
        log_level=log_threshold,
        limits=dict(
            max_body_bytes=max_body_bytes,
            max_batch=max_batch,
            max_lease=max_lease,
            max_wait=max_wait,
            max_longpolls_per_token=max_longpolls,
            max_longpolls=max_longpolls_total,
            max_page_bytes=max_page_bytes,
            threads=threads,
            sample_seconds=sample_seconds,
            api_docs=api_docs,
            max_header_bytes=max_header_bytes,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_connections=max_connections,
        ),
    )
    try:
        config = recipe.server_config()
        if ssl_ca_certs is not None and ssl_certfile is None:
            raise ConfigError("--ssl-ca-certs needs --ssl-certfile and --ssl-keyfile")
        if processes > 1:
            Queue(db, settings=config.settings).close()  # a bad URL fails here, once; schema made
        else:
            app = create_app(db, config)
    except WorkclaimError as exc:
        _fail(str(exc))
        return
    if no_auth:
        print(
            "WARNING: --no-auth: anyone who can reach this port can enqueue, claim and act as "
            "any worker. Use it only for local development.",
            file=sys.stderr,
        )
    if host not in ("127.0.0.1", "localhost", "::1") and ssl_certfile is None:
        print(
            f"WARNING: listening on {host} without TLS; tokens travel in clear text. "
            "Pass --ssl-certfile/--ssl-keyfile or put a TLS proxy in front.",
            file=sys.stderr,
        )
    options: dict[str, Any] = dict(
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # uvicorn's lines go through workclaim's handler (text or JSON lines)
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
        ssl_ca_certs=str(ssl_ca_certs) if ssl_ca_certs else None,
        # A CA bundle is for client certificates: without CERT_REQUIRED they would be optional.
        ssl_cert_reqs=ssl.CERT_REQUIRED if ssl_ca_certs else ssl.CERT_NONE,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    # One scheduler for the whole service: this process, which supervises the children when
    # there are several (they are spawned, so its threads and connections never cross a fork).
    beside = _scheduler_beside(db, config.settings) if scheduler else contextlib.nullcontext()
    try:
        with beside:
            if processes > 1:
                if not run_processes(recipe, processes, **options):
                    raise typer.Exit(1)
                return
            # httptools with header/body deadlines and caps
            uvicorn.run(app, http=protocol_for(config), **options)
    except WorkclaimError as exc:  # the scheduler's store could not be opened
        _fail(str(exc))


token_app = typer.Typer(help="Bearer tokens for the HTTP service.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    identity: Annotated[str, typer.Argument(help="Worker identity (the name leases carry).")],
    scopes: Annotated[
        list[str] | None,
        typer.Argument(help="Scopes: enqueue[:q1,q2] work[:q1,q2|*] admin (default: work:*)."),
    ] = None,
    append_to: Annotated[
        Path | None,
        typer.Option("--append-to", help="Add the line to this tokens file (kept mode 0600)."),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(help="Make the token expire after this long: 90m, 12h, 30d, 2w."),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Print only the token (for TOKEN=$(...); use with --append-to).",
        ),
    ] = False,
) -> None:
    """Print a new token (shown once) and the tokens-file line that holds only its hash."""
    from workclaim.server.auth import new_token, parse_duration, token_line, write_private

    token = new_token()
    try:
        expires_at = datetime.now(UTC) + parse_duration(expires) if expires else None
        line = token_line(token, identity, scopes or ["work:*"], expires_at)
    except ConfigError as exc:
        _fail(str(exc))
        return
    if append_to is not None:
        try:
            old = append_to.read_text("utf-8") if append_to.exists() else ""
            if old and not old.endswith("\n"):
                old += "\n"
            write_private(append_to, old + line + "\n")
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot write {append_to}: {exc}")
            return
    if quiet:
        print(token)
        return
    print(f"token: {token}")
    print(f"tokens file line: {line}")
    print("The token is shown once; the server stores only its hash.", file=sys.stderr)


def register(app: typer.Typer) -> None:
    """Add `serve` and `token` to the `workclaim` command."""
    app.command("serve")(serve)
    app.add_typer(token_app, name="token")
