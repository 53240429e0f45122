"""Delivering frames to every connection of a chat session, from anywhere in this process.

Any feature that sends frames to a session uses `publish` (the reply task does; the agent
desk will). There are two paths. Connections in this process get frames straight into their
inbox (`hub`), with no channel-layer round trip. Connections in other processes get them
through the session's channel-layer group, when the caller says other processes may need them
(`remote`; `has_remote_members` tells). The layer is at-most-once, so deltas carry a private
`_offset` and `reply.end` the full text: a connection that missed a delta (or joined late)
fills the gap instead of showing a hole.

Chat events (`assistant.events`) that other processes' subscribers must see travel to the same
group as their own `chat.event` message (`relay`), never inside client frames.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer
from channels_redis.core import RedisChannelLayer

from assistant import events
from assistant.groups import session_group
from assistant.liveness import PROCESS_ID  # tags this process's group messages (and owns its replies)

logger = logging.getLogger(__name__)

Frame = dict[str, Any]


class LocalHub:
    """The inboxes of this process's connections, by session group."""

    def __init__(self) -> None:
        self._members: defaultdict[str, set[asyncio.Queue[Frame]]] = defaultdict(set)

    def join(self, group: str, inbox: asyncio.Queue[Frame]) -> None:
        """Register a connection; call after it joined the layer group (see `has_remote_members`)."""
        self._members[group].add(inbox)

    def leave(self, group: str, inbox: asyncio.Queue[Frame]) -> None:
        """Forget a connection; call before it leaves the layer group."""
        members = self._members.get(group)
        if members is not None:
            members.discard(inbox)
            if not members:
                del self._members[group]

    def count(self, group: str) -> int:
        """How many connections of `group` live in this process."""
        return len(self._members.get(group, ()))

    def deliver(self, group: str, event: Frame) -> None:
        """Queue `event` for every local connection of `group` (they dispatch it in order)."""
        for inbox in self._members.get(group, ()):
            inbox.put_nowait(event)


hub = LocalHub()


def layer_is_shared(layer: BaseChannelLayer | None) -> bool:
    """True when other processes can be on the layer (anything but the in-memory layer)."""
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)


async def has_remote_members(group: str) -> bool:
    """Whether `group` may have members in other processes.

    Members join the layer group before the hub and leave it after, so the layer count minus
    the local count never under-counts remote members; stale entries only over-count (an
    unneeded publish, never a missed one). Unknown layer types are assumed to have some.
    """
    layer = get_channel_layer()
    if not layer_is_shared(layer):
        return False
    if not isinstance(layer, RedisChannelLayer):
        return True
    try:
        # channels_redis keeps a group as a sorted set of channel names under _group_key().
        members = await layer.connection(layer.consistent_hash(group)).zcard(layer._group_key(group))
    except Exception:
        logger.exception("Could not count the members of %s; publishing to the group", group)
        return True
    return members > hub.count(group)


async def publish(group: str, frames: list[Frame], *, origin: str | None = None, remote: bool = True) -> None:
    """Send frames to every connection of a session: local inboxes, then (if `remote`) the group.

    A layer outage is logged, never raised: remote clients catch up from the database.
    """
    # `group` tells a connection that follows several sessions (the agent desk) whose frames these are.
    event: Frame = {"type": "chat.frames", "frames": frames, "origin": origin, "group": group}
    hub.deliver(group, event)
    layer = get_channel_layer()
    if not remote or not layer_is_shared(layer):
        return
    try:
        await layer.group_send(group, dict(event, process=PROCESS_ID))
    except Exception:
        logger.exception("Channel layer send to %s failed; clients will catch up from the database", group)


async def relay(event: events.ChatEvent, *, remote: bool = True) -> None:
    """Publish `event` here and, if it is relayed and `remote`, to the session's other processes."""
    events.publish(event)
    await send_copy(event, remote=remote)


async def send_copy(event: events.ChatEvent, *, remote: bool = True) -> None:
    """Send a copy of an event published here to the session's other processes (if relayed and `remote`)."""
    if not (event.relayed and remote):
        return
    layer = get_channel_layer()
    if not layer_is_shared(layer):
        return
    try:
        await layer.group_send(session_group(event.session_id), event.message(PROCESS_ID))
    except Exception:
        logger.exception("Could not relay %s to other processes", type(event).__name__)
