"""Every endpoint fuzzed from the app's own OpenAPI schema (schemathesis): whatever arrives, never a 500.

Half the cases carry a valid CSRF token, so the fuzz reaches the write handlers behind the guard too. The
operations are driven by Hypothesis directly (schemathesis' pytest plugin does not run on pytest 9).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from app.main import create_app
from galsearch.settings import Settings

EXAMPLES = 25  # per operation; bench-length fuzzing: GALSEARCH_FUZZ_EXAMPLES


@pytest.fixture(scope="module")
def api_schema(workdir: Path, tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    app = create_app(Settings(workdir=workdir, database_url=f"sqlite:///{db}", max_request_bytes=65536))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_endpoint_answers_500(api_schema) -> None:
    examples = int(os.environ.get("GALSEARCH_FUZZ_EXAMPLES", EXAMPLES))
    tried: dict[str, int] = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            tried[case.operation.label] = tried.get(case.operation.label, 0) + 1
            with_token = zlib.crc32(repr((case.query, case.body)).encode()) % 2 == 1
            case.call_and_validate(checks=[not_a_server_error],
                                   headers={"X-CSRF-Token": "fuzz"} if with_token else None,
                                   cookies={"galsearch_csrf": "fuzz"} if with_token else None)

        fuzz()
    assert len(tried) >= 20, tried  # every route in the schema was reached
    print(f"fuzzed {len(tried)} operations with {sum(tried.values())} cases")
