"""`ServerConfig`: the service's own settings (caps, auth, threads), validated once."""

from __future__ import annotations

from dataclasses import dataclass, field

from workclaim.config import Settings
from workclaim.errors import ConfigError
from workclaim.server.auth import TokenStore
from workclaim.validation import MAX_BATCH, MAX_LEASE_SECONDS, MAX_WAIT_SECONDS

DEFAULT_CONNECTIONS = 4096
RESERVED_DESCRIPTORS = 128


def _descriptor_limit() -> int:
    """The soft limit on open descriptors (a large number where there is none to read)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 1 << 20
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


@dataclass(frozen=True)
class ServerConfig:
    """How the HTTP service behaves.

    - `tokens`: the bearer tokens; None only with `no_auth=True` (development: every caller is
      the all-powerful `anonymous`, and a request's `worker` field is trusted).
    - `max_body_bytes`: cap on a request body (default: the payload cap plus 64 KiB, at least
      2 MiB).
    - `max_batch`, `max_lease`, `max_wait`: caps on a claim's `limit`, `lease_seconds` and `wait`
      (a longer `wait` is shortened to `max_wait`: a long-poll may always end early).
    - `max_longpolls_per_token`: long-polls one identity may have waiting at once (429 beyond).
    - `max_longpolls`: long-polls the whole server may have waiting at once (429 beyond), so
      that many tokens together cannot hold every connection and file descriptor.
    - `max_page_bytes`: about how many bytes of payloads and results one page of a listing
      carries; a page stops early (with a `next_after`) rather than pass it, but always holds
      at least one item.
    - `threads`: the thread pool that runs blocking store calls.
    - `sample_seconds`: how often the dashboard's rates are sampled from the store's counts
      (0: never; the dashboard then shows counts but no items/s chart).
    - `api_docs`: serve the interactive `/docs` and `/redoc` pages (off: they load scripts from
      a CDN; `/openapi.json` is always served).
    - `max_header_bytes`: cap on a request's line and headers together (431 beyond).
    - `header_timeout`: seconds a connection may take to send a request's line and headers
      (counted from the connection, or from the request's first byte on a kept-alive one).
    - `body_timeout`: seconds a request may take to send its body once its headers are in.
    - `max_connections`: connections held at once (None: 4096, or fewer when the process's
      descriptor limit is lower). At the cap the longest-idle connection that has no request
      in progress is closed to make room; when none is idle, new ones get 503.
    - `allow_clock_override`: TEST ONLY. Honour an `X-Workclaim-Now` header as the `now=` of
      every call, so a test suite can move the store's clock. Never turn it on in production:
      any caller could then claim items before their time or expire other workers' leases.
    """

    settings: Settings = field(default_factory=Settings)
    tokens: TokenStore | None = None
    no_auth: bool = False
    max_body_bytes: int | None = None
    max_batch: int = 100
    max_lease: float = 86_400.0
    max_wait: float = 30.0
    max_longpolls_per_token: int = 100
    max_longpolls: int = 5_000
    max_page_bytes: int = 4 * 1024 * 1024
    threads: int = 16
    sample_seconds: float = 2.0
    api_docs: bool = False
    max_header_bytes: int = 32 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int | None = None
    allow_clock_override: bool = False

    def __post_init__(self) -> None:
        if self.tokens is not None and self.no_auth:
            raise ConfigError("give either tokens or no_auth=True, not both")
        if self.tokens is None and not self.no_auth:
            raise ConfigError(
                "the server needs bearer tokens (--tokens FILE or WORKCLAIM_TOKENS); "
                "use --no-auth only for local development"
            )
        if self.tokens is not None and self.tokens.empty and not self.no_auth:
            raise ConfigError("the tokens file has no token: add one with `workclaim token create`")
        if not 1 <= self.max_batch <= MAX_BATCH:
            raise ConfigError(f"max_batch must be between 1 and {MAX_BATCH}")
        if not 0.01 <= self.max_lease <= MAX_LEASE_SECONDS:
            raise ConfigError(f"max_lease must be between 0.01 and {MAX_LEASE_SECONDS} seconds")
        if not 0 <= self.max_wait <= MAX_WAIT_SECONDS:
            raise ConfigError(f"max_wait must be between 0 and {MAX_WAIT_SECONDS} seconds")
        if not 1 <= self.max_longpolls_per_token <= 1_000_000:
            raise ConfigError("max_longpolls_per_token must be at least 1")
        if not 1 <= self.max_longpolls <= 1_000_000:
            raise ConfigError("max_longpolls must be between 1 and 1000000")
        if self.max_page_bytes < 1_024:
            raise ConfigError("max_page_bytes must be at least 1024")
        if not 1 <= self.threads <= 1_024:
            raise ConfigError("threads must be between 1 and 1024")
        if not (self.sample_seconds == 0 or 0.1 <= self.sample_seconds <= 3_600):
            raise ConfigError("sample_seconds must be 0 (off) or between 0.1 and 3600")
        if self.max_body_bytes is not None and self.max_body_bytes < 1_024:
            raise ConfigError("max_body_bytes must be at least 1024")
        if not 1_024 <= self.max_header_bytes <= 1024 * 1024:
            raise ConfigError("max_header_bytes must be between 1024 and 1048576")
        for name in ("header_timeout", "body_timeout"):
            if not 0.1 <= getattr(self, name) <= 3_600:
                raise ConfigError(f"{name} must be between 0.1 and 3600 seconds")
        if self.max_connections is not None and not 1 <= self.max_connections <= 1_000_000:
            raise ConfigError("max_connections must be at least 1")

    @property
    def connection_cap(self) -> int:
        """The connection cap: `max_connections`, or 4096 kept 128 below the soft descriptor
        limit (the store's connections, files and logs need the rest)."""
        if self.max_connections is not None:
            return self.max_connections
        return max(16, min(DEFAULT_CONNECTIONS, _descriptor_limit() - RESERVED_DESCRIPTORS))

    @property
    def body_cap(self) -> int:
        """The request body cap in bytes."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return max(2 * 1024 * 1024, self.settings.max_payload_bytes + 64 * 1024)
