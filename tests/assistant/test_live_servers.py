"""Real daphne processes: transport limits, durability under concurrency, and scale-out."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import websockets
from channels.db import database_sync_to_async
from websockets.exceptions import ConnectionClosed

from assistant.models import ChatMessage, ChatSession
from tests.support.live import daphne

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

FAST = {
    "LOCAL_TOKEN_DELAY_MS": "0",
    "CHAT_RATE_LIMIT_PER_MINUTE": "100000",
    "CHAT_RATE_LIMIT_BURST": "100000",
    "CHAT_IP_RATE_LIMIT_PER_MINUTE": "100000",
    "MAX_CONNECTIONS_PER_IP": "500",
}


async def recv(ws: Any, frame_type: str, timeout: float = 10) -> dict[str, Any]:
    """Read frames until one of `frame_type`."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame["type"] == frame_type:
            return frame


async def read_reply(ws: Any, timeout: float = 10) -> tuple[str, dict[str, Any]]:
    text = ""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame["type"] == "reply.delta":
            text += frame["text"]
        elif frame["type"] == "reply.end":
            return text, frame


@pytest.mark.backends
async def test_daphne_closes_a_frame_over_64_kib_with_1009_and_accepts_one_just_under() -> None:
    with daphne(FAST) as base:
        async with websockets.connect(f"{base}/ws/chat/", max_size=None) as ws:
            await ws.send(json.dumps({"type": "hello"}))
            await recv(ws, "welcome")
            under = json.dumps({"type": "message", "text": "x" * 60_000, "client_id": "u"})
            await ws.send(under)
            assert (await recv(ws, "error"))["code"] == "message_too_long"
            await ws.send(json.dumps({"type": "message", "text": "x" * 70_000, "client_id": "o"}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


@pytest.mark.backends
async def test_fifty_concurrent_clients_leave_exactly_what_was_sent_in_the_database() -> None:
    clients, turns = 50, 4
    acked: dict[str, list[str]] = {}

    async def visitor(index: int, base: str) -> None:
        async with websockets.connect(f"{base}/ws/chat/") as ws:
            await ws.send(json.dumps({"type": "hello"}))
            session_id = (await recv(ws, "welcome"))["session_id"]
            acked[session_id] = []
            for turn in range(turns):
                client_id = f"v{index}-t{turn}"
                await ws.send(
                    json.dumps(
                        {"type": "message", "text": f"How do I scale Parley? ({index}/{turn})", "client_id": client_id}
                    )
                )
                ack = await recv(ws, "ack")
                assert ack["client_id"] == client_id
                acked[session_id].append(client_id)
                _, end = await read_reply(ws)
                assert end["status"] == "complete"
            # A client retrying its last message after a lost ack gets the same ack, no new reply.
            await ws.send(json.dumps({"type": "message", "text": "retry", "client_id": f"v{index}-t{turns - 1}"}))
            assert (await recv(ws, "ack"))["client_id"] == f"v{index}-t{turns - 1}"

    with daphne(FAST) as base:
        await asyncio.wait_for(asyncio.gather(*(visitor(i, base) for i in range(clients))), 90)

    @database_sync_to_async
    def stored() -> tuple[int, dict[str, list[str]], list[str]]:
        sessions = ChatSession.objects.count()
        by_session: dict[str, list[str]] = {}
        for public_id, client_id in (
            ChatMessage.objects.filter(role="user").order_by("seq").values_list("session__public_id", "client_id")
        ):
            by_session.setdefault(str(public_id), []).append(client_id)
        statuses = list(ChatMessage.objects.filter(role="assistant").values_list("status", flat=True))
        return sessions, by_session, statuses

    sessions, by_session, statuses = await stored()
    assert sessions == clients
    assert by_session == acked
    assert statuses == ["complete"] * (clients * turns)


@pytest.mark.services
async def test_an_idle_connection_stays_open_on_the_redis_channel_layer() -> None:
    """redis-py's 5 s socket timeout once raced channels_redis's 5 s pop and closed it with 1011."""
    with daphne(FAST) as base:
        async with websockets.connect(f"{base}/ws/chat/") as ws:
            await ws.send(json.dumps({"type": "hello"}))
            await recv(ws, "welcome")
            await asyncio.sleep(12)
            await ws.send(json.dumps({"type": "ping"}))
            assert await recv(ws, "pong") == {"type": "pong"}


@pytest.mark.services
async def test_two_server_processes_share_sessions_and_live_streams() -> None:
    slow = dict(FAST, LOCAL_TOKEN_DELAY_MS="15", CHAT_CHECKPOINT_INTERVAL_S="0.2")
    with daphne(slow) as server_a, daphne(slow) as server_b:
        async with websockets.connect(f"{server_a}/ws/chat/") as tab_a:
            await tab_a.send(json.dumps({"type": "hello"}))
            welcome = await recv(tab_a, "welcome")
            credentials = {"session_id": welcome["session_id"], "token": welcome["token"]}

            async with websockets.connect(f"{server_b}/ws/chat/") as tab_b:
                await tab_b.send(json.dumps({"type": "hello", **credentials}))
                await recv(tab_b, "welcome")
                # A reply generated on process A streams live to the tab on process B.
                await tab_a.send(
                    json.dumps({"type": "message", "text": "How do I embed the widget?", "client_id": "a1"})
                )
                user = await recv(tab_b, "message")
                assert user["client_id"] == "a1"
                first_delta_at = time.monotonic()
                await recv(tab_b, "reply.delta")
                text_a, end_a = await read_reply(tab_a, 30)
                text_b_rest, end_b = await read_reply(tab_b, 30)
                assert end_a == end_b and end_a["status"] == "complete"
                assert text_a.endswith(text_b_rest) and time.monotonic() - first_delta_at > 0.5

                # `stop` sent to process B stops the reply generated on process A.
                await tab_a.send(json.dumps({"type": "message", "text": "How do I scale Parley?", "client_id": "a2"}))
                await recv(tab_b, "reply.delta")
                await tab_b.send(json.dumps({"type": "stop"}))
                _, stopped = await read_reply(tab_a)
                assert stopped["status"] == "stopped"

        # The session resumes on process B with the whole history.
        async with websockets.connect(f"{server_b}/ws/chat/") as again:
            await again.send(json.dumps({"type": "hello", **credentials}))
            resumed = await recv(again, "welcome")
            assert [(m["seq"], m["role"], m["status"]) for m in resumed["history"]] == [
                (1, "user", "complete"),
                (2, "assistant", "complete"),
                (3, "user", "complete"),
                (4, "assistant", "stopped"),
            ]
            assert resumed["history"][1]["text"] == text_a

        # A tab joining on B while A streams gets the text so far, then the rest, with no gap.
        async with websockets.connect(f"{server_a}/ws/chat/") as tab_a:
            await tab_a.send(json.dumps({"type": "hello", **credentials, "last_seq": 4}))
            await recv(tab_a, "welcome")
            await tab_a.send(json.dumps({"type": "message", "text": "How do I embed the widget?", "client_id": "a3"}))
            await recv(tab_a, "reply.delta")
            await asyncio.sleep(0.5)
            async with websockets.connect(f"{server_b}/ws/chat/") as late:
                await late.send(json.dumps({"type": "hello", **credentials, "last_seq": 5}))
                joined = await recv(late, "welcome")
                assert joined["history"][0]["status"] == "streaming"
                rest, end = await read_reply(late, 30)
                await read_reply(tab_a, 30)
            assert end["status"] == "complete"

        @database_sync_to_async
        def stored(seq: int) -> tuple[str, str]:
            message = ChatMessage.objects.get(session__public_id=credentials["session_id"], seq=seq)
            return message.status, message.text

        assert joined["history"][0]["text"] + rest == (await stored(6))[1]

        # With no connection of the session left on A, a tab on B still gets A's reply so far,
        # the rest live, and can stop it.
        async with websockets.connect(f"{server_a}/ws/chat/") as tab_a:
            await tab_a.send(json.dumps({"type": "hello", **credentials, "last_seq": 6}))
            await recv(tab_a, "welcome")
            await tab_a.send(json.dumps({"type": "message", "text": "How do I embed the widget?", "client_id": "a4"}))
            await recv(tab_a, "reply.delta")
        async with websockets.connect(f"{server_b}/ws/chat/") as lone:
            await lone.send(json.dumps({"type": "hello", **credentials, "last_seq": 8}))
            history = (await recv(lone, "welcome"))["history"]
            assert [(m["seq"], m["status"]) for m in history] == [(8, "streaming")]
            seen = history[0]["text"] + (await recv(lone, "reply.delta"))["text"]
            await lone.send(json.dumps({"type": "stop"}))
            rest, end = await read_reply(lone)
        assert end["status"] == "stopped"
        assert await stored(8) == ("stopped", seen + rest)
