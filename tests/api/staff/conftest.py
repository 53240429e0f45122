"""Fixtures of the staff API's tests: keys with given scopes and states, staff and other clients.

The analytics fixtures (`week`, `human_week`: hand-computed weeks) come from tests/analytics.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from api import keys
from api.models import ApiKey
from tests.analytics.conftest import human_week, week  # noqa: F401 - fixtures used by the tests here

#: Every staff endpoint and the scope it needs (the exports stream: their bodies are read apart).
ENDPOINTS = {
    "/api/v1/insights/": "read",
    "/api/v1/metrics/": "read",
    "/api/v1/sessions/": "read",
    "/api/v1/usage/": "read",
    "/api/v1/usage/daily/": "read",
    "/api/v1/usage/cost-trend/": "read",
    "/api/v1/usage/features/": "read",
    "/api/v1/exports/sessions/": "export",
    "/api/v1/exports/messages/": "export",
    "/api/v1/exports/analytics/": "export",
}


def bearer(key: str) -> dict[str, dict[str, str]]:
    """The `headers` of a request (or client) made with `key`."""
    return {"headers": {"Authorization": f"Bearer {key}"}}


@pytest.fixture
def make_key(db) -> Callable[..., str]:
    """A key with `scopes`; `expired` or `revoked` ones too. Returns the whole key."""

    def make(*scopes: str, expired: bool = False, revoked: bool = False, name: str = "test") -> str:
        key, whole = keys.key_create(name=name, scopes=scopes or ("read",))
        if expired:
            ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        if revoked:
            keys.key_revoke(prefix=key.prefix)
        return whole

    return make


@pytest.fixture
def read_key(make_key) -> str:
    """A key with the `read` scope."""
    return make_key("read")


@pytest.fixture
def api(read_key) -> Client:
    """A client whose every request carries the `read` key."""
    return Client(**bearer(read_key))


@pytest.fixture
def staff_user(db) -> Any:
    return get_user_model().objects.create_user("staff", password="pw", is_staff=True)


@pytest.fixture
def staff(staff_user) -> Client:
    """A staff member's browser session."""
    client = Client()
    client.force_login(staff_user)
    return client
