"""A server crash loses no webhook: real `manage.py serve` processes, a real receiver, SIGKILL.

Visitors chat through a websocket while the receiver is down (it answers 503), so every event is
written to the outbox and waits for its retries. The server is killed (SIGKILL: no shutdown, no
lease given back), the receiver comes back, and a new server process starts on the same
database: it delivers every event exactly once (by `webhook-id`), each conversation's in the
order it happened, each signature valid.
"""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import pytest
import websockets
from channels.db import database_sync_to_async

from tests.support.live import daphne_process
from tests.webhooks.receiver import Receiver
from webhooks.models import WebhookDelivery

pytestmark = [pytest.mark.live, pytest.mark.backends, pytest.mark.django_db(transaction=True)]

SERVER_ENV = {
    "WEBHOOK_ALLOW_PRIVATE": "1",
    "WEBHOOK_RETRY_SCHEDULE_S": ",".join(["0.3"] * 40),
    "WEBHOOK_POLL_INTERVAL_S": "0.2",
    "WEBHOOK_TIMEOUT_S": "2",
    "LOCAL_TOKEN_DELAY_MS": "0",
    "CHAT_RATE_LIMIT_PER_MINUTE": "100000",
    "CHAT_RATE_LIMIT_BURST": "100000",
    "CHAT_IP_RATE_LIMIT_PER_MINUTE": "100000",
    "CHAT_SESSIONS_PER_IP_PER_HOUR": "100000",
}
VISITORS = 3


async def recv(ws: Any, frame_type: str, timeout: float = 10) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame["type"] == frame_type:
            return frame


async def visitor(base: str, index: int) -> str:
    """Two turns, thumbs up on the first reply, the end: nine events."""
    async with websockets.connect(f"{base}/ws/chat/") as ws:
        await ws.send(json.dumps({"type": "hello"}))
        session_id = (await recv(ws, "welcome"))["session_id"]
        first_reply = ""
        for turn in range(2):
            await ws.send(
                json.dumps({"type": "message", "text": f"How do I embed the widget? {index}", "client_id": f"t{turn}"})
            )
            end = await recv(ws, "reply.end")
            first_reply = first_reply or end["message_id"]
        await ws.send(json.dumps({"type": "feedback", "message_id": first_reply, "rating": "up"}))
        await recv(ws, "feedback.ack")
        await ws.send(json.dumps({"type": "end"}))
        await recv(ws, "ended")
    return session_id


@database_sync_to_async
def outbox() -> list[tuple[str, str, str]]:
    return list(WebhookDelivery.objects.order_by("pk").values_list("event_id", "conversation_id", "state"))


async def test_a_crashed_server_loses_no_event_and_the_next_one_delivers_each_once_in_order(
    receiver: Receiver, make_endpoint: Any
) -> None:
    await database_sync_to_async(make_endpoint)()
    down = True
    receiver.decide = lambda path, body: 503 if down else None

    with daphne_process(SERVER_ENV) as (base, process):
        sessions = await asyncio.wait_for(asyncio.gather(*(visitor(base, i) for i in range(VISITORS))), 60)
        written = await outbox()
        assert len(written) == VISITORS * 9  # started, two turns of (visitor, reply, completed), feedback, closed
        assert await receiver.until(lambda r: len(r.received) >= len(written), timeout=20)  # tried, refused
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    assert receiver.accepted() == []
    down = False
    with daphne_process(SERVER_ENV):
        assert await receiver.until(lambda r: len(r.accepted()) >= len(written), timeout=60)
        await asyncio.sleep(1.0)  # anything sent twice would arrive now

    accepted = receiver.accepted()
    assert sorted(item.id for item in accepted) == sorted(event_id for event_id, _, _ in written)  # each once
    assert all(item.verified for item in accepted)
    for session_id in sessions:
        in_outbox = [event_id for event_id, conversation, _ in written if conversation == session_id]
        arrived = [item.id for item in accepted if item.payload["data"]["conversation_id"] == session_id]
        assert arrived == in_outbox  # the conversation's order
    assert {state for _, _, state in await outbox()} == {"delivered"}
