"""`desk.lists`: one read of the shared lists per change for all the desks of a process, never
an answer read before the change the asker heard of."""

from __future__ import annotations

import asyncio
import time

from desk import lists


async def test_askers_share_a_read_begun_after_their_change_and_never_an_older_one(monkeypatch) -> None:
    calls: list[float] = []

    async def read() -> dict[str, object]:
        calls.append(time.monotonic())
        number = len(calls)
        await asyncio.sleep(0.05)
        return {"read": number}

    monkeypatch.setattr(lists, "_shared_lists", read)
    shared = lists.SharedLists()
    heard = time.monotonic()
    together = await asyncio.gather(*(shared.get(since=heard) for _ in range(10)))
    assert together == [{"read": 1}] * 10 and len(calls) == 1  # ten desks, one read

    assert await shared.get(since=heard) == {"read": 1}  # nothing new since: the same lists
    during = asyncio.ensure_future(shared.get(since=time.monotonic()))  # a change after read 1
    await asyncio.sleep(lists.GATHER_S * 2)  # read 2 is under way
    late = time.monotonic()  # heard of a change while read 2 runs: read 2 may have missed it
    assert await shared.get(since=late) == {"read": 3}
    assert await during == {"read": 2} and len(calls) == 3


async def test_a_failed_read_fails_its_askers_and_the_next_change_reads_again(monkeypatch) -> None:
    outcomes = [RuntimeError("database down"), {"read": 2}]

    async def read() -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(lists, "_shared_lists", read)
    shared = lists.SharedLists()
    results = await asyncio.gather(shared.get(since=time.monotonic()), return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert await shared.get(since=time.monotonic()) == {"read": 2}
