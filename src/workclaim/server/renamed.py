"""Request fields renamed in the HTTP API, still accepted for one release (`max` is `limit`,
`lease` is `lease_seconds`, in claim bodies and `GET /worker/next`'s query).

A request that used an old name is served as if it used the new one, and its answer says so
with `Deprecation: true` and a `Link` to the API's description (RFC 9745); one that sends both
names for a field is refused with 422.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from starlette.responses import Response

from workclaim._deprecated import CLAIM_RENAMES
from workclaim.errors import ValidationError

RENAMED: Final[Mapping[str, str]] = CLAIM_RENAMES
"""Old field name -> the name that replaced it (the library's renamed keywords)."""

DEPRECATION_LINK: Final = '</openapi.json>; rel="deprecation"; type="application/json"'


def both_given(old: str) -> str:
    """The 422 detail for a request that names a field by its old and its new name."""
    return f"give `{RENAMED[old]}` only (`{old}` is its deprecated name)"


def check_query(present: Iterable[str], **old_values: object) -> bool:
    """For a query: whether any old name was given (`old_values` holds the old parameters'
    values, None when absent); a `ValidationError` if a field came under both names."""
    names = set(present)
    used = False
    for old, value in old_values.items():
        if value is not None:
            if RENAMED[old] in names:
                raise ValidationError(both_given(old))
            used = True
    return used


def mark(response: Response) -> Response:
    """Flag an answer to a request that used an old field name as deprecated."""
    response.headers["Deprecation"] = "true"
    response.headers["Link"] = DEPRECATION_LINK
    return response
