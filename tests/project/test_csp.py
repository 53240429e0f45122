"""The staff pages send a strict Content-Security-Policy (issue 13, item 5); public pages do not."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

STAFF_PAGES = ["/admin/", "/admin/login/", "/admin/chat-analytics/", "/admin/chat-analytics/api/summary/"]


@pytest.fixture
def staff() -> Client:
    user = get_user_model().objects.create_user("ada", password="pw", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


def directives(header: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_staff_pages_send_a_strict_content_security_policy(staff: Client, url: str) -> None:
    response = staff.get(url, HTTP_HOST="localhost:8000")
    assert response.status_code in {200, 302}
    policy = directives(response["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["form-action"] == ["'self'"]
    assert policy["connect-src"] == ["'self'", "wss://localhost:8000", "ws://localhost:8000"]
    assert not any("unsafe" in value for values in policy.values() for value in values)


def test_staff_page_for_an_anonymous_visitor_has_it_too() -> None:
    response = Client().get("/admin/chat-analytics/")
    assert response.status_code == 302 and "default-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.parametrize("url", ["/", "/static/assistant/widget.js", "/healthz"])
def test_public_pages_and_the_widget_script_get_no_policy(client: Any, url: str) -> None:
    response = client.get(url)
    assert "Content-Security-Policy" not in response


def test_staff_templates_have_no_inline_script_or_style() -> None:
    from django.conf import settings

    templates = [
        path for folder in ("admin", "analytics") for path in (settings.BASE_DIR / "templates" / folder).glob("*.html")
    ]
    assert len(templates) >= 4
    for template in templates:
        text = template.read_text()
        for bad in ("<style", " style=", " onclick=", " onload=", "javascript:"):
            assert bad not in text, (template, bad)
        for line in text.splitlines():
            if "<script" in line:
                assert "src=" in line, (template, line)
