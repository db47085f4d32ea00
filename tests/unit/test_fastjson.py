"""The wire's JSON codec (orjson, with the standard library for what orjson refuses) and the
server's model-free lease documents, which must encode exactly as the pydantic models do."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from workclaim import fastjson
from workclaim.models import Lease, Status
from workclaim.server.schemas import ClaimOut, CompleteAndClaimOut, LeaseOut


def lease(
    payload: Any,
    expires_at: datetime,
    lease_seconds: float = 30.0,
    enqueued_at: datetime | None = None,
) -> Lease:
    return Lease(
        id=7,
        queue="jobs",
        payload=payload,
        token=42,
        attempt=2,
        max_attempts=5,
        expires_at=expires_at,
        worker="w-1",
        lease_seconds=lease_seconds,
        enqueued_at=enqueued_at,
    )


LEASES = [
    lease(
        {"a": [1, 2.5, 1e20, None, True, "é\u2028"]},
        datetime(2026, 1, 2, 3, 4, 5, 123, UTC),
        enqueued_at=datetime(2026, 1, 2, 3, 3, 59, 7, UTC),
    ),
    lease("text", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), lease_seconds=30),
    lease(None, datetime(2026, 1, 2, 3, 4, 5, 120_000, tzinfo=UTC), lease_seconds=0.25),
]


@pytest.mark.parametrize("held", LEASES)
def test_a_lease_document_encodes_as_the_model_does(held: Lease) -> None:
    model = LeaseOut.of(held).model_dump_json().encode()
    assert fastjson.dumps_fast(LeaseOut.doc(held)) == model


def test_the_claim_answers_encode_as_their_models_do() -> None:
    docs = [LeaseOut.doc(x) for x in LEASES]
    claimed = ClaimOut(leases=[LeaseOut.of(x) for x in LEASES]).model_dump_json().encode()
    assert fastjson.dumps_fast({"leases": docs}) == claimed
    lost = [{"id": 3, "token": 9}]
    fused = CompleteAndClaimOut.model_validate({"lost": lost, "leases": docs})
    assert fastjson.dumps_fast({"lost": lost, "leases": docs}) == fused.model_dump_json().encode()


@pytest.mark.parametrize("value", [2**70, {"n": -(2**64)}, [1, "x", {"y": None}], Status.DONE])
def test_what_orjson_refuses_is_written_by_the_standard_library(value: Any) -> None:
    plain = value.value if isinstance(value, Status) else value
    assert json.loads(fastjson.dumps(value)) == plain
    assert fastjson.loads(fastjson.dumps(value)) == plain


def test_reading_accepts_what_the_standard_library_accepted() -> None:
    assert fastjson.loads(b"[123456789012345678901234567890]") == [123456789012345678901234567890]
    assert math.isnan(fastjson.loads("[NaN]")[0])
    with pytest.raises(ValueError):
        fastjson.loads(b"{not json")


def test_dumps_fast_refuses_what_orjson_cannot_write() -> None:
    with pytest.raises(TypeError):
        fastjson.dumps_fast({"n": 2**70})
