"""What browsers may ask of the service, and the headers every answer carries.

`BrowserGuard` refuses, whatever the method, any request a browser says comes from another
origin, except plain reads of the pages that change nothing (the dashboard's shell and assets,
the health checks): a cross-site `<img src=".../worker/next">` is a GET that claims, so the
method alone says nothing. Without authentication it also serves only loopback `Host` names, so
a DNS-rebinding page (whose requests carry the attacker's host name) is refused.

It also adds to every answer a Content-Security-Policy (the dashboard sets its own, for what it
loads), `nosniff`, and HSTS when the request came over TLS.
"""

from __future__ import annotations

import functools
import ipaddress

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workclaim.server import problems

# Paths a cross-site browser may still GET: they hold no data and change nothing.
READ_ONLY_PATHS = frozenset({"/", "/healthz", "/readyz"})
READ_ONLY_PREFIXES = ("/ui/",)
SAFE_METHODS = frozenset({"GET", "HEAD"})

API_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
# /docs and /redoc (off unless asked for) load their scripts, styles and fonts from CDNs.
DOCS_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
    "https://cdn.redoc.ly; worker-src blob:; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc"})
HSTS = "max-age=31536000"


@functools.lru_cache(maxsize=256)
def is_loopback_host(host: str) -> bool:
    """True for a `Host` header naming this machine: localhost, 127.0.0.0/8 or [::1], any port.
    Cached: a client sends the same `Host` on every request, and parsing it as an address took
    a tenth of a claim's time on the event loop under --no-auth."""
    if host.startswith("["):
        name, sep, rest = host[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return False
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _app_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


def _origin_host(url: str) -> str:
    """The `host[:port]` of an origin or URL (`http://a:1/x` -> `a:1`)."""
    return url.split("://", 1)[-1].split("/", 1)[0]


def is_foreign(headers: Headers) -> bool:
    """True if a browser marks the request as coming from another origin. Fetch metadata says
    so directly (`same-site` counts: another port is another origin); without it, an `Origin`
    (or else a `Referer`) naming another host does."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    host = headers.get("host", "")
    origin = headers.get("origin")
    if origin is not None:
        return origin == "null" or _origin_host(origin) != host
    referer = headers.get("referer")
    return site is None and referer is not None and _origin_host(referer) != host


class BrowserGuard:
    """ASGI middleware (outermost): the same-origin rule for every route, the loopback-`Host`
    rule when authentication is off, and the security headers on every answer, refusals
    included. Programs that are not browsers send no `Origin`, `Referer` or fetch metadata and
    are not affected by the same-origin rule."""

    def __init__(self, app: ASGIApp, *, loopback_only: bool) -> None:
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(scope, send)
        refusal = self._refusal(scope)
        if refusal is not None:
            response = problems.problem_response("forbidden", refusal, instance=scope.get("path"))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        if self.loopback_only and not is_loopback_host(headers.get("host", "")):
            return (
                "without authentication this server answers only requests for a loopback host "
                "name (localhost, 127.0.0.1, [::1]); use bearer tokens to serve other names"
            )
        if is_foreign(headers) and not self._read_only(scope):
            return "cross-site request refused"
        return None

    @staticmethod
    def _read_only(scope: Scope) -> bool:
        if scope["method"] not in SAFE_METHODS:
            return False
        path = _app_path(scope)
        return path in READ_ONLY_PATHS or path.startswith(READ_ONLY_PREFIXES)


def _with_security_headers(scope: Scope, send: Send) -> Send:
    """`send`, adding a CSP and `nosniff` to a response that has none, and HSTS over TLS."""
    csp = DOCS_CSP if _app_path(scope) in DOCS_PATHS else API_CSP
    tls = scope.get("scheme") == "https"

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.setdefault("content-security-policy", csp)
            headers.setdefault("x-content-type-options", "nosniff")
            if tls:
                headers.setdefault("strict-transport-security", HSTS)
        await send(message)

    return send_with_headers
