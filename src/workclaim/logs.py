"""Structured logs: the `workclaim.events` logger, its formatters, redaction, and the CLI's setup.

`Queue` writes one record per state change to `workclaim.events`, with the fields `event`,
`item_id`, `queue`, `token` (the fencing token, an integer), `worker` and `outcome` as record
attributes (`extra=`), so a JSON formatter emits them as keys; the text line shows the same
fields as `key=value` (a failure's `error` as its first line, clipped, and `attempt=n/max`).
Per-item verbs on the hot path (enqueue, claim, heartbeat, complete, complete_and_claim) log at
DEBUG; the rarer changes an operator looks for (release, fail, a refused stale lease, cancel,
requeue, purge) at INFO. Payloads and results are logged only when `Settings.log_payloads` is on.
Bearer tokens never reach this layer, and both formatters redact anything shaped like one anyway.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from workclaim.errors import ConfigError
from workclaim.models import Lease

EVENTS: Final = logging.getLogger("workclaim.events")
HOT: Final = logging.DEBUG  # per-item verbs: one record per item claimed, completed, enqueued
NOTABLE: Final = logging.INFO  # release, fail, lease lost, cancel, requeue, purge

FORMATS: Final = ("text", "json")
FORMAT_ENV: Final = "WORKCLAIM_LOG_FORMAT"
LEVEL_ENV: Final = "WORKCLAIM_LOG_LEVEL"

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_EVENT_MESSAGE = "%s item=%s queue=%s token=%s worker=%s outcome=%s%s"
_MAX_ERROR = 200
_NEEDS_QUOTES = re.compile(r"[\s\"=]")

# workclaim's own tokens, `Authorization: Bearer ...`, and a token in a query string; each with
# the substrings one of which must be in the lower-cased text for the pattern to be worth running.
_SECRETS = (
    (("wc_",), re.compile(r"\bwc_[A-Za-z0-9_\-]{8,}"), "wc_***"),
    (("bearer",), re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]+"), r"\1***"),
    (
        ("token=", "auth="),
        re.compile(r"(?i)([?&](?:token|access_token|auth)=)[^&\s\"']+"),
        r"\1***",
    ),
)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "color_message"}
)


def redact(text: str) -> str:
    """`text` with anything shaped like a bearer token replaced by `***`."""
    lowered = text.lower()
    for needles, pattern, replacement in _SECRETS:
        if any(needle in lowered for needle in needles):
            text = pattern.sub(replacement, text)
    return text


# -- writing events (called by verb_logs, behind an isEnabledFor guard) -------------------------
def event(
    level: int,
    name: str,
    *,
    item_id: int | None,
    queue: str | None,
    outcome: str,
    token: int | None = None,
    worker: str | None = None,
    **more: Any,
) -> None:
    """Write one state change to `workclaim.events` with its fields as record attributes."""
    fields = {
        "event": name,
        "item_id": item_id,
        "queue": queue,
        "token": token,
        "worker": worker,
        "outcome": outcome,
        **more,
    }
    tail = _text_fields(more)
    EVENTS.log(
        level, _EVENT_MESSAGE, name, item_id, queue, token, worker, outcome, tail, extra=fields
    )


def _text_fields(more: Mapping[str, Any]) -> str:
    """The extra fields as ` key=value` pairs for the text line (None left out, `attempt` with
    its `max_attempts` as `n/max`, `error` as its first line, clipped, quoted when needed)."""
    parts = []
    text: str
    for key, value in more.items():
        if value is None or key == "max_attempts":
            continue
        if key == "attempt" and more.get("max_attempts"):
            text = f"{value}/{more['max_attempts']}"
        elif key == "error":
            text = clip(str(value).partition("\n")[0])
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
        if _NEEDS_QUOTES.search(text):
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f" {key}={text}")
    return "".join(parts)


def lease_event(
    level: int, name: str, lease: Lease, outcome: str, *, payload: Any = None, **more: Any
) -> None:
    """A state change of a leased item; `payload` (already opted into) is added when not None."""
    if payload is not None:
        more["payload"] = payload
    event(
        level,
        name,
        item_id=lease.id,
        queue=lease.queue or None,  # the server rebuilds leases from (id, token): no queue
        token=lease.token,
        worker=lease.worker,
        outcome=outcome,
        attempt=lease.attempt,
        max_attempts=lease.max_attempts,
        **more,
    )


def claimed(leases: Iterable[Lease], *, payloads: bool, name: str = "claim") -> None:
    """One record per new lease."""
    for lease in leases:
        lease_event(HOT, name, lease, "claimed", payload=lease.payload if payloads else None)


def clip(error: str) -> str:
    """An error message short enough for one log line."""
    return error if len(error) <= _MAX_ERROR else error[: _MAX_ERROR - 3] + "..."


# -- formatting --------------------------------------------------------------------------------
def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k[:1] != "_"}


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message`, redacted."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then the record's extra fields
    (for `workclaim.events`: event, item_id, queue, token, worker, outcome, ...), redacted."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return redact(json.dumps(out, default=str, ensure_ascii=False))


class RedactFilter(logging.Filter):
    """Redacts bearer tokens from a record's message: for handlers workclaim does not format
    itself (install it with `handler.addFilter(RedactFilter())`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


# -- the CLI's one logging setup ---------------------------------------------------------------
class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `setup` installs (a class of its own so a second `setup` replaces it)."""


def setup(
    *,
    fmt: str | None = None,
    level: str | None = None,
    default_level: str = "warning",
    environ: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Send every log record to stderr as text or JSON lines, redacted; returns the handler.

    `fmt` and `level` win over WORKCLAIM_LOG_FORMAT (text|json) and WORKCLAIM_LOG_LEVEL
    (debug|info|warning|error), which win over the defaults. Idempotent.
    """
    env = os.environ if environ is None else environ
    chosen_format = (fmt or env.get(FORMAT_ENV) or "text").strip().lower()
    if chosen_format not in FORMATS:
        raise ConfigError(f"{FORMAT_ENV} must be text or json, got {chosen_format!r}")
    chosen_level = (level or env.get(LEVEL_ENV) or default_level).strip().upper()
    numeric = logging.getLevelName(chosen_level)
    if not isinstance(numeric, int):
        raise ConfigError(
            f"log level must be debug, info, warning or error, got {chosen_level.lower()!r}"
        )
    handler = _Handler(sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    if numeric > logging.DEBUG:
        for chatty in ("httpx", "httpcore"):  # a line per request
            logging.getLogger(chatty).setLevel(logging.WARNING)
    return handler


def current() -> tuple[str, str]:
    """(format, level) of the handler `setup` installed (("text", "warning") before any), so
    processes started later can make the same choice."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _Handler)]
    fmt = "json" if ours and isinstance(ours[-1].formatter, JsonFormatter) else "text"
    level = logging.getLevelName(root.level).lower() if ours else "warning"
    return fmt, level
