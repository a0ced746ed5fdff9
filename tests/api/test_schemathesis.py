"""Property-based tests of the API against its own OpenAPI schema: whatever the input, valid
or not, no answer is a 5xx, and every answer matches the schema.

In process, over ASGI, with an admin token, the simulated terminal and SQLite under
tmp_path; a bounded number of examples keeps it fast. (The schema is loaded inside the test
and its cases drawn with `@given`, because schemathesis' fixture-based loader does not work
with pytest 9.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pykka
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from pydantic import TypeAdapter, ValidationError
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from api.config import ApiConfig
from tests.api._support import bearer, engine_and_app

_EXCLUDED = {
    # The RPM message's validators (printable symbols, finite positive units) are stricter
    # than the JSON Schema pydantic derives from core.models, so a schema-valid message may
    # rightly be refused with 422.
    "/execute": [positive_data_acceptance],
}

MAX_EXAMPLES = {GenerationMode.POSITIVE: 150, GenerationMode.NEGATIVE: 150}
"""Cases per mode, spread over every operation; each is one in-process HTTP call."""


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_makes_the_api_fail(tmp_path: Path, mode: GenerationMode) -> None:
    config = ApiConfig(execute_wait_seconds=1.0, docs=True)
    try:
        with engine_and_app(tmp_path, config=config) as (_, app):
            # Drills start scratch engines (seconds each); tests/api/test_routes.py runs one.
            # The live stream never ends (tests/api/test_console_stream.py reads it).
            schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(
                path_regex="^/drills/|^/executions/stream$"
            )

            @given(case=schema.as_strategy(generation_mode=mode))
            @settings(
                max_examples=MAX_EXAMPLES[mode],
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            )
            def no_server_error(case: Any) -> None:
                assume(not _range_ends_before_it_starts(case.query))
                assume(not _dropped_by_the_client(case.query))
                case.call_and_validate(
                    headers=bearer("admin"), excluded_checks=_EXCLUDED.get(case.path, [])
                )

            no_server_error()
    finally:
        pykka.ActorRegistry.stop_all()


def _dropped_by_the_client(query: Any) -> bool:
    """A query parameter whose value is None or an empty list is not sent at all (by the
    HTTP client), so a case "negative" only through it reaches the API as a valid request."""
    return isinstance(query, dict) and any(
        value is None or (isinstance(value, list | tuple | dict) and not value)
        for value in query.values()
    )


def _range_ends_before_it_starts(query: Any) -> bool:
    """`end_date < start_date` is refused (422) by a rule JSON Schema cannot state, which
    schemathesis would report as valid data rejected; tests/api/test_routes.py covers it."""
    if not isinstance(query, dict):
        return False
    try:
        start = _DATETIME.validate_python(query.get("start_date"))
        end = _DATETIME.validate_python(query.get("end_date"))
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        if end.tzinfo is None:
            end = end.replace(tzinfo=UTC)
        return bool(end < start)
    except (ValidationError, OverflowError):
        return False


_DATETIME = TypeAdapter(datetime)


def test_a_decision_without_a_trade_is_recorded(tmp_path: Path) -> None:
    from tests.api._support import ApiClient

    try:
        with engine_and_app(tmp_path) as (_, app), ApiClient(app) as client:
            hold = {"decision": {"decision_id": "hold-1", "status": "HOLD"}}
            response = client.post("/execute", headers=bearer("trader"), json=hold)
            assert response.status_code == 200, response.text
            assert response.json()["rejection_reason"] == "RPM_NOT_APPROVED"
    finally:
        pykka.ActorRegistry.stop_all()
