"""`/ws/desk/`: agents only and own-origin only; claims, messages, notes, and the visitor's
conversation live on the desk, with the visitor's widget protocol on the other side."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from assistant.models import ChatMessage, ChatSession, InternalNote
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


# --- the desk's lists -----------------------------------------------------------------------------
async def test_welcome_lists_every_open_conversation_and_the_agents_to_transfer_to() -> None:
    ada, ada_desk = await agent_desk()
    bob = await person("bob", first_name="Bob")  # an agent with no desk open: listed, not available
    await person("carol", agent=False, staff=True)  # analytics staff, not an agent: never listed
    visitor = await connected()
    sid = (await visitor.hello())["session_id"]
    await visitor.say("Where is my parcel?", "m1")
    await visitor.send({"type": "handoff"})
    await visitor.recv_type("handoff.status")
    await ada_desk.send({"type": "claim", "session_id": sid})
    await ada_desk.next("claim.ack")

    _, grace_desk = await agent_desk("grace", "Grace")
    await grace_desk.send({"type": "hello"})
    welcome = await grace_desk.next("welcome")
    assert welcome["queue"] == [] and welcome["mine"] == []
    assert [(item["session_id"], item["agent"]) for item in welcome["open"]] == [(sid, {"id": ada.pk, "name": "Ada"})]
    assert welcome["agents"] == [
        {"id": ada.pk, "name": "Ada", "available": True},
        {"id": bob.pk, "name": "Bob", "available": False},
        {"id": welcome["agent"]["id"], "name": "Grace", "available": True},
    ]
    for desk in (ada_desk, grace_desk):
        await desk.close()
    await visitor.close()


async def test_a_burst_of_queue_changes_is_read_once_or_twice_for_all_the_desks(monkeypatch) -> None:
    """200 changes in a row used to cost every desk 200 reads of the queue (bench/desk.py)."""
    from desk import consumers, lists, selectors

    reads = Counter()

    def counted_shared() -> dict[str, Any]:
        reads["shared"] += 1
        return selectors.shared_lists()

    def counted_mine(*, agent: Any) -> dict[str, Any]:
        reads[agent.pk] += 1
        return selectors.mine(agent=agent)

    monkeypatch.setattr(lists, "_shared_lists", database_sync_to_async(counted_shared))
    monkeypatch.setattr(consumers, "_mine", database_sync_to_async(counted_mine))
    ada, ada_desk = await agent_desk()
    bob, bob_desk = await agent_desk("bob", "Bob")
    reads.clear()
    visitors = []
    for index in range(5):
        visitor = await connected()
        await visitor.hello()
        await visitor.say(f"Question {index}", f"m{index}")
        visitors.append(visitor)
    for visitor in visitors:
        await visitor.send({"type": "handoff"})
    for visitor in visitors:
        await visitor.recv_type("handoff.status")
    for desk in (ada_desk, bob_desk):
        seen: list[int] = []
        while not seen or seen[-1] < 5:  # the last read shows all five, on both desks
            seen.append(len((await desk.next("queue.updated"))["queue"]))
    await asyncio.sleep(consumers.QUEUE_REFRESH_S * 2)
    assert 1 <= reads["shared"] <= 3 and reads[ada.pk] <= 3 and reads[bob.pk] <= 3, reads
    for visitor in visitors:
        await visitor.close()
    for desk in (ada_desk, bob_desk):
        await desk.close()


async def test_a_visitor_who_ends_while_waiting_leaves_the_queue_of_every_desk() -> None:
    _, desk = await agent_desk()
    visitor = await connected()
    sid = (await visitor.hello())["session_id"]
    await visitor.say("Hello", "m1")
    await visitor.send({"type": "handoff"})
    await visitor.recv_type("handoff.status")
    assert [item["session_id"] for item in (await desk.next("queue.updated"))["queue"]] == [sid]
    await visitor.send({"type": "end"})
    assert (await visitor.recv_type("handoff.status"))["state"] == "ended"
    assert (await desk.next("queue.updated"))["queue"] == []
    await visitor.close()
    await desk.close()


async def test_the_conversation_carries_what_analytics_knows_of_it(settings) -> None:
    from analytics.models import ChatAnalytics
    from analytics.services import session_analytics_rebuild

    settings.ANALYTICS_TRACKER = False  # the row is written here, once, not by a tracker racing the test
    _, desk = await agent_desk()
    visitor = await connected()
    sid = (await visitor.hello())["session_id"]
    await visitor.say("My refund is late", "m1")
    await desk.send({"type": "open", "session_id": sid})
    assert (await desk.next("conversation"))["analytics"] is None  # not analysed yet

    rows = ChatAnalytics.objects.filter(session__public_id=sid)

    def analyse() -> None:
        assert session_analytics_rebuild(session_pk=ChatSession.objects.get(public_id=sid).pk)
        rows.update(topics_discussed=["refunds"], avg_sentiment=-0.25)

    await database_sync_to_async(analyse)()
    await desk.send({"type": "open", "session_id": sid})
    analysed = (await desk.next("conversation"))["analytics"]
    assert (analysed["topics"], analysed["sentiment"], analysed["messages"]) == (["refunds"], -0.25, 2)
    await visitor.close()
    await desk.close()


async def test_a_refused_desk_message_names_its_client_id() -> None:
    _, desk = await agent_desk()
    visitor = await connected()
    sid = (await visitor.hello())["session_id"]
    await visitor.say("Hi", "m1")
    await desk.send({"type": "message", "session_id": sid, "text": "Not mine yet", "client_id": "d-1"})
    error = await desk.next("error")
    assert (error["code"], error["client_id"]) == ("forbidden", "d-1")
    await visitor.close()
    await desk.close()


# --- frames within the server's frame limit -------------------------------------------------------
async def test_a_long_conversation_fits_one_frame_and_pages_back_with_history(settings) -> None:
    """daphne refuses to send a frame over CHAT_MAX_FRAME_BYTES: the transcript keeps its newest part."""
    from desk import protocol as desk_protocol

    settings.CHAT_MAX_FRAME_BYTES = 24 * 1024  # the budget is this minus 8 KiB of headroom
    _, desk = await agent_desk()
    visitor = await connected()
    sid = (await visitor.hello())["session_id"]
    await visitor.say("First question", "m1")

    @database_sync_to_async
    def grow() -> None:
        session = ChatSession.objects.get(public_id=sid)
        base = session.last_seq
        ChatMessage.objects.bulk_create(
            ChatMessage(session=session, seq=base + i, role="user", text=f"{i:03d} " + "x" * 500) for i in range(1, 101)
        )
        for i in range(1, 4):
            InternalNote.objects.create(session=session, author_name="Ada", text=f"note {i} " + "n" * 300)
        ChatSession.objects.filter(pk=session.pk).update(last_seq=base + 100)

    await grow()
    await desk.send({"type": "open", "session_id": sid})
    frame = await desk.communicator.receive_from(5)
    conversation = json.loads(frame)
    assert conversation["type"] == "conversation" and len(frame.encode()) <= settings.CHAT_MAX_FRAME_BYTES
    seqs = [m["seq"] for m in conversation["messages"]]
    assert conversation["truncated"] is True and 10 < len(seqs) < 100 and seqs == list(range(seqs[0], seqs[-1] + 1))
    assert seqs[-1] == 102 and [n["text"][:6] for n in conversation["notes"]][-1] == "note 3"

    collected = seqs
    while True:
        await desk.send({"type": "history", "session_id": sid, "before_seq": collected[0]})
        page = await desk.next("history")
        assert page["session_id"] == sid and desk_protocol.size(page) <= desk_protocol.frame_budget()
        collected = [m["seq"] for m in page["messages"]] + collected
        if not page["truncated"]:
            break
    assert collected == list(range(1, 103))  # every message once, in order
    await visitor.close()
    await desk.close()


def test_the_desk_lists_are_cut_to_fit_in_priority_order(settings) -> None:
    from desk import protocol as desk_protocol

    settings.CHAT_MAX_FRAME_BYTES = 16 * 1024
    item = {"session_id": "s", "title": "t" * 400}
    lists = {
        "totals": {"queue": 30, "mine": 2, "open": 30},
        "mine": [item] * 2,
        "queue": [item] * 30,
        "agents": [{"id": 1, "name": "Ada", "available": True}],
        "open": [item] * 30,
    }
    frame = desk_protocol.queue_updated(lists=lists)
    assert desk_protocol.size(frame) <= settings.CHAT_MAX_FRAME_BYTES
    assert len(frame["mine"]) == 2 and 10 < len(frame["queue"]) < 30 and frame["agents"] == lists["agents"]
    assert frame["open"] == [] and frame["totals"] == lists["totals"]


# --- one lane per conversation --------------------------------------------------------------------
async def test_a_slow_conversation_does_not_hold_up_the_others_and_each_keeps_its_order(monkeypatch) -> None:
    from assistant.handoff import actions

    _, desk = await agent_desk()
    sids = []
    for index in range(2):
        visitor = await connected()
        sid = (await visitor.hello())["session_id"]
        await visitor.say(f"Question {index}", f"m{index}")
        await visitor.send({"type": "handoff"})
        await visitor.recv_type("handoff.status")
        await desk.send({"type": "claim", "session_id": sid})
        await desk.next("claim.ack")
        sids.append(sid)
    slow, fast = sids
    real = actions.send_message

    async def send_message(*, session_id: str, **kwargs: Any) -> Any:
        if session_id == slow:
            await asyncio.sleep(0.5)  # a database write queued behind others
        return await real(session_id=session_id, **kwargs)

    monkeypatch.setattr(actions, "send_message", send_message)
    for client_id, sid in (("s-1", slow), ("s-2", slow), ("f-1", fast)):
        await desk.send({"type": "message", "session_id": sid, "text": client_id, "client_id": client_id})
    acks = [await desk.next("ack") for _ in range(3)]
    assert [ack["client_id"] for ack in acks] == ["f-1", "s-1", "s-2"]
    assert acks[1]["seq"] < acks[2]["seq"]  # in the order sent, within one conversation
    await desk.close()


async def test_a_rate_limited_message_is_named_by_its_client_id_and_conversation(settings) -> None:
    settings.DESK_FRAME_RATE_LIMIT_PER_MINUTE = 60  # a burst of 60, then one a second
    _, desk = await agent_desk()  # two frames of the burst spent
    sid = "00000000-0000-4000-8000-000000000001"
    for _ in range(58):
        await desk.send({"type": "ping"})
    for index in range(3):  # past the burst: refused, each named
        await desk.send({"type": "message", "session_id": sid, "text": "x", "client_id": f"d-{index}"})
    answers = {}
    while len(answers) < 3:  # each message's answer, refused or not, names it
        frame = await desk.communicator.receive_json_from(5)
        if frame["type"] == "error" and "client_id" in frame:
            answers[frame["client_id"]] = (frame["code"], frame["session_id"])
    assert answers["d-2"] == ("rate_limited", sid)
    assert {code for code, _ in answers.values()} <= {"rate_limited", "not_found"}
    assert {session for _, session in answers.values()} == {sid}
    await desk.close()
