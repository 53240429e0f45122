"""Chat first: while visitors keep the server's CPU busy, deliveries wait (at most WEBHOOK_DEFER_MAX_S).

The "chat" here is a task that burns the event loop's CPU and marks chat activity, as a saturated
server's consumers would; the dispatcher and the receiver are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command

from tests.webhooks.receiver import Receiver
from webhooks import services
from webhooks.dispatcher import Dispatcher

pytestmark = [pytest.mark.django_db(transaction=True)]

EVENTS = 30


async def saturate(pacer: Any, *, chatting: bool, stop: asyncio.Event) -> None:
    """Keep this loop's CPU busy (20 ms slices), marking chat activity if `chatting`."""
    while not stop.is_set():
        started = time.monotonic()
        while time.monotonic() - started < 0.02:
            pass
        if chatting:
            pacer.chat_activity()
        await asyncio.sleep(0)


async def emit_many() -> None:
    await database_sync_to_async(lambda: [services.emit("alert.fired", {"n": n}) for n in range(EVENTS)])()


async def test_deliveries_wait_while_the_chat_saturates_then_go_once_they_waited_the_maximum(
    settings: Any, receiver: Receiver, make_endpoint: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.WEBHOOK_DEFER_MAX_S = 1.5
    await database_sync_to_async(make_endpoint)()
    dispatcher = Dispatcher()
    stop = asyncio.Event()
    hog = asyncio.create_task(saturate(dispatcher.pacer, chatting=True, stop=stop))
    try:
        dispatcher.pacer.busy()  # starts measuring
        for _ in range(100):
            if dispatcher.pacer.busy():
                break
            await asyncio.sleep(0.05)
        assert dispatcher.pacer.busy(), f"pressure {dispatcher.pacer.pressure:.2f}"
        await emit_many()
        runner = asyncio.create_task(dispatcher.run())
        await asyncio.sleep(0.8)
        early = receiver.count
        assert early <= 6  # one every 0.2 s (and the few in flight): the chat comes first
        assert await receiver.until(lambda r: r.count == EVENTS, timeout=6)  # after 1.5 s: full speed
        assert dispatcher.deferred > 0 and "behind the chat; delivering at full speed" in caplog.text
    finally:
        stop.set()
        await hog
        with contextlib.suppress(UnboundLocalError):
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)


async def test_a_busy_cpu_without_chat_does_not_hold_deliveries_back(
    settings: Any, receiver: Receiver, make_endpoint: Any
) -> None:
    settings.WEBHOOK_DEFER_MAX_S = 30
    await database_sync_to_async(make_endpoint)()
    dispatcher = Dispatcher()
    stop = asyncio.Event()
    hog = asyncio.create_task(saturate(dispatcher.pacer, chatting=False, stop=stop))
    try:
        await emit_many()
        started = time.monotonic()
        while receiver.count < EVENTS and time.monotonic() - started < 5:
            await dispatcher.step()
            await dispatcher.drain()
        assert receiver.count == EVENTS
        assert not dispatcher.pacer.busy() and dispatcher.deferred == 0
    finally:
        stop.set()
        await hog


@pytest.mark.backends
def test_deliver_webhooks_once_delivers_what_is_due_from_its_own_process(
    receiver: Receiver, make_endpoint: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    make_endpoint()
    for n in range(5):
        services.emit("alert.fired", {"n": n})
    call_command("deliver_webhooks", "--once")
    assert len(receiver.accepted()) == 5 and "5 attempt(s) made." in capsys.readouterr().out
