"""HTTP: the demo page, its static files, and the `/healthz` probe."""

from __future__ import annotations

import json

import pytest
from django.test import AsyncClient, Client


def test_demo_page_embeds_the_widget_with_the_snippet_it_shows(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert [template.name for template in response.templates] == ["assistant/demo.html"]
    snippet = (
        '<script src="http://testserver/static/assistant/widget.js" '
        'data-parley-server="http://testserver" async></script>'
    )
    page = response.content.decode()
    assert page.count(snippet) == 1  # the real tag, once
    assert snippet.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;") in page  # and shown as text


def test_widget_script_is_served_by_whitenoise(client: Client) -> None:
    response = client.get("/static/assistant/widget.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert len(b"".join(response.streaming_content)) > 0


def test_missing_static_file_is_not_found(client: Client) -> None:
    assert client.get("/static/assistant/no-such-file.js").status_code == 404


def test_demo_page_refuses_host_not_in_allowed_hosts(client: Client) -> None:
    assert client.get("/", HTTP_HOST="10.1.2.3:8000").status_code == 400


@pytest.mark.django_db(transaction=True)
def test_healthz_reports_ok_for_sync_client(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"status": "ok", "database": True, "channel_layer": True}


@pytest.mark.django_db(transaction=True)
async def test_healthz_answers_host_not_in_allowed_hosts(async_client: AsyncClient) -> None:
    # Load balancers probe the container by IP address, which ALLOWED_HOSTS does not list.
    refused = await async_client.get("/", headers={"host": "10.1.2.3:8000"})
    response = await async_client.get("/healthz", headers={"host": "10.1.2.3:8000"})
    assert refused.status_code == 400
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok", "database": True, "channel_layer": True}
