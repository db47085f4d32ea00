"""The error answers each route documents in the OpenAPI schema: problem documents by status.

Only documentation: what a route really answers comes from `problems.py`.
"""

from __future__ import annotations

from typing import Any

from workclaim.server.problems import MEDIA_TYPE
from workclaim.server.schemas import ProblemOut

Responses = dict[int | str, dict[str, Any]]


def problem(description: str) -> dict[str, Any]:
    """One documented answer: a problem document, with what it means here."""
    return {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": ProblemOut.model_json_schema()}},
    }


COMMON: Responses = {
    400: problem("Malformed request (not JSON, bad header)"),
    401: problem("No bearer token, or an unknown one"),
    403: problem("The token's scopes do not allow this"),
    413: problem("Body or payload over the cap"),
    422: problem("Invalid arguments"),
    429: problem("Too many requests (Retry-After says when to retry)"),
    503: problem("The database is unavailable (Retry-After says when to retry)"),
}
LEASE = COMMON | {409: problem("Lease lost: stale, expired or another worker's")}
ITEM = COMMON | {404: problem("No such item (or not visible to this token)")}
SCHEDULE = COMMON | {404: problem("No such schedule")}
CLAIM = COMMON | {
    200: {"description": "Leases, in claim order"},
    204: {"description": "Nothing claimable (within the wait)"},
}
