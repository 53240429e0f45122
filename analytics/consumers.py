"""`/ws/analytics/`: live session events for staff dashboards and transcripts.

Authenticated by the Django admin session cookie (`AuthMiddlewareStack` on this route only, so
chat connections never pay for a session lookup). Anonymous connections are closed with 4401,
non-staff ones with 4403 (accepted first, so that the browser sees the code).

Server → client frames:
  {"type": "events", "events": [...], "active_sessions": N, "live": {...}, "dropped": 0}   every ≤ 0.5 s
      while chats happen; `live` holds the registry's live metrics (`metrics.LIVE`): sessions
      live, visitors waiting for a person, the longest wait
  {"type": "watching", "session_id": ...}        after a `watch` frame
  {"type": "chat", "session_id": ..., "frame": {...}}   a watched session's chat frame
  {"type": "error", "code": ..., "detail": ...}
Client → server: {"type": "watch", "session_id": "<uuid>"}, {"type": "unwatch"}, {"type": "ping"}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from analytics import selectors
from analytics.access import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, is_staff
from assistant.delivery import PROCESS_ID, hub
from assistant.groups import analytics_live_group, session_group

logger = logging.getLogger(__name__)

_live_numbers = database_sync_to_async(selectors.live_numbers)
MAX_FRAME_CHARS = 1000


class AnalyticsConsumer(AsyncWebsocketConsumer):
    """One staff browser tab watching the dashboard (and maybe one session)."""

    joined = False
    watching: str | None = None
    inbox: asyncio.Queue[dict[str, Any]] | None = None
    pump: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Staff only: 4401 without a login, 4403 for a non-staff one."""
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not is_staff(user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(analytics_live_group(), self.channel_name)
        self.joined = True

    async def disconnect(self, code: int) -> None:
        """Leave the live group and any watched session."""
        await self._unwatch()
        if self.joined:
            await self.channel_layer.group_discard(analytics_live_group(), self.channel_name)
            self.joined = False

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """`watch` a session's live transcript, `unwatch`, or `ping`."""
        if not self.joined:
            return
        try:
            if text_data is None or len(text_data) > MAX_FRAME_CHARS:
                raise ValueError(f"Send JSON text frames of at most {MAX_FRAME_CHARS} characters.")
            frame = json.loads(text_data)
            if not isinstance(frame, dict):
                raise ValueError("A frame must be a JSON object.")
            kind = frame.get("type")
            unknown = set(frame) - {"type", "session_id"}
            if unknown:
                raise ValueError(f"Unknown field(s): {', '.join(sorted(unknown))[:80]}.")
            if kind == "watch":
                await self._watch(str(uuid.UUID(str(frame.get("session_id")))))
            elif kind == "unwatch":
                await self._unwatch()
            elif kind == "ping":
                await self.send_json({"type": "pong"})
            else:
                raise ValueError("'type' must be one of watch, unwatch, ping.")
        except ValueError as error:  # json.JSONDecodeError and bad UUIDs are ValueErrors
            await self.send_json({"type": "error", "code": "invalid_frame", "detail": str(error)[:200]})

    async def analytics_events(self, event: dict[str, Any]) -> None:
        """A batch of live events from a chat server process, with the live numbers."""
        try:
            live: dict[str, int] | None = await _live_numbers()
        except Exception:
            logger.exception("Could not count live sessions")
            live = None
        await self.send_json(
            {
                "type": "events",
                "events": event["events"],
                "active_sessions": live["live_sessions"] if live is not None else None,
                "live": live,
                "dropped": event.get("dropped", 0),
            }
        )

    async def chat_frames(self, event: dict[str, Any]) -> None:
        """A watched session's chat frames (from another process, through the layer)."""
        await self._forward(event)

    async def chat_snapshot(self, event: dict[str, Any]) -> None:
        """Snapshots are for visitor tabs joining mid-reply; a transcript re-reads the API instead."""

    async def chat_event(self, event: dict[str, Any]) -> None:
        """Chat events for the subscribers of the session's processes; a watcher shows frames only."""

    # --- watching one session -----------------------------------------------------------
    async def _watch(self, session_id: str) -> None:
        await self._unwatch()
        group = session_group(session_id)
        await self.channel_layer.group_add(group, self.channel_name)
        self.inbox = asyncio.Queue()
        hub.join(group, self.inbox)  # frames of replies generated in this process
        self.watching = session_id
        self.pump = asyncio.create_task(self._pump(self.inbox))
        await self.send_json({"type": "watching", "session_id": session_id})

    async def _unwatch(self) -> None:
        if self.watching is None:
            return
        group = session_group(self.watching)
        if self.inbox is not None:
            hub.leave(group, self.inbox)
        if self.pump is not None:
            self.pump.cancel()
        await self.channel_layer.group_discard(group, self.channel_name)
        self.watching, self.inbox, self.pump = None, None, None

    async def _pump(self, inbox: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            await self._forward(await inbox.get())

    async def _forward(self, event: dict[str, Any]) -> None:
        if self.watching is None or (event.get("process") == PROCESS_ID and self.inbox is not None):
            return  # the layer copy of frames the hub already delivered
        for frame in event.get("frames", []):
            kind = frame.get("type", "")
            if kind.startswith("_") or kind == "chat.snapshot":
                continue
            clean = {key: value for key, value in frame.items() if not key.startswith("_")}
            if kind == "reply.delta":
                clean["offset"] = frame.get("_offset")
            await self.send_json({"type": "chat", "session_id": self.watching, "frame": clean})

    async def send_json(self, data: dict[str, Any]) -> None:
        """Send one JSON frame."""
        await self.send(text_data=json.dumps(data, ensure_ascii=False, separators=(",", ":")))
