"""Batching a reply's text so that at most one message per interval leaves for each reply."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from assistant.protocol import frames

Frame = dict[str, Any]


class DeltaCoalescer:
    """Batch reply text so at most one message per interval leaves for each reply."""

    def __init__(self, *, send: Callable[[list[Frame]], Awaitable[None]], seq: int, interval_s: float) -> None:
        self.send = send
        self.seq = seq
        self.interval_s = interval_s
        self.sent_chars = 0
        self.layer_messages = 0
        self._pending: list[str] = []
        self._last_flush = 0.0
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    def append(self, text: str) -> None:
        """Queue text; the flusher sends it when the interval allows."""
        self._pending.append(text)
        self._dirty.set()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop())

    async def finish(self, end_frame: Frame) -> None:
        """Send what is pending together with `reply.end` (which carries the whole text) in one message."""
        async with self._lock:
            if self._flusher is not None:
                self._flusher.cancel()
            batch = self._take_pending()
            batch.append(end_frame)
            self.layer_messages += 1
            await self.send(batch)

    async def _flush_loop(self) -> None:
        while True:
            await self._dirty.wait()
            delay = self._last_flush + self.interval_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            async with self._lock:
                self._dirty.clear()
                batch = self._take_pending()
                if batch:
                    self._last_flush = time.monotonic()
                    self.layer_messages += 1
                    await self.send(batch)

    def _take_pending(self) -> list[Frame]:
        if not self._pending:
            return []
        text = "".join(self._pending)
        self._pending.clear()
        frame = frames.stream_delta(seq=self.seq, text=text, offset=self.sent_chars)
        self.sent_chars += len(text)
        return [frame]
