"""The desk's lists, read once per process per change and shared by every desk of the process.

Every desk shows the same waiting queue, open conversations and agents; only "mine" differs.
When the queue changes, every desk of a process is told at about the same moment: instead of
each reading the lists (ten desks, ten reads of a few hundred rows, tens of milliseconds each
on the process's one database thread), they share one read that began after the change.
`bench/desk.py` on Postgres: ten desks re-reading after every claim took a second of database
time per claim, and the claims of 200 visitors queued behind each other for minutes.

Correctness rests on local clocks only: a desk asks for lists read no earlier than the moment
it heard of the change (`since`, this process's monotonic clock); a read that started at or
after that moment saw the change.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels.db import database_sync_to_async

from desk import selectors
from project import runtime

#: How long a read waits for other desks to ask too before it starts.
GATHER_S = 0.02

_shared_lists = database_sync_to_async(selectors.shared_lists)


class SharedLists:
    """One event loop's latest read of the shared lists, and the read under way or about to start."""

    def __init__(self) -> None:
        self.done: tuple[float, dict[str, Any]] | None = None  # (when its read started, the lists)
        self.reading: tuple[float, asyncio.Future[dict[str, Any]]] | None = None
        self.next: asyncio.Future[dict[str, Any]] | None = None  # starts after GATHER_S: any asker joins

    async def get(self, since: float) -> dict[str, Any]:
        """Lists whose read started at or after `since` (time.monotonic())."""
        if self.done is not None and self.done[0] >= since:
            return self.done[1]
        if self.reading is not None and self.reading[0] >= since:
            return await asyncio.shield(self.reading[1])
        if self.next is None:
            self.next = asyncio.get_running_loop().create_future()
            runtime.current().spawn(self._read(self.next), name="desk-lists", kind=runtime.SERVICE)
        return await asyncio.shield(self.next)

    async def _read(self, future: asyncio.Future[dict[str, Any]]) -> None:
        """Gather askers for GATHER_S, then read once. Whatever happens (a failed read, a
        cancelled task at shutdown), the future ends and the slots are cleared: no asker waits
        forever, and the next change reads again."""
        started = 0.0
        try:
            await asyncio.sleep(GATHER_S)
            if self.next is future:
                self.next = None
            started = time.monotonic()
            self.reading = (started, future)
            lists = await _shared_lists()
        except BaseException as error:
            if not future.done():
                future.set_exception(error if isinstance(error, Exception) else RuntimeError("read cancelled"))
                future.exception()  # retrieved: each asker gets it from its own await
            if isinstance(error, asyncio.CancelledError):
                raise
        else:
            future.set_result(lists)
            if self.done is None or self.done[0] < started:
                self.done = (started, lists)
        finally:
            if self.next is future:
                self.next = None
            if self.reading is not None and self.reading[1] is future:
                self.reading = None


def shared() -> SharedLists:
    """This event loop's shared lists."""
    return runtime.current().state("desk-lists", SharedLists)
