"""The desk page (`/desk/`): agents only, a sign-in for agents who are not staff, the staff CSP."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.assistant.handoff.conftest import support_agents

pytestmark = pytest.mark.django_db

DESK = "/desk/"


def signed_in(*, agent: bool = False, staff: bool = False, superuser: bool = False) -> Client:
    model = get_user_model()
    if superuser:
        user = model.objects.create_superuser("root", "root@example.com", "pw")
    else:
        user = model.objects.create_user("ada", password="pw", is_staff=staff, first_name="Ada")
    if agent:
        user.groups.add(support_agents())
    client = Client()
    client.force_login(user)
    return client


def policy(response: Any) -> dict[str, str]:
    """The Content-Security-Policy header as {directive: sources}."""
    header = response["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


def test_anonymous_visitors_are_sent_to_the_desk_sign_in_and_back() -> None:
    response = Client().get(DESK)
    assert response.status_code == 302
    assert response["Location"] == "/desk/login/?next=/desk/"


def test_staff_without_use_desk_get_403() -> None:
    assert signed_in(staff=True).get(DESK).status_code == 403


def test_an_agent_who_is_not_staff_gets_the_desk() -> None:
    response = signed_in(agent=True).get(DESK)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="desk"' in html and 'data-ws="/ws/desk/"' in html
    assert "desk/desk.js" in html and "data-parley-library" in html
    assert "<script>" not in html  # no inline script: the configuration is in data attributes


def test_a_superuser_gets_the_desk() -> None:
    assert signed_in(superuser=True).get(DESK).status_code == 200


def test_the_desk_sends_the_staff_content_security_policy(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["desk.example"]
    response = signed_in(agent=True).get(DESK, HTTP_HOST="desk.example")
    directives = policy(response)
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["connect-src"].split() == ["'self'", "wss://desk.example", "ws://desk.example"]


def test_an_agent_who_is_not_staff_signs_in_on_the_desk_sign_in_page() -> None:
    get_user_model().objects.create_user("ada", password="correct-horse-1").groups.add(support_agents())
    client = Client()
    page = client.get("/desk/login/?next=/desk/")
    assert page.status_code == 200 and "Content-Security-Policy" in page
    response = client.post("/desk/login/", {"username": "ada", "password": "correct-horse-1", "next": "/desk/"})
    assert response.status_code == 302 and response["Location"] == "/desk/"
    assert client.get(DESK).status_code == 200


def test_the_sign_in_refuses_a_wrong_password() -> None:
    get_user_model().objects.create_user("ada", password="correct-horse-1")
    client = Client()
    response = client.post("/desk/login/", {"username": "ada", "password": "wrong"})
    assert response.status_code == 200 and b"errornote" in response.content
    assert client.get(DESK).status_code == 302


def test_the_desk_log_out_button_leads_back_to_the_desk_sign_in() -> None:
    client = signed_in(agent=True)
    page = client.get(DESK).content.decode()
    assert 'action="/desk/logout/"' in page
    response = client.post("/desk/logout/")
    assert response.status_code == 302 and response["Location"] == "/desk/login/"
    assert client.get(DESK).status_code == 302
