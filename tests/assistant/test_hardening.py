"""Issue 13: a public websocket that survives the open internet.

Each test is named after the finding it covers (slot leaks, backpressure, storage, logs) and
failed on the code as the finding describes it. The transport findings need a real
`manage.py serve` (daphne with project/server.py); the rest run through the ASGI application.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from channels.db import database_sync_to_async
from websockets.exceptions import ConnectionClosed

from assistant.delivery import hub
from assistant.groups import session_group
from assistant.models import ChatEvent, ChatSession
from assistant.ratelimit import connections
from tests.support.chat import ChatClient, open_client
from tests.support.live import daphne

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drain_replies")]

SURROGATE_KEY = '{"type":"ping","x\\ud800":1}'  # JSON text: the escape spells a lone surrogate
SURROGATE_TEXT = '{"type":"message","text":"hi \\udc00","client_id":"c-1"}'
STRICT = {
    "LOCAL_TOKEN_DELAY_MS": "0",
    "MAX_CONNECTIONS_PER_IP": "3",
    "HTTP_HEADER_TIMEOUT_S": "1",
    "CHAT_IP_RATE_LIMIT_PER_MINUTE": "100000",
}


@pytest.fixture(scope="module")
def strict_server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One real server with 3 connections per IP and a 1 s request-head deadline; yields (ws URL, log)."""
    log = tmp_path_factory.mktemp("strict") / "server.log"
    with daphne(dict(STRICT, LOG_LEVEL="info"), log=log) as base:
        yield base, log


async def recv(ws: Any, frame_type: str, timeout: float = 5) -> dict[str, Any]:
    """Read frames until one of `frame_type`."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame["type"] == frame_type:
            return frame


async def close_code(ws: Any, timeout: float = 5) -> int | None:
    """Read until the server closes; the close code it sent."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


async def all_slots_free(base: str, slots: int = 3, within: float = 5) -> bool:
    """True when `slots` connections from this IP are all accepted and answer `ping` (no 4429)."""
    deadline = time.monotonic() + within
    while True:
        sockets = []
        try:
            for _ in range(slots):
                ws = await websockets.connect(f"{base}/ws/chat/")
                sockets.append(ws)
                await ws.send('{"type":"ping"}')
                await recv(ws, "pong", timeout=2)
            return True
        except ConnectionClosed:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.3)
        finally:
            for ws in sockets:
                await ws.close()


def server_log(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


# --- 1. connection slots ------------------------------------------------------------------------
@pytest.mark.live
async def test_slots_lone_surrogate_frames_keep_the_connection_and_release_the_slot(strict_server) -> None:
    base, log = strict_server
    for _ in range(5):
        async with websockets.connect(f"{base}/ws/chat/") as ws:
            await ws.send(SURROGATE_KEY)
            error = await recv(ws, "error")
            assert error["code"] == "invalid_field" and error["field"] == "x\\ud800"
            await ws.send('{"type":"hello"}')
            await recv(ws, "welcome")
            await ws.send(SURROGATE_TEXT)
            error = await recv(ws, "error")
            assert (error["code"], error["field"]) == ("invalid_field", "text")
            await ws.send('{"type":"ping"}')
            await recv(ws, "pong")  # the connection was kept
    assert await all_slots_free(base)
    assert "internal_error" not in server_log(log) and "Traceback" not in server_log(log)


@pytest.mark.live
async def test_slots_a_frame_over_64_kib_after_hello_releases_the_slot(strict_server) -> None:
    base, _ = strict_server
    for _ in range(4):
        ws = await websockets.connect(f"{base}/ws/chat/", max_size=None)
        await ws.send('{"type":"hello"}')
        await recv(ws, "welcome")
        await ws.send(json.dumps({"type": "message", "text": "x" * 70_000, "client_id": "big"}))
        assert await close_code(ws) == 1009
    assert await all_slots_free(base)


@pytest.mark.live
async def test_slots_a_client_hanging_up_during_hello_releases_the_slot(strict_server) -> None:
    base, _ = strict_server
    async with websockets.connect(f"{base}/ws/chat/") as ws:
        await ws.send('{"type":"hello"}')
        welcome = await recv(ws, "welcome")
    resume = json.dumps({"type": "hello", "session_id": welcome["session_id"], "token": welcome["token"]})
    for _ in range(6):  # twice the 3 slots: each must come back
        await hang_up_during_hello(base, resume)
    assert await all_slots_free(base)


async def hang_up_during_hello(base: str, hello: str, within: float = 5) -> None:
    """Send `hello`, then vanish without a close handshake, before the welcome.

    A connection made while the slots of the previous hang-ups are still being given back (the
    server learns of each only after its `hello` is handled) is refused with 4429: wait and try
    again, as a widget would; `all_slots_free` then checks that every slot came back.
    """
    deadline = time.monotonic() + within
    while True:
        ws = await websockets.connect(f"{base}/ws/chat/")
        try:
            await ws.send(hello)
        except ConnectionClosed:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
            continue
        ws.transport.abort()  # gone before the welcome, without a close handshake
        return


async def test_slots_a_consumer_cancelled_by_the_server_releases_slot_and_hub() -> None:
    """daphne cancels consumers that outlive a disconnect or a shutdown; they must not keep anything."""
    client, ok, _ = await open_client(ip="203.0.113.9")
    assert ok
    welcome = await client.hello()
    assert connections.total() == 1
    group_members = hub.count(session_group(welcome["session_id"]))
    client.communicator.future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await client.communicator.future
    assert connections.total() == 0
    assert group_members == 1 and hub.count(session_group(welcome["session_id"])) == 0


async def test_slots_frames_sent_to_a_refused_connection_are_ignored(settings, caplog) -> None:
    """Found by bench/abuse.py: a connection refused with 4429 (or 4403) still had its frames
    dispatched, and each one raised in the consumer (an ERROR traceback and `internal_error`)."""
    caplog.set_level(logging.WARNING)
    settings.MAX_CONNECTIONS_PER_IP = 1
    first, ok, _ = await open_client(ip="203.0.113.30")
    assert ok
    second, ok, code = await open_client(ip="203.0.113.30")
    assert (ok, code) == (False, 4429)
    for _ in range(5):
        await second.communicator.send_input({"type": "websocket.receive", "text": '{"type":"ping"}'})
    assert await second.nothing_more()
    await second.close()
    await first.close()
    assert not [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert connections.total() == 0


# --- 2. backpressure ----------------------------------------------------------------------------
@pytest.mark.live
async def test_backpressure_a_frame_flood_is_closed_with_1008_instead_of_queued(strict_server) -> None:
    base, log = strict_server
    async with websockets.connect(f"{base}/ws/chat/") as ws:
        for _ in range(300):
            await ws.send('{"type":"ping"}')
        assert await close_code(ws) == 1008
    assert "faster than 600 a minute" in server_log(log)
    async with websockets.connect(f"{base}/ws/chat/") as ws:  # the server serves the next visitor
        await ws.send('{"type":"hello"}')
        await recv(ws, "welcome")


@pytest.mark.live
async def test_backpressure_half_open_handshakes_time_out(strict_server) -> None:
    base, _ = strict_server
    host, port = base.removeprefix("ws://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /ws/chat/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")  # never finished
        try:
            data = sock.recv(100)
        except ConnectionResetError:
            data = b""
    assert data == b"" and time.monotonic() - started < 4  # closed at the 1 s deadline, not after 60 s


def _masked_text_frame(payload: bytes) -> bytes:
    """One client→server websocket text frame (clients must mask)."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked


@pytest.mark.live
def test_backpressure_a_client_that_does_not_read_is_dropped(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    unlimited = {"CHAT_FRAME_RATE_LIMIT_PER_MINUTE": "10000000", "CHAT_FRAME_BURST": "1000000"}
    with daphne(dict(unlimited, CHAT_SEND_BUFFER_MAX_BYTES="65536", LOG_LEVEL="info"), log=log) as base:
        host, port = base.removeprefix("ws://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that never reads
        sock.settimeout(10)
        sock.connect((host, int(port)))
        sock.sendall(
            b"GET /ws/chat/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:  # the 101 response: frames must follow the handshake
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        # Each frame of an unknown type earns a 170-byte error frame: 40,000 of them are 6.8 MB,
        # past what the kernel buffers on loopback (up to 4 MB) plus the 64 KiB bound.
        unknown = _masked_text_frame(b'{"type":"' + b"A" * 40 + b'"}')
        dropped = False
        try:
            for _ in range(40):
                sock.sendall(unknown * 1000)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not dropped:
                # The TCP state, without reading (reading would drain the server's buffer):
                # ESTABLISHED is 1; a reset or a close by the server moves it on.
                dropped = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != 1
                time.sleep(0.2)
        except (ConnectionResetError, BrokenPipeError):
            dropped = True
        finally:
            sock.close()
        assert dropped
    assert "bytes unread (limit 65536): dropped" in log.read_text()


# --- 4. storage -----------------------------------------------------------------------------------
@pytest.mark.backends
async def test_storage_a_hello_flood_writes_no_session_rows() -> None:
    for _ in range(30):
        client, ok, _ = await open_client(ip="198.51.100.4")
        assert ok
        await client.hello(page={"url": "https://shop.example/"})
        await client.close()
    assert await database_sync_to_async(ChatSession.objects.count)() == 0


@pytest.mark.backends
async def test_storage_new_sessions_per_ip_are_limited(settings) -> None:
    settings.CHAT_SESSIONS_PER_IP_PER_HOUR = 3
    for number in range(3):
        client, _, _ = await open_client(ip="198.51.100.5")
        await client.hello()
        await client.say("Hello", f"c-{number}")
        await client.close()
    client, _, _ = await open_client(ip="198.51.100.5")
    await client.hello()
    await client.send({"type": "message", "text": "Hello", "client_id": "c-4"})
    error = await client.recv_type("error")
    assert (error["code"], error["client_id"]) == ("rate_limited", "c-4") and 0 < error["retry_after"] <= 3600
    await client.close()
    other, _, _ = await open_client(ip="198.51.100.6")  # another address is not affected
    await other.hello()
    await other.say("Hello", "c-1")
    await other.close()
    assert await database_sync_to_async(ChatSession.objects.count)() == 4


@pytest.mark.backends
async def test_storage_events_per_session_are_capped_in_count_and_rate(settings) -> None:
    settings.CHAT_EVENTS_PER_SESSION = 4
    settings.CHAT_EVENT_RATE_LIMIT_PER_MINUTE = 600
    client, _, _ = await open_client()
    await client.hello()
    for _ in range(4):
        await client.send({"type": "event", "name": "link_click", "data": {"x": "y" * 3000}})
    await client.send({"type": "event", "name": "link_click"})
    assert (await client.recv_type("error"))["code"] == "limit_reached"
    assert await database_sync_to_async(ChatEvent.objects.count)() == 4
    await client.close()

    settings.CHAT_EVENTS_PER_SESSION = 1000
    settings.CHAT_EVENT_RATE_LIMIT_PER_MINUTE = 6  # a burst of 2
    client, _, _ = await open_client()
    await client.hello()
    for _ in range(3):
        await client.send({"type": "event", "name": "widget_open"})
    error = await client.recv_type("error")
    assert error["code"] == "rate_limited" and error["retry_after"] > 0
    await client.close()


@pytest.mark.backends
async def test_storage_a_tab_that_resumed_a_pending_session_reaches_the_row_another_tab_wrote(settings) -> None:
    """Both tabs said `hello` before the first message: the second tab's stop, feedback and end
    must reach the conversation the first one wrote (they were ignored as "pending")."""
    settings.LOCAL_TOKEN_DELAY_MS = 20
    first, _, _ = await open_client()
    welcome = await first.hello()
    second, _, _ = await open_client()
    await second.hello(session_id=welcome["session_id"], token=welcome["token"])
    await first.say("How do I embed the widget?", "c-1")
    _, end = await second.read_reply()
    await second.send({"type": "feedback", "message_id": end["message_id"], "rating": "up"})
    assert (await second.recv_type("feedback.ack"))["rating"] == "up"
    await first.send({"type": "message", "text": "And how do I style it?", "client_id": "c-2"})
    await second.recv_type("reply.delta")
    await second.send({"type": "stop"})
    _, stopped = await first.read_reply()
    assert stopped["status"] == "stopped"
    await second.send({"type": "end"})
    await first.recv_type("ended")
    session = await database_sync_to_async(ChatSession.objects.get)(public_id=welcome["session_id"])
    assert session.status == "closed"
    await first.close()
    await second.close()


# --- 11. logs -------------------------------------------------------------------------------------
async def test_logs_bad_frames_are_one_warning_line_per_connection_never_a_traceback(caplog) -> None:
    caplog.set_level(logging.INFO)
    client, _, _ = await open_client(ip="192.0.2.77")
    bad = [SURROGATE_KEY, "{nope", '{"type":"message"}', '{"type":"zap"}', '"x"', '{"type":"ping","a":1}'] * 5
    for frame in bad:
        await client.send(frame)
        assert (await client.recv())["type"] == "error"
    await client.close()
    records = [record for record in caplog.records if record.name.startswith(("assistant", "project", "channels"))]
    assert [record.levelname for record in records if record.levelno >= logging.WARNING] == ["WARNING"]
    assert "192.0.2.77" in records[-1].getMessage() and records[-1].exc_info is None


async def test_logs_a_frame_flood_closes_with_1008_under_any_asgi_server(settings) -> None:
    """The consumer's own backstop (other ASGI servers queue frames before the consumer sees them)."""
    settings.CHAT_FRAME_RATE_LIMIT_PER_MINUTE = 60
    settings.CHAT_FRAME_BURST = 5
    client: ChatClient
    client, _, _ = await open_client()
    for _ in range(20):
        await client.send({"type": "ping"})
    frames = []
    with contextlib.suppress(ConnectionError):
        for _ in range(20):
            frames.append(await client.recv())
    assert client.close_code == 1008 and len(frames) == 10  # the burst of 5 twice over, then closed


# --- found by the fuzzer (bench/fuzz.py) ---------------------------------------------------------
@pytest.mark.backends
async def test_fuzz_a_stop_while_the_reply_is_being_stored_still_ends_it(caplog) -> None:
    """A `stop` that reached a reply while its outcome was being stored cancelled the announcing:
    no `reply.end` for any tab, and the reply's pending delta task was destroyed (an asyncio ERROR)."""
    caplog.set_level(logging.WARNING)
    client, _, _ = await open_client()
    await client.hello()
    for turn in range(40):
        await client.send({"type": "message", "text": "Hi", "client_id": f"c-{turn}"})
        await client.recv_type("ack")
        await client.recv_type("reply.start")
        await client.send({"type": "stop"})  # races the end of a reply that takes a few milliseconds
        _, end = await client.read_reply(timeout=5)
        assert end["status"] in {"complete", "stopped"}
    await client.close()
    assert not [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
