"""`/ws/desk/`: agents only and own-origin only; claims, messages, notes, and the visitor's
conversation live on the desk, with the visitor's widget protocol on the other side."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from assistant.models import ChatMessage, InternalNote
from project.asgi import application
from tests.assistant.handoff.conftest import support_agents
from tests.assistant.test_consumers import connected

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends, pytest.mark.usefixtures("drain_replies")]

SAME_ORIGIN = [(b"host", b"localhost:8000"), (b"origin", b"http://localhost:8000")]


@database_sync_to_async
def person(username: str, *, agent: bool = True, staff: bool = False, first_name: str = "") -> Any:
    user = get_user_model().objects.create_user(username, password="pw", is_staff=staff, first_name=first_name)
    if agent:
        user.groups.add(support_agents())
    return user


@database_sync_to_async
def cookie(user: Any) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


class Desk:
    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator

    async def send(self, frame: dict[str, Any]) -> None:
        await self.communicator.send_json_to(frame)

    async def next(self, kind: str, timeout: float = 5) -> dict[str, Any]:
        while True:
            frame = await self.communicator.receive_json_from(timeout)
            if frame["type"] == kind:
                return frame

    async def close(self) -> None:
        await self.communicator.disconnect()


async def open_desk(user: Any, *, origin: bytes | None = b"http://localhost:8000") -> Desk:
    headers = [(b"host", b"localhost:8000"), await cookie(user)]
    if origin is not None:
        headers.append((b"origin", origin))
    communicator = WebsocketCommunicator(application, "/ws/desk/", headers=headers)
    accepted, _ = await communicator.connect(timeout=5)
    assert accepted
    return Desk(communicator)


async def agent_desk(username: str = "ada", first_name: str = "Ada") -> tuple[Any, Desk]:
    user = await person(username, first_name=first_name)
    desk = await open_desk(user)
    await desk.send({"type": "availability", "available": True})
    assert (await desk.next("availability"))["available"] is True
    await desk.send({"type": "hello"})
    await desk.next("welcome")
    return user, desk


# --- who may connect ------------------------------------------------------------------------------
async def test_anonymous_staff_without_use_desk_and_foreign_origins_are_closed() -> None:
    anonymous = WebsocketCommunicator(application, "/ws/desk/", headers=SAME_ORIGIN)
    await anonymous.connect(timeout=5)
    assert await anonymous.receive_output(5) == {"type": "websocket.close", "code": 4401}
    await anonymous.disconnect()
    staff = await open_desk(await person("staff", agent=False, staff=True))
    assert await staff.communicator.receive_output(5) == {"type": "websocket.close", "code": 4403}
    await staff.close()
    for origin in (b"https://evil.example", b"null", None):
        foreign = await open_desk(await person(f"ada-{origin!r}"), origin=origin)
        assert await foreign.communicator.receive_output(5) == {"type": "websocket.close", "code": 4403}
        await foreign.close()


# --- the handoff, end to end ----------------------------------------------------------------------
async def test_a_visitor_asks_an_agent_claims_answers_and_hands_back() -> None:
    _, desk = await agent_desk()
    visitor = await connected()
    welcome = await visitor.hello()
    sid = welcome["session_id"]
    await visitor.say("My order never arrived", "m1")
    await visitor.send({"type": "handoff", "reason": "order missing"})
    assert (await visitor.recv_type("handoff.status"))["state"] == "waiting"
    queued = await desk.next("queue.updated")
    assert [item["session_id"] for item in queued["queue"]] == [sid] and queued["queue"][0]["wait_s"] >= 0

    await desk.send({"type": "claim", "session_id": sid})
    assert await desk.next("claim.ack") == {"type": "claim.ack", "session_id": sid}
    conversation = await desk.next("conversation")
    assert [m["role"] for m in conversation["messages"]] == ["user", "assistant"]
    assert conversation["state"] == "assigned" and conversation["agent"]["name"] == "Ada"
    assert (await visitor.recv_type("handoff.status"))["agent"] == {"name": "Ada"}

    await visitor.send({"type": "typing", "state": "start"})
    assert await desk.next("typing") == {"type": "typing", "session_id": sid, "role": "user", "state": "start"}
    await visitor.send({"type": "message", "text": "Hello?", "client_id": "m2"})
    await visitor.recv_type("ack")
    live = await desk.next("message")
    assert (live["session_id"], live["role"], live["text"]) == (sid, "user", "Hello?")

    await desk.send({"type": "typing", "session_id": sid, "state": "start"})
    assert (await visitor.recv_type("typing"))["name"] == "Ada"
    await desk.send({"type": "message", "session_id": sid, "text": "Let me check.", "client_id": "d1"})
    ack = await desk.next("ack")
    assert (ack["session_id"], ack["client_id"], ack["seq"]) == (sid, "d1", 4)
    shown = await visitor.recv_type("message")
    assert (shown["role"], shown["text"], shown["author"]) == ("agent", "Let me check.", {"name": "Ada"})
    await desk.send({"type": "message", "session_id": sid, "text": "Let me check.", "client_id": "d1"})
    assert (await desk.next("ack"))["seq"] == 4  # the resend is the same message
    assert await visitor.nothing_more(0.2)

    await desk.send({"type": "handback", "session_id": sid})
    await desk.next("handback.ack")
    assert (await visitor.recv_type("handoff.status"))["state"] == "ended"
    _, text, end = await visitor.say("Thanks! And shipping times?", "m3")
    assert end["status"] == "complete" and text
    streamed = await desk.next("reply.end")  # the desk follows the AI's answer too
    assert streamed["session_id"] == sid and streamed["text"] == text
    roles = await database_sync_to_async(
        lambda: list(ChatMessage.objects.filter(session__public_id=sid).values_list("role", flat=True).order_by("seq"))
    )()
    assert roles == ["user", "assistant", "user", "agent", "user", "assistant"]
    await visitor.close()
    await desk.close()


async def test_two_agents_claiming_at_once_get_one_claim_ack_and_one_already_claimed() -> None:
    _, ada = await agent_desk("ada")
    _, bob = await agent_desk("bob", "Bob")
    visitor = await connected()
    welcome = await visitor.hello()
    await visitor.say("Hi", "m1")
    sid = welcome["session_id"]
    await asyncio.gather(ada.send({"type": "claim", "session_id": sid}), bob.send({"type": "claim", "session_id": sid}))

    async def outcome(desk: Desk) -> str:
        while True:
            frame = await desk.communicator.receive_json_from(5)
            if frame["type"] == "claim.ack":
                return "claimed"
            if frame["type"] == "error":
                return frame["code"]

    assert sorted(await asyncio.gather(outcome(ada), outcome(bob))) == ["already_claimed", "claimed"]
    await visitor.close()
    await ada.close()
    await bob.close()


async def test_a_desk_sending_too_fast_is_told_to_slow_down(settings) -> None:
    settings.DESK_FRAME_RATE_LIMIT_PER_MINUTE = 60  # a burst of 60, then one a second
    _, ada = await agent_desk("ada")
    for _ in range(70):
        await ada.send({"type": "ping"})
    codes = Counter()
    for _ in range(70):
        frame = await ada.communicator.receive_json_from(5)
        codes[frame.get("code", frame["type"])] += 1
    assert codes["rate_limited"] >= 8 and codes["pong"] <= 62
    await ada.close()


async def test_notes_reach_the_other_desks_and_never_the_visitor() -> None:
    _, ada = await agent_desk("ada")
    _, bob = await agent_desk("bob", "Bob")
    visitor = await connected()
    welcome = await visitor.hello()
    await visitor.say("Hi", "m1")
    sid = welcome["session_id"]
    await bob.send({"type": "open", "session_id": sid})
    await bob.next("conversation")
    await ada.send({"type": "note", "session_id": sid, "text": "VIP customer"})
    for desk in (ada, bob):
        note = await desk.next("note")
        assert (note["session_id"], note["text"], note["author"]) == (sid, "VIP customer", {"name": "Ada"})
    assert await visitor.nothing_more(0.3)
    assert await database_sync_to_async(lambda: InternalNote.objects.get().text)() == "VIP customer"
    await visitor.close()
    await ada.close()
    await bob.close()


async def test_bad_frames_get_an_error_naming_the_field_and_wrong_scope_is_forbidden() -> None:
    _, ada = await agent_desk("ada")
    _, bob = await agent_desk("bob", "Bob")
    visitor = await connected()
    welcome = await visitor.hello()
    await visitor.say("Hi", "m1")
    sid = welcome["session_id"]
    await ada.send({"type": "claim", "session_id": "not-a-uuid"})
    error = await ada.next("error")
    assert (error["code"], error["field"]) == ("invalid_field", "session_id")
    await ada.send({"type": "message", "session_id": sid, "text": "x", "client_id": "c", "extra": 1})
    assert (await ada.next("error"))["field"] == "extra"
    await ada.send({"type": "claim", "session_id": "5f0c2f53-0000-4000-8000-000000000000"})
    assert (await ada.next("error"))["code"] == "not_found"
    await ada.send({"type": "claim", "session_id": sid})
    await ada.next("claim.ack")
    for frame in (
        {"type": "message", "session_id": sid, "text": "hi", "client_id": "b1"},
        {"type": "resolve", "session_id": sid},
        {"type": "typing", "session_id": sid, "state": "start"},
    ):
        await bob.send(frame)
        assert (await bob.next("error"))["code"] == "forbidden"
    await bob.send({"type": "subscribe"})
    assert (await bob.next("error"))["code"] == "unknown_type"
    await bob.communicator.send_to(text_data='{"type": "ping", "pad": "' + "x" * 70_000 + '"}')
    assert (await bob.next("error"))["code"] == "invalid_frame"  # over 64 KiB: refused unread
    await bob.communicator.send_to(text_data="[1, 2")
    assert (await bob.next("error"))["code"] == "invalid_json"
    await visitor.close()
    await ada.close()
    await bob.close()
