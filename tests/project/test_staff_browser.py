"""Staff pages and sockets in a real browser (issue 13, item 5): Debian's chromium, a real daphne.

The dashboard works under its Content-Security-Policy (its live socket connects: `'self'` in
connect-src covers same-origin ws: in a CSP3 browser), the policy blocks injected inline script,
and a page of another origin that the signed-in staff user visits cannot open the staff socket:
its browser sends the staff cookie (the other origin is on the same host, another port, so the
same *site*: a SameSite=Lax cookie goes along), and the server closes with 4403.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.static import test_dashboard_browser as dashboard

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.django_db(transaction=True)]

browser, server, users, page = dashboard.browser, dashboard.server, dashboard.users, dashboard.page

#: Opens the staff socket from the current page and resolves with how it ended.
OPEN_STAFF_SOCKET = """(url) => new Promise((resolve) => {
    const socket = new WebSocket(url);
    const frames = [];
    socket.onmessage = (event) => frames.push(event.data);
    socket.onclose = (event) => resolve({code: event.code, frames});
    socket.onopen = () => {
        socket.send(JSON.stringify({type: "ping"}));
        setTimeout(() => { if (socket.readyState === 1) { socket.close(1000); } }, 1500);
    };
})"""


def test_dashboard_runs_under_its_content_security_policy_and_keeps_its_live_socket(
    page: Any, server: str, users: None
) -> None:
    dashboard.sign_in(page, server, dashboard.STAFF)
    response = page.goto(f"{server}{dashboard.DASHBOARD}")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    dashboard.wait_loaded(page)
    page.locator("#ca-live[data-status=live]").wait_for(timeout=10_000)  # the websocket, allowed
    blocked = page.evaluate(
        """() => new Promise((resolve) => {
            document.addEventListener("securitypolicyviolation", (e) => resolve(e.violatedDirective));
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.head.appendChild(script);
            setTimeout(() => resolve(window.injected ? "ran" : "no event"), 2000);
        })"""
    )
    assert blocked.startswith("script-src")
    # The one console error is the violation just provoked; nothing else was refused.
    assert [error for error in page.errors if "Content Security Policy" not in error] == []  # type: ignore[attr-defined]
    assert len(page.errors) == 1  # type: ignore[attr-defined]


def test_a_page_of_another_origin_cannot_open_the_staff_socket_with_the_staff_cookie(
    page: Any, server: str, users: None
) -> None:
    dashboard.sign_in(page, server, dashboard.STAFF)
    socket_url = server.replace("http://", "ws://") + "/ws/analytics/"
    own = page.evaluate(OPEN_STAFF_SOCKET, socket_url)
    assert own["code"] == 1000 and '{"type":"pong"}' in own["frames"]  # the staff's own page: fine
    host, port = server.removeprefix("http://").rsplit(":", 1)
    other = f"http://{host}:{int(port) + 1}/"  # same host, another port: another origin, same site
    page.route(
        other + "**", lambda route: route.fulfill(body="<!doctype html><title>x</title>", content_type="text/html")
    )
    page.goto(other)
    assert page.evaluate("() => location.origin") == other.rstrip("/")
    hijack = page.evaluate(OPEN_STAFF_SOCKET, socket_url)
    assert hijack == {"code": 4403, "frames": []}


ADMIN_PAGES = [
    "/admin/",
    "/admin/assistant/chatsession/",
    "/admin/assistant/chatsession/add/",
    "/admin/assistant/chatmessage/",
    "/admin/analytics/chatanalytics/",
    "/admin/auth/user/",
    "/admin/auth/user/{root}/change/",
    "/admin/password_change/",
]


def test_the_django_admin_pages_run_under_the_policy_without_a_violation(page: Any, server: str) -> None:
    """The admin's own templates and scripts (changelists, forms, widgets) need nothing inline."""
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", "root@example.com", "correct-horse-root-1")
    dashboard.sign_in(page, server, ("root", "correct-horse-root-1"), next_path="/admin/")
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text) if "Content Security" in message.text else None)
    for path in ADMIN_PAGES:
        response = page.goto(server + path.format(root=root.pk))
        assert response.status == 200, path
        assert "default-src 'self'" in response.headers["content-security-policy"], path
        page.wait_for_load_state("load")
    page.wait_for_timeout(300)
    assert violations == [] and page.errors == []  # type: ignore[attr-defined]
