"""`workclaim serve --processes N`: N server processes on one port, under a supervising parent.

The parent binds the port once and starts N children with the `spawn` method (nothing crosses a
fork: each child opens its own store connections, thread pool and wake-up listener); the kernel
hands each new connection to one of the children waiting in `accept`. Supervision is uvicorn's
own (`uvicorn.supervisors.Multiprocess`): SIGTERM or SIGINT to the parent stops every child
gracefully and then the parent; a child that dies is logged as a warning and replaced; a child
that fails before it serves (bad store URL, unreadable TLS key) stops the whole, exit code 1,
because its replacement would fail the same way.

A child cannot be handed the parent's `ServerConfig` (its `TokenStore` holds a lock, its
protocol class is made at run time), so it gets a `Recipe` (plain values) and rebuilds both.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from workclaim import logs
from workclaim.config import Settings
from workclaim.errors import WorkclaimError
from workclaim.server.app import create_app
from workclaim.server.auth import TokenStore
from workclaim.server.config import ServerConfig
from workclaim.server.transport import protocol_for

log = logging.getLogger("workclaim.server")


@dataclass(frozen=True)
class Recipe:
    """Everything a server process needs to build its service, in plain (picklable) values:
    the store, how callers authenticate, the `ServerConfig` limits, and the log setup."""

    db: str
    tokens: Path | None
    no_auth: bool
    limits: dict[str, Any]  # ServerConfig's keyword arguments other than the three above
    log_format: str = "text"
    log_level: str = "info"

    def server_config(self) -> ServerConfig:
        """The `ServerConfig` (tokens read from the file and WORKCLAIM_TOKENS, settings from the
        environment); raises `ConfigError` for bad values."""
        store = None if self.no_auth else TokenStore.from_env(self.tokens)
        return ServerConfig(
            settings=Settings.from_env(), tokens=store, no_auth=self.no_auth, **self.limits
        )


class _ChildConfig(uvicorn.Config):
    """A uvicorn `Config` that builds the service when a child loads it, not in the parent."""

    def __init__(self, recipe: Recipe, **options: Any) -> None:
        super().__init__(app="workclaim.server.app:create_app", **options)  # replaced in load
        self.recipe = recipe

    def load(self) -> None:
        logs.setup(fmt=self.recipe.log_format, level=self.recipe.log_level)
        try:
            config = self.recipe.server_config()
            self.app = create_app(self.recipe.db, config)
            self.http = protocol_for(config)
            super().load()  # TLS files are read here
        except (WorkclaimError, OSError, ValueError) as exc:
            log.error("server process failed to start: %s", exc)
            raise SystemExit(STARTUP_FAILURE) from None


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, saying which child died and how, and remembering a failed start."""

    failed = False

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        before = list(self.processes)
        super().keep_subprocess_alive()  # replaces a dead (or hung, then killed) child
        for child in before:
            code = child.exitcode
            if code == STARTUP_FAILURE:
                self.failed = True
                log.error("server process %s could not start: stopping", child.pid)
            elif child not in self.processes:
                log.warning("server process %s died (%s): started another", child.pid, _how(code))


def _how(code: int | None) -> str:
    if code is None:
        return "not answering"
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def run_processes(recipe: Recipe, processes: int, **options: Any) -> bool:
    """Serve with `processes` children on one socket until SIGTERM or SIGINT; `options` are
    uvicorn's (host, port, TLS, timeouts). False when a child could not start."""
    config = _ChildConfig(recipe, workers=processes, **options)
    supervisor = _Supervisor(config, sockets=[config.bind_socket()])
    supervisor.run()
    return not supervisor.failed
