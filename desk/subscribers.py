"""The desk listens on the event seam: a change to the queue tells every open desk to refresh it."""

from __future__ import annotations

import logging

from channels.layers import get_channel_layer

from assistant import events
from desk import notify
from desk.groups import DESK_QUEUE_GROUP

logger = logging.getLogger(__name__)


def connect() -> None:
    """Subscribe (once per process, from `DeskConfig.ready`). Originals only: each change once."""
    # A visitor who ends the conversation while waiting is a HandoffChanged (`abandoned`) too;
    # any other SessionEnded leaves the queue as it was.
    for kind in (events.HandoffRequested, events.HandoffChanged):
        events.subscribe(kind, queue_changed)
    events.subscribe(events.HandoffRequested, notify.handoff_requested)


async def queue_changed(event: events.ChatEvent) -> None:
    """Ask every desk, in every process, to re-read its queue (a coroutine: run as a background task)."""
    if isinstance(event, events.HandoffRequested) and event.state != "waiting":
        return  # `unavailable`: nobody was there to see it
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(DESK_QUEUE_GROUP, {"type": "desk.queue"})
    except Exception:
        logger.exception("Could not tell the desks that the queue changed")
