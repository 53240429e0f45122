"""HANDOFF_ABANDON_AFTER_S: a visitor who closed every tab while waiting leaves the queue."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from assistant.handoff import left
from assistant.models import ChatSession, Handoff
from tests.assistant.test_consumers import connected
from tests.desk.test_consumers import agent_desk

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drain_replies")]


@database_sync_to_async
def states(sid: str) -> tuple[str, list[str]]:
    session = ChatSession.objects.get(public_id=sid)
    return session.handoff_state, list(Handoff.objects.filter(session=session).values_list("outcome", flat=True))


async def waiting_visitor():
    visitor = await connected()
    welcome = await visitor.hello()
    await visitor.say("I want a person", "m1")
    await visitor.send({"type": "handoff"})
    assert (await visitor.recv_type("handoff.status"))["state"] == "waiting"
    return visitor, welcome


async def until(predicate, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)


async def test_a_visitor_who_closed_every_tab_leaves_the_queue_after_the_grace(settings) -> None:
    settings.HANDOFF_ABANDON_AFTER_S = 1
    _, desk = await agent_desk()
    visitor, welcome = await waiting_visitor()
    sid = welcome["session_id"]
    assert [i["session_id"] for i in (await desk.next("queue.updated"))["queue"]] == [sid]
    await visitor.close()
    assert await states(sid) == ("waiting", ["open"])  # not at once: a reload is not leaving

    async def abandoned() -> bool:
        return await states(sid) == ("ai", ["abandoned"])

    await until(abandoned)
    assert await abandoned()
    assert (await desk.next("queue.updated"))["queue"] == []
    await desk.close()
    await runtime_stop()


async def test_a_visitor_who_comes_back_in_time_keeps_their_place(settings) -> None:
    settings.HANDOFF_ABANDON_AFTER_S = 1
    _, desk = await agent_desk()
    visitor, welcome = await waiting_visitor()
    await visitor.close()
    again = await connected()
    await again.hello(session_id=welcome["session_id"], token=welcome["token"])
    assert (await again.recv_type("handoff.status"))["state"] == "waiting"
    await asyncio.sleep(1.6)
    assert await states(welcome["session_id"]) == ("waiting", ["open"])
    await again.close()
    await desk.close()
    await runtime_stop()


async def test_a_hello_on_another_process_after_the_close_keeps_the_place(settings) -> None:
    """`last_seen_at` stamped after the close (a tab reconnecting elsewhere): nothing is ended;
    stamped so close to the close that another server's clock may have done it: looked at once
    more, and ended only if no hello came in between."""
    settings.HANDOFF_ABANDON_AFTER_S = 3600  # the loop stays out of the way: check_once is called here
    _, desk = await agent_desk()
    visitor, welcome = await waiting_visitor()
    sid = welcome["session_id"]
    await visitor.close()
    tabs = left._tabs()
    [pk] = list(tabs.left)
    gone = tabs.left[pk]
    stamp = database_sync_to_async(lambda at: ChatSession.objects.filter(pk=pk).update(last_seen_at=at))

    async def check(**changes) -> int:
        tabs.left[pk] = dataclasses.replace(tabs.left.get(pk, gone), due_at=timezone.now(), **changes)
        return await left.check_once()

    await stamp(gone.left_at + timedelta(seconds=10))  # a hello well after the close: back
    assert await check() == 0 and pk not in tabs.left
    await stamp(gone.left_at + timedelta(seconds=1))  # within the clocks' room: unsure
    assert await check() == 0 and tabs.left[pk].seen_before == gone.left_at + timedelta(seconds=1)
    await stamp(gone.left_at + timedelta(seconds=1, milliseconds=5))  # another hello in between
    assert await check() == 0 and pk not in tabs.left
    assert await states(sid) == ("waiting", ["open"])
    await stamp(gone.left_at - timedelta(seconds=1))  # unsure again, then nothing more: gone
    assert await check() == 0 and await check() == 1
    assert await states(sid) == ("ai", ["abandoned"])
    await desk.close()
    await runtime_stop()


async def runtime_stop() -> None:
    from project import runtime

    await runtime.current().stop_service(left.SERVICE)
