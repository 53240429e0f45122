"""`/ws/analytics/`: staff only, live events from chat turns, watching one session's transcript."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from analytics import live
from project.asgi import application
from tests.support.chat import open_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends, pytest.mark.usefixtures("drain_replies")]


#: What a browser on the dashboard page sends besides the cookie (staff sockets check the Origin).
SAME_ORIGIN = [(b"host", b"localhost:8000"), (b"origin", b"http://localhost:8000")]


@database_sync_to_async
def cookie_of(*, staff: bool | None) -> list[tuple[bytes, bytes]]:
    """Headers of a browser on the dashboard's origin signed in as a staff user, a non-staff user,
    or nobody (None)."""
    if staff is None:
        return SAME_ORIGIN
    user = get_user_model().objects.create_user(f"user-{staff}", password="pw", is_staff=staff)
    client = Client()
    client.force_login(user)
    return [*SAME_ORIGIN, (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


async def dashboard(staff: bool | None = True) -> tuple[WebsocketCommunicator, Any]:
    communicator = WebsocketCommunicator(application, "/ws/analytics/", headers=await cookie_of(staff=staff))
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator, connected


async def next_of(communicator: WebsocketCommunicator, kind: str, timeout: float = 5) -> dict[str, Any]:
    while True:
        frame = await communicator.receive_json_from(timeout)
        if frame["type"] == kind:
            return frame


@pytest.mark.parametrize(("staff", "code"), [(None, 4401), (False, 4403)])
async def test_anonymous_and_non_staff_are_closed_with_a_reason(staff: bool | None, code: int) -> None:
    communicator = WebsocketCommunicator(application, "/ws/analytics/", headers=await cookie_of(staff=staff))
    await communicator.connect(timeout=5)
    closed = await communicator.receive_output(5)
    assert closed == {"type": "websocket.close", "code": code}
    await communicator.disconnect()  # ends the consumer's receive loop (a Redis layer read otherwise lingers)


async def test_a_chat_turn_reaches_the_dashboard_with_the_live_session_count() -> None:
    communicator, _ = await dashboard()
    chat, _, _ = await open_client()
    welcome = await chat.hello()
    _, _, end = await chat.say("How do I embed the widget?", "m1")
    await chat.send({"type": "feedback", "message_id": end["message_id"], "rating": "up"})
    await chat.recv_type("feedback.ack")
    seen: list[dict[str, Any]] = []
    while not any(event["type"] == "feedback" for event in seen):
        frame = await next_of(communicator, "events")
        seen += frame["events"]
        assert frame["active_sessions"] == 1
    kinds = [(event["type"], event.get("role")) for event in seen]
    assert kinds == [("message", "user"), ("message", "assistant"), ("feedback", None)]
    assert all(event["session_id"] == welcome["session_id"] for event in seen)
    assert seen[0]["first"] is True and seen[1]["status"] == "complete" and seen[1]["provider"] == "local"
    await chat.close()
    await communicator.disconnect()
    await live.drain()


async def test_watching_a_session_streams_its_next_reply() -> None:
    chat, _, _ = await open_client()
    welcome = await chat.hello()
    communicator, _ = await dashboard()
    await communicator.send_json_to({"type": "watch", "session_id": welcome["session_id"]})
    assert await next_of(communicator, "watching") == {"type": "watching", "session_id": welcome["session_id"]}
    _, text, _ = await chat.say("How do I embed the widget?", "m1")
    frames = []
    while not frames or frames[-1]["type"] != "reply.end":
        frames.append((await next_of(communicator, "chat"))["frame"])
    kinds = [frame["type"] for frame in frames]
    assert kinds[0] == "message" and kinds[1] == "reply.start" and "reply.delta" in kinds
    streamed = "".join(frame["text"] for frame in frames if frame["type"] == "reply.delta")
    assert streamed == text and not any(key.startswith("_") for frame in frames for key in frame)
    await chat.close()
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("sent", "words"),
    [
        ("not json", "Expecting value"),
        ('["watch"]', "JSON object"),
        ('{"type": "watch", "session_id": "nope"}', "badly formed"),
        ('{"type": "shout"}', "one of watch, unwatch, ping"),
        ('{"type": "ping", "extra": 1}', "Unknown field(s): extra"),
    ],
)
async def test_bad_frames_get_a_precise_error_and_the_socket_stays_open(sent: str, words: str) -> None:
    communicator, _ = await dashboard()
    await communicator.send_to(text_data=sent)
    error = await next_of(communicator, "error")
    assert error["code"] == "invalid_frame" and words in error["detail"]
    await communicator.send_json_to({"type": "ping"})
    assert await next_of(communicator, "pong") == {"type": "pong"}
    await communicator.disconnect()
