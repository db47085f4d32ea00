"""RFC 9457 problem details: every error the service answers is `application/problem+json`.

Each kind of error has a stable `type` URI (`urn:workclaim:problem:<slug>`) that clients branch
on; `title` is fixed per type, `detail` says what to do. Details never carry a stack trace, SQL,
a bearer token or a payload: store errors get a fixed text, validation errors drop the input.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from workclaim.errors import (
    BackendError,
    BackendUnavailable,
    InvalidState,
    ItemNotFound,
    LeaseLost,
    PayloadTooLarge,
    ScheduleNotFound,
    ValidationError,
    WorkclaimError,
)
from workclaim.wire import PROBLEM_MEDIA_TYPE, PROBLEM_PREFIX

log = logging.getLogger("workclaim.server")

MEDIA_TYPE = PROBLEM_MEDIA_TYPE
TYPE_PREFIX = PROBLEM_PREFIX

# slug -> (HTTP status, title); the slugs are part of the API and never change meaning.
PROBLEMS: dict[str, tuple[int, str]] = {
    "bad-request": (400, "The request is malformed"),
    "unauthorized": (401, "A valid bearer token is required"),
    "forbidden": (403, "The token does not allow this"),
    "not-found": (404, "No such resource"),
    "item-not-found": (404, "No such item"),
    "schedule-not-found": (404, "No such schedule"),
    "method-not-allowed": (405, "Method not allowed"),
    "request-timeout": (408, "The request did not arrive in time"),
    "lease-lost": (409, "The lease is stale, expired or another worker's"),
    "invalid-state": (409, "The item's status does not allow this"),
    "payload-too-large": (413, "A payload or result is over the size cap"),
    "body-too-large": (413, "The request body is over the size cap"),
    "unsupported-media-type": (415, "Send application/json"),
    "validation-error": (422, "The request is invalid"),
    "too-many-requests": (429, "Too many requests"),
    "headers-too-large": (431, "The request line and headers are over the size cap"),
    "internal-error": (500, "Internal error"),
    "backend-unavailable": (503, "The database is unavailable"),
    "service-unavailable": (503, "The service cannot answer now"),
}

_STATUS_SLUGS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found"}
_STATUS_SLUGS |= {405: "method-not-allowed", 413: "body-too-large", 415: "unsupported-media-type"}
_STATUS_SLUGS |= {422: "validation-error", 429: "too-many-requests", 503: "backend-unavailable"}


def problem_type(slug: str) -> str:
    """The stable `type` URI of a problem slug."""
    return TYPE_PREFIX + slug


class Problem(Exception):
    """Raised by routes and dependencies to answer with a problem document."""

    def __init__(
        self,
        slug: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.slug = slug
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}


def problem_body(slug: str, detail: str, instance: str | None = None) -> dict[str, Any]:
    """The problem document of a slug (also written by the connection layer, without an app)."""
    status, title = PROBLEMS[slug]
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    return body


def problem_response(
    slug: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """A problem+json response for a slug."""
    body = problem_body(slug, detail, instance) | (extra or {})
    return JSONResponse(body, status_code=PROBLEMS[slug][0], headers=headers, media_type=MEDIA_TYPE)


def for_error(exc: WorkclaimError) -> tuple[str, str, dict[str, str]]:
    """(slug, detail, headers) for a library error; store errors get a fixed, safe text."""
    if isinstance(exc, LeaseLost):
        return "lease-lost", str(exc), {}
    if isinstance(exc, ItemNotFound):
        return "item-not-found", str(exc), {}
    if isinstance(exc, ScheduleNotFound):
        return "schedule-not-found", str(exc), {}
    if isinstance(exc, PayloadTooLarge):
        return "payload-too-large", str(exc), {}
    if isinstance(exc, ValidationError):
        return "validation-error", str(exc), {}
    if isinstance(exc, InvalidState):
        return "invalid-state", str(exc), {}
    if isinstance(exc, BackendUnavailable):
        return "backend-unavailable", "the database is unavailable; retry later", _retry_after(1)
    if isinstance(exc, BackendError):
        return "internal-error", "the database reported an error; see the server log", {}
    return "internal-error", "internal error; see the server log", {}


def _retry_after(seconds: int) -> dict[str, str]:
    return {"Retry-After": str(seconds)}


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's validation errors without `input`/`ctx`/`url`, which may echo a payload."""
    out: list[dict[str, Any]] = []
    for err in errors if isinstance(errors, list | tuple) else []:
        if isinstance(err, dict):
            loc = [p if isinstance(p, str | int) else str(p) for p in err.get("loc", ())]
            out.append({"loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type"))})
    return out[:20]


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem document."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(
            exc.slug, exc.detail, instance=request.url.path, headers=exc.headers, extra=exc.extra
        )

    async def on_workclaim(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, WorkclaimError)
        slug, detail, headers = for_error(exc)
        if PROBLEMS[slug][0] >= 500:
            # The cause's text may hold SQL or driver details: log its class only.
            log.error("%s on %s %s", type(exc).__name__, request.method, request.url.path)
        return problem_response(slug, detail, instance=request.url.path, headers=headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _clean_errors(exc.errors())
        if any(e["type"] == "json_invalid" for e in errors):
            return problem_response(
                "bad-request",
                "the body is not valid JSON",
                instance=request.url.path,
                extra={"errors": errors},
            )
        return problem_response(
            "validation-error",
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)[:2000]
            or "invalid request",
            instance=request.url.path,
            extra={"errors": errors},
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug = _STATUS_SLUGS.get(exc.status_code)
        if slug is None:
            slug = "bad-request" if exc.status_code < 500 else "internal-error"
        headers = dict(exc.headers or {})
        detail = exc.detail if isinstance(exc.detail, str) else PROBLEMS[slug][1]
        if exc.status_code == 400:
            detail = "the body could not be read as JSON (it must be UTF-8 JSON)"
        if slug == "method-not-allowed" and "Allow" not in headers and exc.headers:
            headers.update(exc.headers)
        return problem_response(slug, detail, instance=request.url.path, headers=headers)

    async def on_any(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return problem_response("internal-error", "internal error", instance=request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(WorkclaimError, on_workclaim)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_any)
