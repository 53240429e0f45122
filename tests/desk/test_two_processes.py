"""An agent on one server process answers a visitor on another, through the channel layer.

Two `manage.py serve` processes on Postgres + Redis: the desk connects to A, the visitor to B.
Every hop crosses Redis: the queue update (B → A), the takeover's status and the agent's
messages and typing (A → B), the visitor's messages and typing (B → A).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client

from tests.assistant.handoff.conftest import support_agents
from tests.support.live import daphne_process

pytestmark = [pytest.mark.services, pytest.mark.live, pytest.mark.django_db(transaction=True)]


@database_sync_to_async
def agent_cookie() -> str:
    user = get_user_model().objects.create_user("ada", password="pw", first_name="Ada")
    user.groups.add(support_agents())
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def next_of(ws: Any, kind: str, timeout: float = 10) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame

    return await asyncio.wait_for(read(), timeout)


async def test_an_agent_on_one_process_answers_a_visitor_on_another() -> None:
    cookie = await agent_cookie()
    with daphne_process() as (desk_url, _), daphne_process() as (chat_url, _):
        origin = desk_url.replace("ws://", "http://")
        async with (
            websockets.connect(f"{desk_url}/ws/desk/", additional_headers={"Origin": origin, "Cookie": cookie}) as desk,
            websockets.connect(f"{chat_url}/ws/chat/") as visitor,
        ):
            await desk.send(json.dumps({"type": "availability", "available": True}))
            await next_of(desk, "availability")
            await desk.send(json.dumps({"type": "hello"}))
            await next_of(desk, "welcome")

            await visitor.send(json.dumps({"type": "hello"}))
            sid = (await next_of(visitor, "welcome"))["session_id"]
            await visitor.send(json.dumps({"type": "message", "text": "Where is my parcel?", "client_id": "m1"}))
            await next_of(visitor, "reply.end")
            await visitor.send(json.dumps({"type": "handoff"}))
            assert (await next_of(visitor, "handoff.status"))["state"] == "waiting"
            queued = await next_of(desk, "queue.updated")  # B's event, A's desk
            assert [item["session_id"] for item in queued["queue"]] == [sid]

            await desk.send(json.dumps({"type": "claim", "session_id": sid}))
            await next_of(desk, "claim.ack")
            assert (await next_of(visitor, "handoff.status"))["agent"] == {"name": "Ada"}

            await visitor.send(json.dumps({"type": "typing", "state": "start"}))
            assert (await next_of(desk, "typing"))["session_id"] == sid
            await visitor.send(json.dumps({"type": "message", "text": "Hello?", "client_id": "m2"}))
            await next_of(visitor, "ack")
            live = await next_of(desk, "message")
            assert (live["role"], live["text"]) == ("user", "Hello?")

            await desk.send(json.dumps({"type": "typing", "session_id": sid, "state": "start"}))
            assert (await next_of(visitor, "typing"))["name"] == "Ada"
            answer = {"type": "message", "session_id": sid, "text": "On its way!", "client_id": "d1"}
            await desk.send(json.dumps(answer))
            await next_of(desk, "ack")
            shown = await next_of(visitor, "message")
            assert (shown["role"], shown["text"], shown["author"]) == ("agent", "On its way!", {"name": "Ada"})
