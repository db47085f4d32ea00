"""What the HTTP client and the HTTP service must agree on, written once for both.

Base layer: `workclaim.client` and `workclaim.server` import these names instead of spelling the
strings themselves, so the two sides cannot drift apart.
"""

from __future__ import annotations

CLOCK_HEADER = "X-Workclaim-Now"
"""The header carrying a call's `now=` (honoured only by a server started for tests)."""

PROBLEM_PREFIX = "urn:workclaim:problem:"
"""The start of every problem document's `type`; the rest is the slug (`lease-lost`, ...)."""

PROBLEM_MEDIA_TYPE = "application/problem+json"
"""The media type of an error answer (RFC 9457)."""

SCOPE_KINDS = ("enqueue", "work", "admin")
"""The kinds of scope a bearer token can hold (`enqueue[:queues]`, `work[:queues]`, `admin`)."""
