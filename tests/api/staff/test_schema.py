"""The staff side of the OpenAPI schema: every operation documented with its parameters, answers and
security; and schemathesis fuzzing each staff operation with a key (bounded examples): no 5xx,
every status, content type, header and body as the schema says."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.staff.conftest import ENDPOINTS

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def openapi(db) -> dict[str, Any]:
    response = Client().get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def test_every_staff_operation_is_documented_with_its_errors_and_security(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    documented = [*ENDPOINTS, "/api/v1/sessions/{id}/"]
    assert set(documented) <= set(paths)
    for path in documented:
        operation = paths[path]["get"]
        assert {"200", "400", "401", "403", "429"} <= set(operation["responses"]), path
        assert {"staffApiKey": []} in operation["security"] and {"cookieAuth": []} in operation["security"], path
        for status in ("400", "401", "403", "429"):
            assert operation["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
        assert "Retry-After" in operation["responses"]["429"].get("headers", {}), path
    assert "404" in paths["/api/v1/sessions/{id}/"]["get"]["responses"]
    scheme = openapi["components"]["securitySchemes"]["staffApiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


def test_parameters_carry_their_types_enums_and_bounds(openapi: dict[str, Any]) -> None:
    sessions = {p["name"]: p["schema"] for p in openapi["paths"]["/api/v1/sessions/"]["get"]["parameters"]}
    assert set(sessions) >= {"start_date", "end_date", "user_type", "status", "resolved", "escalated",
                             "satisfied_only", "topic", "provider", "source", "q", "cursor", "limit"}  # fmt: skip
    assert sessions["limit"] == {"type": "integer", "minimum": 1, "maximum": 100}
    assert (sessions["q"]["minLength"], sessions["q"]["maxLength"]) == (3, 100)
    assert sessions["status"]["enum"] == ["active", "closed"]
    assert sessions["start_date"]["format"] == "date"
    assert sessions["resolved"]["type"] == "boolean"
    metrics = {p["name"]: p["schema"] for p in openapi["paths"]["/api/v1/metrics/"]["get"]["parameters"]}
    assert metrics["days"] == {"type": "integer", "minimum": 1, "maximum": 366}
    assert set(metrics["provider"]["enum"]) == {"openai", "anthropic", "gemini", "local"}
    exports = openapi["paths"]["/api/v1/exports/messages/"]["get"]["responses"]["200"]["content"]
    assert set(exports) == {"text/csv", "application/x-ndjson"}


@pytest.fixture
def fuzz_data(db, settings) -> None:
    """A week of analytics to answer with, and no rate limit in the way."""
    from tests.analytics.conftest import build_week

    settings.API_KEY_RATE_LIMIT_PER_MINUTE = 0
    build_week()


@pytest.mark.backends
@pytest.mark.django_db(transaction=True)  # the exports read through another connection
@pytest.mark.parametrize("path", [*ENDPOINTS, "/api/v1/sessions/{id}/"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_staff_operations_conform_to_the_schema_under_fuzzing(path: str, mode: GenerationMode, make_key,
                                                              fuzz_data) -> None:  # fmt: skip
    key = make_key("read", "export")
    staff = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
    operation = staff[path]["GET"]

    @given(case=operation.as_strategy(generation_mode=mode))
    @examples(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)

    fuzz()
