"""Client addresses behind a reverse proxy: X-Forwarded-For read from the right, from trusted peers only."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import websockets
from channels.testing import WebsocketCommunicator
from websockets.exceptions import ConnectionClosed

from project import proxy
from project.asgi import application
from project.proxy import ProxyHeaders, forwarded_client, parse_address, trusted_networks
from tests.support.live import daphne

LOOPBACK = trusted_networks(("127.0.0.0/8", "::1"))
COMPOSE = trusted_networks(("127.0.0.0/8", "::1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


# --- parsing ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("198.51.100.7", "198.51.100.7"),
        (" 198.51.100.7 ", "198.51.100.7"),
        ("198.51.100.7:5555", "198.51.100.7"),
        ("2001:db8::5", "2001:db8::5"),
        ("[2001:db8::5]:443", "2001:db8::5"),
        ("[2001:db8::5]", "2001:db8::5"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("unknown", None),
        ("", None),
        ("1.2.3", None),
        ("999.1.1.1", None),
        ("[2001:db8::5", None),
        ("<script>", None),
        ("1.2.3.4 5.6.7.8", None),
        ("198.51.100.7:http", None),
        ("[2001:db8::5]x", None),
    ],
)
def test_parse_address_accepts_addresses_with_ports_and_refuses_garbage(text: str, expected: str | None) -> None:
    address = parse_address(text)
    assert (None if address is None else str(address)) == expected


@pytest.mark.parametrize(
    ("peer", "header", "networks", "hops", "expected"),
    [
        # An untrusted peer: its X-Forwarded-For is whatever it wants, so it is ignored.
        ("203.0.113.5", "198.51.100.7", LOOPBACK, 0, "203.0.113.5"),
        ("203.0.113.5", "198.51.100.7", LOOPBACK, 1, "203.0.113.5"),
        # The proxy set the header to the address it saw.
        ("127.0.0.1", "198.51.100.7", LOOPBACK, 0, "198.51.100.7"),
        # A proxy that appends: the client's own entries are on the left, the real one rightmost.
        ("127.0.0.1", "6.6.6.6, 198.51.100.7", LOOPBACK, 0, "198.51.100.7"),
        # Two proxies: skip the trusted inner one, stop at the first untrusted entry.
        ("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3", COMPOSE, 0, "198.51.100.7"),
        # Every entry is a trusted proxy: the farthest one is the best answer there is.
        ("127.0.0.1", "10.0.0.1, 10.0.0.2", COMPOSE, 0, "10.0.0.1"),
        # Hops: the N-th entry from the right, whatever it is.
        ("127.0.0.1", "6.6.6.6, 198.51.100.7", LOOPBACK, 1, "198.51.100.7"),
        ("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3", LOOPBACK, 2, "198.51.100.7"),
        ("127.0.0.1", "198.51.100.7", LOOPBACK, 2, "127.0.0.1"),
        # IPv6 peers and entries.
        ("::1", "2001:db8::5", LOOPBACK, 0, "2001:db8::5"),
        ("::1", "6.6.6.6, [2001:db8::5]:443", LOOPBACK, 0, "2001:db8::5"),
        ("::ffff:127.0.0.1", "198.51.100.7", LOOPBACK, 0, "198.51.100.7"),
        ("127.0.0.1", "::ffff:198.51.100.7", LOOPBACK, 0, "198.51.100.7"),
        # No usable header: the peer.
        ("127.0.0.1", None, LOOPBACK, 0, "127.0.0.1"),
        ("127.0.0.1", " , ,", LOOPBACK, 0, "127.0.0.1"),
        # Garbage left of the client's entry is never even looked at.
        ("127.0.0.1", "garbage, 198.51.100.7", LOOPBACK, 0, "198.51.100.7"),
    ],
)
def test_forwarded_client_takes_the_rightmost_untrusted_entry_from_a_trusted_peer_only(
    peer: str, header: str | None, networks: Any, hops: int, expected: str
) -> None:
    assert forwarded_client(peer, header, networks=networks, hops=hops) == (expected, False)


@pytest.mark.parametrize(
    ("header", "hops", "expected"),
    [
        ("198.51.100.7, garbage", 0, "127.0.0.1"),
        ("198.51.100.7, garbage, 10.0.0.9", 0, "10.0.0.9"),
        ("garbage", 1, "127.0.0.1"),
    ],
)
def test_a_malformed_entry_a_trusted_proxy_wrote_falls_back_to_the_last_trusted_address(
    header: str, hops: int, expected: str
) -> None:
    assert forwarded_client("127.0.0.1", header, networks=COMPOSE, hops=hops) == (expected, True)


# --- the middleware -----------------------------------------------------------------------------
async def seen_scope(scope: dict[str, Any]) -> dict[str, Any]:
    """The scope the wrapped application receives."""
    seen: dict[str, Any] = {}

    async def app(inner: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(inner)

    await ProxyHeaders(app)(scope, None, None)
    return seen


def scope_of(kind: str, peer: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": kind,
        "scheme": "ws" if kind == "websocket" else "http",
        "client": (peer, 40000),
        "headers": headers,
        "path": "/",
    }


@pytest.fixture
def proxy_settings(settings) -> Any:
    settings.TRUST_PROXY_HEADERS = True
    settings.TRUSTED_PROXIES = ["127.0.0.0/8", "::1"]
    settings.TRUSTED_PROXY_HOPS = 0
    return settings


@pytest.mark.parametrize(("kind", "scheme"), [("http", "https"), ("websocket", "wss")])
async def test_middleware_rewrites_client_and_scheme_from_a_trusted_peer(
    proxy_settings, kind: str, scheme: str
) -> None:
    headers = [(b"x-forwarded-for", b"6.6.6.6, 198.51.100.7"), (b"x-forwarded-proto", b"https")]
    seen = await seen_scope(scope_of(kind, "127.0.0.1", headers))
    assert seen["client"] == ("198.51.100.7", 0)
    assert seen["scheme"] == scheme


@pytest.mark.parametrize("kind", ["http", "websocket"])
async def test_middleware_ignores_forwarded_headers_from_an_untrusted_peer(proxy_settings, kind: str) -> None:
    headers = [(b"x-forwarded-for", b"198.51.100.7"), (b"x-forwarded-proto", b"https")]
    scope = scope_of(kind, "203.0.113.5", headers)
    seen = await seen_scope(scope)
    assert seen["client"] == ("203.0.113.5", 40000)
    assert seen["scheme"] == scope["scheme"]


async def test_middleware_does_nothing_unless_trust_proxy_headers_is_on(proxy_settings) -> None:
    proxy_settings.TRUST_PROXY_HEADERS = False
    seen = await seen_scope(scope_of("http", "127.0.0.1", [(b"x-forwarded-for", b"198.51.100.7")]))
    assert seen["client"] == ("127.0.0.1", 40000)


async def test_middleware_reads_several_x_forwarded_for_lines_as_one_list(proxy_settings) -> None:
    headers = [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"198.51.100.7")]
    seen = await seen_scope(scope_of("http", "127.0.0.1", headers))
    assert seen["client"] == ("198.51.100.7", 0)


async def test_middleware_honours_trusted_proxy_hops(proxy_settings) -> None:
    proxy_settings.TRUSTED_PROXY_HOPS = 2
    headers = [(b"x-forwarded-for", b"6.6.6.6, 198.51.100.7, 192.0.2.1")]
    seen = await seen_scope(scope_of("http", "127.0.0.1", headers))
    assert seen["client"] == ("198.51.100.7", 0)


async def test_middleware_ignores_an_unknown_forwarded_proto(proxy_settings) -> None:
    headers = [(b"x-forwarded-proto", b"gopher")]
    seen = await seen_scope(scope_of("http", "127.0.0.1", headers))
    assert seen["scheme"] == "http"


async def test_a_malformed_x_forwarded_for_logs_one_warning_and_no_more_within_a_minute(
    proxy_settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(proxy, "_last_warning", -1e9)
    headers = [(b"x-forwarded-for", b"198.51.100.7, not-an-address")]
    with caplog.at_level(logging.WARNING, logger="project.proxy"):
        for _ in range(5):
            seen = await seen_scope(scope_of("websocket", "127.0.0.1", headers))
            assert seen["client"] == ("127.0.0.1", 40000)
    records = [record for record in caplog.records if record.name == "project.proxy"]
    assert [record.levelname for record in records] == ["WARNING"]
    assert records[0].exc_info is None


# --- through the chat consumer ------------------------------------------------------------------
async def opened(peer: str, forwarded_for: str) -> tuple[WebsocketCommunicator, int | None]:
    """Open /ws/chat/ from `peer` with an X-Forwarded-For; the close code, if refused at once."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await application(dict(scope, client=(peer, 40000)), receive, send)

    communicator = WebsocketCommunicator(
        app, "/ws/chat/", headers=[(b"host", b"testserver"), (b"x-forwarded-for", forwarded_for.encode())]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    try:
        output = await asyncio.wait_for(communicator.output_queue.get(), 0.2)
    except TimeoutError:
        return communicator, None
    return communicator, output.get("code")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("peer", "spoof"),
    [("203.0.113.5", "198.51.100.{i}"), ("127.0.0.1", "198.51.100.{i}, 203.0.113.5")],
    ids=["untrusted-peer", "appending-proxy"],
)
async def test_spoofed_x_forwarded_for_values_share_one_connection_limit(proxy_settings, peer: str, spoof: str) -> None:
    proxy_settings.MAX_CONNECTIONS_PER_IP = 2
    clients = []
    for index in range(2):
        communicator, code = await opened(peer, spoof.format(i=index))
        clients.append(communicator)
        assert code is None
    communicator, code = await opened(peer, spoof.format(i=99))
    clients.append(communicator)
    assert code == 4429
    for communicator in clients:
        await communicator.disconnect()


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
async def test_serve_with_proxy_headers_ignores_x_forwarded_for_from_a_peer_outside_trusted_proxies() -> None:
    """Issue 13 item 3, without nginx: daphne's own handling believed the leftmost entry."""
    env = {"TRUST_PROXY_HEADERS": "1", "TRUSTED_PROXIES": "192.0.2.0/24", "MAX_CONNECTIONS_PER_IP": "2"}
    with daphne(env) as base:
        opened_sockets = []
        try:
            for index in range(2):
                ws = await websockets.connect(
                    f"{base}/ws/chat/", additional_headers={"X-Forwarded-For": f"198.51.100.{index}"}
                )
                opened_sockets.append(ws)
                await ws.send(json.dumps({"type": "hello"}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "welcome"
            ws = await websockets.connect(f"{base}/ws/chat/", additional_headers={"X-Forwarded-For": "198.51.100.9"})
            opened_sockets.append(ws)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
        finally:
            for ws in opened_sockets:
                await ws.close()
