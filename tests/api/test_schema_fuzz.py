"""schemathesis against the live schema: every operation of /api/v1/, fuzzed within bounds.

A real `manage.py serve` process on its own SQLite database (migrated here, so the fuzzing
cannot disturb other tests' data), an API key made with `manage.py api_key create`, and real
conversations made through the API. For every operation in `/api/v1/schema/`, schemathesis
generates requests from the schema (valid and invalid) and checks each response: no 5xx, the
status code, content type, headers and body all as the schema declares.

Visitor operations get the token of a conversation of their own (so `end` and `handoff` cannot
spoil the others' conversation) and real ids in their paths, or they would only ever see 403.
Each operation also gets schemathesis' authentication probes (no credentials, bad credentials).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.live import ROOT, free_port, stop, wait_healthy

pytestmark = [pytest.mark.live]

#: Examples per operation: enough to reach every parameter's bounds and types, few enough that
#: the whole run stays around a minute on a 2-core machine.
EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "25"))

_LIMITS = {
    # The fuzzing sends far more than a visitor would: it tests shapes and bounds, not the limits
    # (tests/api/ test those).
    "CHAT_RATE_LIMIT_PER_MINUTE": "100000",
    "CHAT_RATE_LIMIT_BURST": "100000",
    "CHAT_IP_RATE_LIMIT_PER_MINUTE": "100000",
    "CHAT_SESSIONS_PER_IP_PER_HOUR": "100000",
    "API_KEY_RATE_LIMIT_PER_MINUTE": "100000",
    "API_REQUESTS_PER_IP_PER_MINUTE": "100000",
    "LOCAL_TOKEN_DELAY_MS": "0",
    "ANALYTICS_RECOVERY_INTERVAL_S": "0",
    "ALERTS_INTERVAL_S": "0",
}


def _env(database: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL", "SQLITE_PATH"}}
    env.update({"PARLEY_DOTENV": "0", "PARLEY_ENV": "test", "DEBUG": "0", "LOG_LEVEL": "error"})
    env.update({"SHUTDOWN_GRACE_S": "0", "SQLITE_PATH": str(database), **_LIMITS})
    return env


def _call(base: str, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    request = urllib.request.Request(f"{base}{path}", method=method, data=json.dumps(body or {}).encode())
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


class Site:
    """The server under test, its key, and conversations to fuzz."""

    def __init__(self, base: str, key: str) -> None:
        self.base = base
        self.key = key
        self.shared = self.conversation(with_message=True)

    def conversation(self, *, with_message: bool = False) -> dict[str, Any]:
        made = _call(self.base, "POST", "/api/v1/conversations/", {"locale": "en"})
        if with_message:
            turn = _call(
                self.base,
                "POST",
                f"/api/v1/conversations/{made['id']}/messages/",
                {"text": "How do I reset my password?"},
                made["token"],
            )
            made["message_id"] = turn["ai_message"]["message_id"]
        return made


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    database = tmp_path_factory.mktemp("api-fuzz") / "fuzz.sqlite3"
    env = _env(database)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
    created = subprocess.run(
        [*manage, "api_key", "create", "--name", "fuzz", "--scopes", "read,export,import", "--quiet"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    process = subprocess.Popen(
        [*manage, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(port, process, name="daphne", within=30)
        yield Site(f"http://127.0.0.1:{port}", key)
    finally:
        stop(process)


def _schema_document() -> dict[str, Any]:
    """The schema drf-spectacular builds from this code: the one the server serves (a test below checks)."""
    from drf_spectacular.generators import SchemaGenerator
    from rest_framework.renderers import JSONRenderer

    # Through JSON, as the server sends it (lazy strings and the like become plain values).
    return json.loads(JSONRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


# Loaded at collection, so that pytest gets one test per operation. (schemathesis'
# `from_fixture` would load it from the live server instead, but it does not work with pytest 9.)
schema = schemathesis.openapi.from_dict(_schema_document())


def test_the_live_server_serves_this_schema(site: Site) -> None:
    with urllib.request.urlopen(f"{site.base}/api/v1/schema/?format=json", timeout=30) as response:
        served = json.loads(response.read())
    assert served == schema.raw_schema


def _visitor(path: str) -> bool:
    return path.startswith(("/api/v1/conversations", "/api/v1/messages"))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure in CI reproduces locally
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_its_schema_says(case: Any, site: Site) -> None:
    path = case.operation.path
    negative = _negative_parts(case)
    headers: dict[str, str] = {}
    if _visitor(path):
        own = site.conversation() if path.endswith(("/end/", "/handoff/")) else site.shared
        if "path" not in negative and case.path_parameters:
            # Real ids, or the operation would only ever answer 403; a case whose path is meant
            # to be invalid keeps its generated ids.
            if "message_id" in case.path_parameters:
                case.path_parameters["message_id"] = site.shared["message_id"]
                own = site.shared
            if "conversation_id" in case.path_parameters:
                case.path_parameters["conversation_id"] = own["id"]
        if "header" not in negative and path != "/api/v1/conversations/":
            headers["Authorization"] = f"Bearer {own['token']}"
    else:
        if "path" not in negative and case.path_parameters and "id" in case.path_parameters:
            case.path_parameters["id"] = site.shared["id"]
        if "header" not in negative:
            headers["Authorization"] = f"Bearer {site.key}"
    # Every check but "schema-valid data is accepted": the API has rules across parameters that
    # OpenAPI cannot state (`days` or `start_date`/`end_date`, a start before its end, at most
    # 366 days), so some schema-valid requests are rightly refused with a 400 naming the
    # parameter. Schema-violating data must still be refused, and every response must conform.
    case.call_and_validate(base_url=site.base, headers=headers or None, excluded_checks=[positive_data_acceptance])


def _negative_parts(case: Any) -> set[str]:
    """The parts of the request schemathesis generated to be invalid (`path`, `header`, `query`, `body`)."""
    meta = getattr(case, "_meta", None)
    if meta is None:
        return set()
    return {str(location.value) for location, info in meta.components.items() if info.mode.is_negative}
