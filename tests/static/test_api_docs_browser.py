"""The interactive API docs (`/api/v1/docs/`) in a real browser, under the staff pages' CSP.

Swagger UI comes from the drf-spectacular-sidecar package (served from static/, no CDN): the
page must render the schema's operations with no Content-Security-Policy violation and no
request leaving the server. Its policy is the staff pages' one plus inline styles and `data:`
images (what Swagger UI needs); scripts stay this origin's only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.static import test_widget_browser as widget
from tests.support.live import daphne

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.django_db(transaction=True)]

browser = widget.browser


@pytest.fixture(scope="module")
def server(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    with django_db_blocker.unblock(), daphne({"ANALYTICS_RECOVERY_INTERVAL_S": "0"}) as base:
        yield base.replace("ws://", "http://")


def test_the_docs_page_renders_every_operation_offline_and_within_the_csp(browser: Any, server: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    foreign: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: request.url.startswith(server) or foreign.append(request.url))
    try:
        response = page.goto(f"{server}/api/v1/docs/")
        assert response is not None and response.status == 200
        policy = dict(
            [*part.strip().split(" ", 1), ""][:2] for part in response.headers["content-security-policy"].split(";")
        )
        assert policy["script-src"] == "'self'"  # Swagger UI's allowances are for styles and data: images only
        assert "'unsafe-inline'" in policy["style-src"] and "data:" in policy["img-src"]
        page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
        paths = set(page.locator(".opblock-summary-path").all_inner_texts())
        assert {"/api/v1/conversations/", "/api/v1/sessions/", "/api/v1/insights/"} <= {
            path.replace("\u200b", "") for path in paths
        }
        assert page.locator(".swagger-ui .info .title").inner_text().startswith("Parley API")
    finally:
        context.close()
    assert not problems, problems
    assert not foreign, foreign
