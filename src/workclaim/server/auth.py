"""Bearer tokens: who is calling and what they may do.

A token is 256 random bits (`wc_` + URL-safe base64). The server keeps only its SHA-256 (a fast
hash is enough for random secrets), compares in constant time, and maps it to an identity (the
worker name that the fenced updates check) and scopes:

- `enqueue` or `enqueue:q1,q2`: add items (and read or cancel them) on all or listed queues;
- `work` or `work:q1,q2` (`work:*` = all): claim from those queues and end its own leases;
- `admin`: everything, including stats, requeue and purge.

Tokens file (one a line, `#` comments; `workclaim token create` prints the line):

    sha256:<64 hex>  <identity>  <scope> [<scope> ...] [expires=<RFC 3339 UTC time>]

The file is read again when it changes, so adding or revoking a token needs no restart. It fails
closed: a file that goes missing, cannot be parsed, or is readable by group or others makes the
server refuse every token (503) until it is fixed, and logs why, so a revocation is never lost
to an unreadable file; at startup such a file stops the server. The same lines may come from the
`WORKCLAIM_TOKENS` environment variable (newline- or `;`-separated).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from workclaim.errors import ConfigError, ValidationError
from workclaim.validation import check_name
from workclaim.wire import SCOPE_KINDS

TOKEN_PREFIX = "wc_"
TOKEN_BYTES = 32
ALL = "*"
EXPIRES = "expires="
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
MAX_TOKEN_LIFE = timedelta(days=3_660)  # about ten years

log = logging.getLogger("workclaim.server")


class TokensUnavailable(ConfigError):
    """The tokens file is missing, unreadable, malformed or too open: no token is accepted."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: an identity (the worker name leases are fenced on) and its scopes."""

    identity: str
    enqueue: frozenset[str] = field(default_factory=frozenset)
    work: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False
    expires_at: datetime | None = None

    def expired(self, now: datetime | None = None) -> bool:
        """True once the token's expiry (if it has one) has passed on this host's clock."""
        return self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC))

    def may_enqueue(self, queue: str) -> bool:
        """True if the caller may add, read or cancel items on `queue`."""
        return self.admin or ALL in self.enqueue or queue in self.enqueue

    def may_work(self, queue: str | None = None) -> bool:
        """True if the caller may claim from `queue` (None: from some queue)."""
        if self.admin or ALL in self.work:
            return True
        return bool(self.work) if queue is None else queue in self.work

    def scopes(self) -> list[str]:
        """The scopes as written in a tokens file."""
        out = []
        if self.enqueue:
            out.append("enqueue:" + ",".join(sorted(self.enqueue)))
        if self.work:
            out.append("work:" + ",".join(sorted(self.work)))
        if self.admin:
            out.append("admin")
        return out


# In --no-auth mode every caller is this principal, with every scope.
ANONYMOUS = Principal("anonymous", frozenset({ALL}), frozenset({ALL}), admin=True)


def new_token() -> str:
    """A fresh bearer token: 256 bits from the OS's CSPRNG."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The stored form of a token: `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_scopes(words: Iterable[str]) -> tuple[frozenset[str], frozenset[str], bool]:
    """(enqueue queues, work queues, admin) from scope words such as `work:emails,reports`."""
    enqueue: set[str] = set()
    work: set[str] = set()
    admin = False
    for word in words:
        kind, sep, queues = word.partition(":")
        if kind not in SCOPE_KINDS:
            raise ConfigError(f"unknown scope {word!r}; use enqueue[:queues], work[:queues], admin")
        if kind == "admin":
            admin = True
            continue
        if sep and not queues:
            raise ConfigError(f"scope {word!r} lists no queue: write {kind} or {kind}:* for all")
        names = {ALL} if queues in ("", ALL) else set(queues.split(","))
        for name in names - {ALL}:
            try:
                check_name(name, "queue name")
            except ValidationError as exc:
                raise ConfigError(f"in scope {word!r}: {exc}") from exc
        (enqueue if kind == "enqueue" else work).update(names)
    return frozenset(enqueue), frozenset(work), admin


def parse_duration(text: str) -> timedelta:
    """A duration such as `90m`, `12h`, `30d` or `2w` (units s, m, h, d, w)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or float(match[1]) <= 0:
        raise ConfigError(f"{text!r} is not a duration: write a number and s, m, h, d or w (30d)")
    seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
    if seconds > MAX_TOKEN_LIFE.total_seconds():
        raise ConfigError(f"{text!r} is over {MAX_TOKEN_LIFE.days} days")
    return timedelta(seconds=seconds)


def _parse_expiry(word: str) -> datetime:
    try:
        when = datetime.fromisoformat(word.removeprefix(EXPIRES))
    except ValueError as exc:
        raise ConfigError(f"{word!r} is not an RFC 3339 time") from exc
    if when.tzinfo is None:
        raise ConfigError(f"{word!r} needs a UTC offset (Z)")
    return when.astimezone(UTC)


def token_line(
    token: str, identity: str, scopes: Iterable[str], expires_at: datetime | None = None
) -> str:
    """The tokens-file line for a token (only its hash is written)."""
    words = list(scopes)
    parse_scopes(words)
    try:
        check_name(identity, "identity")
    except ValidationError as exc:
        raise ConfigError(str(exc)) from exc
    if expires_at is not None:
        stamp = expires_at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        words.append(EXPIRES + stamp)
    return f"{hash_token(token)}  {identity}  {' '.join(words)}"


def parse_lines(text: str, source: str) -> list[tuple[bytes, Principal]]:
    """(sha256 digest, principal) for each line of a tokens file."""
    entries: list[tuple[bytes, Principal]] = []
    for number, raw in enumerate(text.replace(";", "\n").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 3 or not parts[0].startswith("sha256:"):
            raise ConfigError(
                f"{source} line {number}: expected 'sha256:<hex> <identity> <scope>...'"
            )
        try:
            digest = bytes.fromhex(parts[0].removeprefix("sha256:"))
        except ValueError as exc:
            raise ConfigError(f"{source} line {number}: the hash is not hex") from exc
        if len(digest) != 32:
            raise ConfigError(f"{source} line {number}: a sha256 hash has 64 hex digits")
        try:
            identity = check_name(parts[1], "identity")
        except ValidationError as exc:
            raise ConfigError(f"{source} line {number}: {exc}") from exc
        expiry = [w for w in parts[2:] if w.startswith(EXPIRES)]
        scopes = [w for w in parts[2:] if not w.startswith(EXPIRES)]
        if not scopes or len(expiry) > 1:
            raise ConfigError(f"{source} line {number}: expected scopes and at most one expiry")
        try:
            enqueue, work, admin = parse_scopes(scopes)
            expires_at = _parse_expiry(expiry[0]) if expiry else None
        except ConfigError as exc:
            raise ConfigError(f"{source} line {number}: {exc}") from exc
        entries.append((digest, Principal(identity, enqueue, work, admin, expires_at)))
    return entries


class TokenStore:
    """The known tokens, from a file (re-read when it changes) and/or literal lines."""

    def __init__(self, path: str | Path | None = None, lines: str = "") -> None:
        self.path = None if path is None else Path(path)
        self._static = parse_lines(lines, "WORKCLAIM_TOKENS") if lines.strip() else []
        self._from_file: list[tuple[bytes, Principal]] = []
        self._stamp: tuple[int, ...] | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self._reload()
        if self._error is not None:
            raise ConfigError(self._error)

    @classmethod
    def from_env(cls, path: str | Path | None = None) -> TokenStore:
        """Tokens from `path` (or WORKCLAIM_TOKENS_FILE) plus WORKCLAIM_TOKENS lines."""
        path = path or os.environ.get("WORKCLAIM_TOKENS_FILE") or None
        return cls(path, os.environ.get("WORKCLAIM_TOKENS", ""))

    def _reload(self) -> None:
        """Read the file again if it changed; on any failure accept no token until it is fixed."""
        if self.path is None:
            return
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            _check_private(self.path, st.st_mode)
            entries = parse_lines(self.path.read_text("utf-8"), str(self.path))
        except (OSError, UnicodeDecodeError, ConfigError) as exc:
            self._failed(exc)
            return
        if self._error is not None:
            log.warning("the tokens file %s is usable again", self.path)
        self._from_file, self._error = entries, None

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            error = f"cannot read the tokens file {self.path}: {exc.strerror}"
        elif isinstance(exc, UnicodeDecodeError):
            error = f"the tokens file {self.path} is not UTF-8"
        else:
            error = str(exc)
        if error != self._error:
            log.error("%s; refusing every token until it is fixed", error)
        self._from_file, self._error = [], error
        if isinstance(exc, OSError):
            self._stamp = None  # look again on the next request

    @property
    def empty(self) -> bool:
        """True when no token is configured (the server then refuses to start with auth on)."""
        return not self._static and not self._from_file

    def lookup(self, presented: str) -> Principal | None:
        """The principal for a presented token, comparing every stored hash in constant time;
        `TokensUnavailable` while the tokens file cannot be used (fail closed)."""
        with self._lock:
            self._reload()
            if self._error is not None:
                raise TokensUnavailable(self._error)
            entries = self._static + self._from_file
        digest = hashlib.sha256(presented.encode("utf-8", "replace")).digest()
        found: Principal | None = None
        for stored, principal in entries:
            if hmac.compare_digest(stored, digest) and found is None:
                found = principal
        return found


def _check_private(path: Path, mode: int) -> None:
    """Refuse a tokens file that group or others may read or write (POSIX only)."""
    if os.name == "posix" and mode & 0o077:
        raise ConfigError(
            f"the tokens file {path} is open to group or others (mode "
            f"{stat.S_IMODE(mode):04o}): chmod 600 it (Kubernetes: defaultMode 0600)"
        )


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically, created 0600 (never readable by others, and a
    server re-reading it never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
