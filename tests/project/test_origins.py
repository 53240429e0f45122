"""Staff websockets open only from the site's own origin (issue 13, item 5).

`/ws/analytics/` accepted a staff cookie sent with `Origin: https://evil.example` and with
`Origin: null`, then streamed a watched visitor's messages live (cross-site websocket hijacking).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from project import asgi
from project.origins import StaffOriginGuard, check_staff_origin, parse_origin
from tests.support.chat import open_client

HOST = (b"host", b"localhost:8000")


@database_sync_to_async
def staff_cookie() -> tuple[bytes, bytes]:
    user = get_user_model().objects.create_user("ada", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


def scope(*headers: tuple[bytes, bytes], scheme: str | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "websocket", "path": "/ws/analytics/", "headers": list(headers)}
    if scheme is not None:
        value["scheme"] = scheme
    return value


# --- The finding, end to end --------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.backends
@pytest.mark.usefixtures("drain_replies")
@pytest.mark.parametrize("origin", [b"https://evil.example", b"null", None])
async def test_staff_socket_with_a_staff_cookie_from_another_origin_is_closed_4403_before_streaming(
    origin: bytes | None, caplog: Any
) -> None:
    chat, _, _ = await open_client()
    welcome = await chat.hello()
    headers = [HOST, await staff_cookie()] + ([(b"origin", origin)] if origin is not None else [])
    communicator = WebsocketCommunicator(asgi.application, "/ws/analytics/", headers=headers)
    with caplog.at_level(logging.WARNING, logger="project.origins"):
        connected, _ = await communicator.connect(timeout=5)
        assert connected  # accepted, so that the page sees the code
        await communicator.send_json_to({"type": "watch", "session_id": welcome["session_id"]})
        await chat.say("How do I embed the widget?", "m1")
        assert await communicator.receive_output(5) == {"type": "websocket.close", "code": 4403}
        assert await communicator.receive_nothing(0.3)  # no "watching", no chat frame, no events
    await communicator.disconnect()
    await chat.close()
    warnings = [record for record in caplog.records if record.name == "project.origins"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "/ws/analytics/" in warnings[0].getMessage()


@pytest.mark.django_db(transaction=True)
@pytest.mark.backends
async def test_staff_socket_from_the_sites_own_origin_opens() -> None:
    headers = [HOST, (b"origin", b"http://localhost:8000"), await staff_cookie()]
    communicator = WebsocketCommunicator(asgi.application, "/ws/analytics/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(5) == {"type": "pong"}
    await communicator.disconnect()


def test_every_staff_socket_is_mounted_behind_the_origin_guard() -> None:
    assert asgi.staff_sockets and all(isinstance(route.callback, StaffOriginGuard) for route in asgi.staff_sockets)
    assert [str(route.pattern) for route in asgi.staff_sockets] == ["ws/analytics/", "ws/desk/"]


# --- The rule -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        [HOST, (b"origin", b"https://evil.example")],
        [HOST, (b"origin", b"null")],
        [HOST, (b"origin", b"NULL")],
        [HOST],  # no Origin: not a browser page
        [HOST, (b"origin", b"")],
        [HOST, (b"origin", b"http://localhost:8000"), (b"origin", b"https://evil.example")],
        [HOST, (b"origin", b"http://localhost:8001")],  # another port of the same host
        [HOST, (b"origin", b"file://")],
        [HOST, (b"origin", b"chrome-extension://abcdef")],
        [HOST, (b"origin", b"http://localhost:8000/path")],
        [HOST, (b"origin", b"http://user@localhost:8000")],
        [HOST, (b"origin", b"http://localhost:99999")],
        [HOST, (b"origin", b"http://[::1")],
        [HOST, (b"origin", b"http://localhost.evil.example:8000")],
        [(b"origin", b"http://localhost:8000")],  # no Host to compare with
        # DNS rebinding: the page and the Host agree, but the host is not one this site serves.
        [(b"host", b"evil.example"), (b"origin", b"http://evil.example")],
    ],
)
def test_staff_origin_is_refused(headers: list[tuple[bytes, bytes]]) -> None:
    assert check_staff_origin(scope(*headers)) is not None


@pytest.mark.parametrize(
    ("headers", "scheme"),
    [
        ([HOST, (b"origin", b"http://localhost:8000")], None),
        ([HOST, (b"origin", b"HTTP://LocalHost:8000")], None),
        ([(b"host", b"localhost"), (b"origin", b"http://localhost")], None),
        ([(b"host", b"localhost"), (b"origin", b"https://localhost:443")], "wss"),
        ([(b"host", b"localhost:80"), (b"origin", b"http://localhost")], "ws"),
        ([(b"host", b"[::1]:8000"), (b"origin", b"http://[::1]:8000")], None),
    ],
)
def test_staff_origin_of_the_site_itself_is_accepted(headers: list[tuple[bytes, bytes]], scheme: str | None) -> None:
    assert check_staff_origin(scope(*headers, scheme=scheme)) is None


def test_staff_origin_over_tls_must_be_https() -> None:
    headers = [(b"host", b"localhost"), (b"origin", b"http://localhost:443")]
    assert check_staff_origin(scope(*headers, scheme="wss")) is not None


def test_configured_staff_origins_are_accepted_and_only_those(settings: Any) -> None:
    settings.STAFF_ALLOWED_ORIGINS = ["https://ops.example.com", "http://localhost:9000"]
    assert check_staff_origin(scope(HOST, (b"origin", b"https://ops.example.com"))) is None
    assert check_staff_origin(scope(HOST, (b"origin", b"https://ops.example.com:443"))) is None
    assert check_staff_origin(scope(HOST, (b"origin", b"http://localhost:9000"))) is None
    assert check_staff_origin(scope(HOST, (b"origin", b"http://ops.example.com"))) is not None
    assert check_staff_origin(scope(HOST, (b"origin", b"https://evil.ops.example.com"))) is not None


def test_parse_origin_reads_only_serialised_origins() -> None:
    assert parse_origin("https://Example.com") == ("https", "example.com", 443)
    assert parse_origin("http://example.com:8080") == ("http", "example.com", 8080)
    for bad in ["null", "", "example.com", "https://", "ftp://example.com", "https://example.com/", "https://a:b"]:
        assert parse_origin(bad) is None, bad
