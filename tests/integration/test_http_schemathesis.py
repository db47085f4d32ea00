"""Schemathesis against the served OpenAPI: generated (valid and invalid) requests to every
operation of a live server, with an admin token; no 5xx, and every answer matches the schema
(status code documented, content type, body schema). Examples are bounded to keep it short."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.http_transport import running_server
from workclaim import AsyncQueue, Settings
from workclaim.server import ServerConfig, create_app
from workclaim.server.auth import TokenStore, new_token, token_line

EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A live server with auth on (one all-powerful token) and short long-polls."""
    token = new_token()
    config = ServerConfig(
        settings=Settings(max_payload_bytes=8192),
        tokens=TokenStore(lines=token_line(token, "fuzzer", ["admin", "work:*", "enqueue"])),
        max_wait=0.2,
        max_batch=50,
    )
    path: Path = tmp_path_factory.mktemp("fuzz") / "w.db"
    queue = AsyncQueue(f"sqlite:///{path}", settings=config.settings)
    try:
        with running_server(create_app(queue, config)) as base:
            yield base, token
    finally:
        asyncio.run(queue.close())


@pytest.mark.timeout(150)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_conforms_and_never_5xx(
    served: tuple[str, str], mode: GenerationMode
) -> None:
    base, token = served
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    auth = {"Authorization": f"Bearer {token}"}
    failures: dict[str, str] = {}
    operations = [
        result.ok() if isinstance(result, Ok) else pytest.fail(f"bad operation: {result.err()}")
        for result in schema.get_all_operations()
    ]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=auth, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to negate (no parameters, no body)
        except Exception as exc:  # collect every operation's failure, then report them all
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
