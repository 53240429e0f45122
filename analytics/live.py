"""Live events for staff dashboards: session start and end, messages, feedback, ratings, failovers.

Trackers call `publish(event)` (no I/O, no await); a per-event-loop feed sends what gathered
to the `analytics.live` group at most every `FLUSH_S`, as one layer message, so a busy server
pays one layer send per half second however many chats it serves. The layer is at most once:
dashboards also re-read the API every 30 s.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.layers import get_channel_layer
from django.utils import timezone

from assistant.groups import analytics_live_group
from project import runtime

logger = logging.getLogger(__name__)

FLUSH_S = 0.5
#: A feed holds at most this many events between flushes; a flood is cut, not buffered.
MAX_PENDING = 500


class LiveFeed:
    """Gathers one event loop's events and sends them together."""

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []
        self.dropped = 0
        self.task: asyncio.Task[None] | None = None

    def publish(self, event: dict[str, Any]) -> None:
        """Queue an event for the dashboards."""
        if len(self.pending) >= MAX_PENDING:
            self.dropped += 1
            return
        event.setdefault("at", timezone.now().isoformat())
        self.pending.append(event)
        if self.task is None or self.task.done():
            self.task = runtime.current().spawn(self._flush_later(), name="analytics-live", kind=runtime.LIVE)

    async def _flush_later(self) -> None:
        await asyncio.sleep(FLUSH_S)
        events, self.pending = self.pending, []
        dropped, self.dropped = self.dropped, 0
        layer = get_channel_layer()
        if layer is None or not events:
            return
        try:
            await layer.group_send(analytics_live_group(), {"type": "analytics.events", "events": events,
                                                            "dropped": dropped})  # fmt: skip
        except Exception:
            logger.exception("Could not send %d live analytics event(s); dashboards catch up on refresh", len(events))


def publish(event: dict[str, Any]) -> None:
    """Queue `event` for staff dashboards (never raises into the chat path)."""
    try:
        runtime.current().state("analytics.live", LiveFeed).publish(event)
    except Exception:
        logger.exception("Could not queue a live analytics event")


async def drain() -> None:
    """Send what is queued now (tests and shutdown)."""
    await runtime.current().wait(runtime.LIVE)
