"""Bearer tokens: who is calling and what they may do.

A token is 256 random bits (`wc_` + URL-safe base64). The server keeps only its SHA-256 (a fast
hash is enough for random secrets), compares in constant time, and maps it to an identity (the
worker name that the fenced updates check) and scopes:

- `enqueue` or `enqueue:q1,q2`: add items (and read or cancel them) on all or listed queues;
- `work` or `work:q1,q2` (`work:*` = all): claim from those queues and end its own leases;
- `admin`: everything, including stats, requeue and purge.

Tokens file (one a line, `#` comments; `workclaim token create` prints the line):

    sha256:<64 hex>  <identity>  <scope> [<scope> ...]

The file is read again when it changes, so adding or revoking a token needs no restart. The same
lines may come from the `WORKCLAIM_TOKENS` environment variable (newline- or `;`-separated).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from workclaim.errors import ConfigError, ValidationError
from workclaim.validation import check_name

TOKEN_PREFIX = "wc_"
TOKEN_BYTES = 32
ALL = "*"
SCOPE_KINDS = ("enqueue", "work", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: an identity (the worker name leases are fenced on) and its scopes."""

    identity: str
    enqueue: frozenset[str] = field(default_factory=frozenset)
    work: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False

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
        kind, _, queues = word.partition(":")
        if kind not in SCOPE_KINDS:
            raise ConfigError(f"unknown scope {word!r}; use enqueue[:queues], work[:queues], admin")
        if kind == "admin":
            admin = True
            continue
        names = {ALL} if queues in ("", ALL) else set(queues.split(","))
        for name in names - {ALL}:
            try:
                check_name(name, "queue name")
            except ValidationError as exc:
                raise ConfigError(f"in scope {word!r}: {exc}") from exc
        (enqueue if kind == "enqueue" else work).update(names)
    return frozenset(enqueue), frozenset(work), admin


def token_line(token: str, identity: str, scopes: Iterable[str]) -> str:
    """The tokens-file line for a token (only its hash is written)."""
    words = list(scopes)
    parse_scopes(words)
    try:
        check_name(identity, "identity")
    except ValidationError as exc:
        raise ConfigError(str(exc)) from exc
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
        enqueue, work, admin = parse_scopes(parts[2:])
        entries.append((digest, Principal(identity, enqueue, work, admin)))
    return entries


class TokenStore:
    """The known tokens, from a file (re-read when it changes) and/or literal lines."""

    def __init__(self, path: str | Path | None = None, lines: str = "") -> None:
        self.path = None if path is None else Path(path)
        self._static = parse_lines(lines, "WORKCLAIM_TOKENS") if lines.strip() else []
        self._from_file: list[tuple[bytes, Principal]] = []
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._reload()

    @classmethod
    def from_env(cls, path: str | Path | None = None) -> TokenStore:
        """Tokens from `path` (or WORKCLAIM_TOKENS_FILE) plus WORKCLAIM_TOKENS lines."""
        path = path or os.environ.get("WORKCLAIM_TOKENS_FILE") or None
        return cls(path, os.environ.get("WORKCLAIM_TOKENS", ""))

    def _reload(self) -> None:
        if self.path is None:
            return
        try:
            st = self.path.stat()
        except OSError as exc:
            raise ConfigError(f"cannot read the tokens file {self.path}: {exc.strerror}") from exc
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        self._from_file = parse_lines(self.path.read_text("utf-8"), str(self.path))
        self._stamp = stamp

    @property
    def empty(self) -> bool:
        """True when no token is configured (the server then refuses to start with auth on)."""
        return not self._static and not self._from_file

    def lookup(self, presented: str) -> Principal | None:
        """The principal for a presented token, comparing every stored hash in constant time."""
        with self._lock:
            with contextlib.suppress(ConfigError):  # keep the last good set while it is rewritten
                self._reload()
            entries = self._static + self._from_file
        digest = hashlib.sha256(presented.encode("utf-8", "replace")).digest()
        found: Principal | None = None
        for stored, principal in entries:
            if hmac.compare_digest(stored, digest) and found is None:
                found = principal
        return found
