"""The doorbell between the outbox writers (any thread) and this process's dispatchers (event loops).

A transaction that wrote outbox rows rings once it commits (`transaction.on_commit`), from the
thread that committed; each running dispatcher's `asyncio.Event` is set on its own loop. Rows
written by other processes are found by the dispatchers' polling instead.

Ringing is on every chat turn's path while webhooks are on, so it costs nothing when it would
change nothing: not while a dispatcher is not listening (`Bell.armed` off: it is giving way to
the chat, or has all its slots busy), and once per wake-up however many commits ring before the
loop gets to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class Bell:
    """One dispatcher's wake-up event, and whether ringing it would do anything now."""

    def __init__(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        self.loop = loop
        self.event = event
        self.armed = True
        self.pending = False  # a wake-up is on its way to the loop

    def ring(self) -> None:
        if not self.armed or self.pending:
            return
        self.pending = True
        with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
            self.loop.call_soon_threadsafe(self._fire)

    def _fire(self) -> None:
        self.pending = False
        self.event.set()


_lock = threading.Lock()
_bells: dict[int, Bell] = {}


def register(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> Bell:
    """Have `ring` set `event` on `loop` (a dispatcher starting)."""
    bell = Bell(loop, event)
    with _lock:
        _bells[id(event)] = bell
    return bell


def unregister(event: asyncio.Event) -> None:
    """Stop ringing `event` (a dispatcher stopping)."""
    with _lock:
        _bells.pop(id(event), None)


def ring() -> None:
    """Wake every listening dispatcher of this process (cheap; safe from any thread)."""
    for bell in list(_bells.values()):
        bell.ring()
