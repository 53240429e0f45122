"""`manage.py serve` on SIGTERM (project/shutdown.py), on a real server process.

The server stops listening at once, lets the reply being generated run for SHUTDOWN_GRACE_S,
stores it (`complete`, or `interrupted` once the grace is over), sends its `reply.end`, closes
every websocket with 1012 and exits 0. The rolling restart of two processes under load is
tests/deploy/test_rolling_restart.py.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import websockets
from channels.db import database_sync_to_async
from websockets.exceptions import ConnectionClosed

from assistant.models import ChatMessage
from project import runtime
from tests.support.chat import open_client
from tests.support.live import daphne_process

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How do I embed the widget?"


def server_env(*, delay_ms: int, grace_s: float) -> dict[str, str]:
    return {
        "LOCAL_TOKEN_DELAY_MS": str(delay_ms),
        "SHUTDOWN_GRACE_S": str(grace_s),
        "CHAT_CHECKPOINT_INTERVAL_S": "0.5",
        "LOG_LEVEL": "info",
    }


async def start_reply(ws: Any) -> str:
    """Say hello, ask QUESTION and wait for the reply's first words; returns the text so far."""
    await ws.send(json.dumps({"type": "hello"}))
    await recv(ws, "welcome")
    await ws.send(json.dumps({"type": "message", "text": QUESTION, "client_id": "c1"}))
    await recv(ws, "ack")
    return (await recv(ws, "reply.delta"))["text"]


async def recv(ws: Any, frame_type: str, timeout: float = 10) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame["type"] == frame_type:
            return frame


async def until_closed(ws: Any, timeout: float) -> tuple[list[dict[str, Any]], int | None, float]:
    """Every frame until the server closes the socket; the close code and when it came."""
    frames: list[dict[str, Any]] = []
    try:
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
    except ConnectionClosed as closed:
        return frames, closed.rcvd.code if closed.rcvd is not None else None, time.monotonic()


def reply_of(frames: list[dict[str, Any]], text: str) -> tuple[str, dict[str, Any]]:
    """The reply text (`text` so far plus the deltas in `frames`) and its `reply.end`."""
    ends = [frame for frame in frames if frame["type"] == "reply.end"]
    assert len(ends) == 1, [frame["type"] for frame in frames]
    assert frames[-1] is ends[0], "nothing may follow reply.end but the close"
    return text + "".join(frame["text"] for frame in frames if frame["type"] == "reply.delta"), ends[0]


@database_sync_to_async
def stored_messages() -> list[tuple[str, str | None, str, str]]:
    return list(ChatMessage.objects.order_by("seq").values_list("role", "client_id", "status", "text"))


@pytest.mark.live
async def test_sigterm_interrupts_a_reply_longer_than_the_grace_closes_with_1012_and_refuses_new_work(
    tmp_path: Path,
) -> None:
    grace = 1.5
    log = tmp_path / "serve.log"
    with daphne_process(server_env(delay_ms=200, grace_s=grace), log=log) as (base, process):
        async with websockets.connect(f"{base}/ws/chat/") as streaming, websockets.connect(f"{base}/ws/chat/") as idle:
            text = await start_reply(streaming)
            await idle.send(json.dumps({"type": "hello"}))
            await recv(idle, "welcome")

            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            await asyncio.sleep(0.3)
            assert process.poll() is None, "the server is still letting its reply run"
            with pytest.raises(ConnectionRefusedError):  # the listening socket is closed: a proxy goes elsewhere
                await websockets.connect(f"{base}/ws/chat/", open_timeout=2)
            # A message during the grace is refused, not stored: the client sends it again elsewhere.
            await idle.send(json.dumps({"type": "message", "text": "Still there?", "client_id": "late"}))
            refused = await recv(idle, "error")
            assert refused == {
                "type": "error",
                "code": "restarting",
                "detail": refused["detail"],
                "retry_after": 1.0,
                "client_id": "late",
            }

            frames, code, closed_at = await until_closed(streaming, timeout=grace + 5)
            assert code == 1012
            streamed, end = reply_of(frames, text)
            assert end["status"] == "interrupted"
            # It ran for the whole grace, then was cut (its words come every 200 ms).
            assert grace - 0.2 <= closed_at - signalled <= grace + 3
            assert (await until_closed(idle, timeout=5))[1] == 1012

        returncode = await asyncio.to_thread(process.wait, 10)
        exited_after = time.monotonic() - signalled
    assert returncode == 0
    assert exited_after < grace + 5
    assert await stored_messages() == [
        ("user", "c1", "complete", QUESTION),
        ("assistant", None, "interrupted", streamed),
    ]
    lines = log.read_text()
    assert "Shutdown 1/5: stopped listening on 1 port(s); 2 websocket(s) open, 1 repl(ies) running" in lines
    assert "Shutdown 2/5: 0 repl(ies) finished, 1 interrupted" in lines
    assert "Shutdown 3/5: 2 websocket(s) closed with 1012 (service restart)" in lines
    assert "Shutdown 4/5: 2 connection(s) ended, 0 still running" in lines
    assert "Shutdown 5/5" in lines


@pytest.mark.live
async def test_sigterm_lets_a_reply_within_the_grace_finish_and_does_not_wait_the_grace_out() -> None:
    grace = 30
    with daphne_process(server_env(delay_ms=30, grace_s=grace)) as (base, process):
        async with websockets.connect(f"{base}/ws/chat/") as ws:
            text = await start_reply(ws)
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            frames, code, _ = await until_closed(ws, timeout=15)
            streamed, end = reply_of(frames, text)
        returncode = await asyncio.to_thread(process.wait, 15)
        exited_after = time.monotonic() - signalled
    assert (code, end["status"], returncode) == (1012, "complete", 0)
    assert exited_after < 10, "the server stops once its replies are over, not after the grace"
    assert await stored_messages() == [
        ("user", "c1", "complete", QUESTION),
        ("assistant", None, "complete", streamed),
    ]


@pytest.mark.live
async def test_a_second_sigterm_interrupts_the_replies_at_once() -> None:
    with daphne_process(server_env(delay_ms=200, grace_s=60)) as (base, process):
        async with websockets.connect(f"{base}/ws/chat/") as ws:
            text = await start_reply(ws)
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            again = time.monotonic()
            frames, code, closed_at = await until_closed(ws, timeout=10)
            streamed, end = reply_of(frames, text)
        returncode = await asyncio.to_thread(process.wait, 10)
        exited_after = time.monotonic() - again
    assert (code, end["status"], returncode) == (1012, "interrupted", 0)
    assert closed_at - again < 2
    assert exited_after < 5
    assert (await stored_messages())[-1][2:] == ("interrupted", streamed)


@pytest.mark.usefixtures("drain_replies")
async def test_a_message_while_the_process_stops_is_answered_restarting_and_not_stored() -> None:
    """The consumer's part: no `ack`, no row, no reply; the same `client_id` is welcome elsewhere."""
    client, accepted, _ = await open_client()
    assert accepted
    await client.hello()
    runtime.current().stopping = True
    await client.send({"type": "message", "text": QUESTION, "client_id": "c1"})
    error = await client.recv()
    assert error == {
        "type": "error",
        "code": "restarting",
        "detail": "The server is restarting: reconnect and send the message again.",
        "retry_after": 1.0,
        "client_id": "c1",
    }
    assert await client.nothing_more()
    await client.close()
    assert await stored_messages() == []
