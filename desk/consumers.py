"""The `/ws/desk/` websocket: one agent's desk (protocol in docs/desk.md).

Protocol handling only: each frame goes to `assistant.handoff.actions` (writes that also tell
the visitor's tabs), its services or the desk's selectors, one database unit each. The desk
follows the conversations it opened the way a visitor's tab does: through the session's hub
inbox (replies generated in this process) and its channel-layer group (other processes).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from assistant import protocol
from assistant.delivery import PROCESS_ID, hub
from assistant.groups import desk_session_group, session_group, session_of_group
from assistant.handoff import actions, selectors, services
from assistant.handoff.services import MAX_DESK_CLIENT_ID
from assistant.protocol import ClientError, frames
from assistant.ratelimit import TokenBucket
from assistant.selectors import iso
from desk import lists as desk_lists
from desk import notify
from desk import protocol as desk_protocol
from desk import selectors as desk_selectors
from desk.groups import DESK_QUEUE_GROUP
from project.logs import client_warnings

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
#: An agent's longest message, JSON-escaped, fits well within this.
MAX_FRAME_CHARS = 64 * 1024
#: Conversations one desk follows live at once; opening one more stops following the oldest.
MAX_WATCHED = 50
#: The desk's heartbeat (any frame) is written at most this often.
PRESENCE_WRITE_S = 20.0
#: A rate-limited frame up to this long is read for its `client_id` and `session_id`.
NAMED_PARSE_CHARS = 10_000
#: Frames of one desk being handled at once (in all its conversations' lanes); more are refused.
MAX_IN_FLIGHT = 100
#: Conversations of one desk whose frames run at the same time (the others wait their turn).
LANES_AT_ONCE = 4
#: On disconnect, how long frames still in their lanes may take to finish.
LANE_DRAIN_S = 5.0
#: A desk re-reads its queue at most this often (changes in between are folded into one read).
QUEUE_REFRESH_S = 0.25
#: After a failed read of the queue, the next try waits this long.
QUEUE_RETRY_S = 5.0

_can_use_desk = database_sync_to_async(selectors.can_use_desk)
_presence_set = database_sync_to_async(services.presence_set)
_queue = database_sync_to_async(desk_selectors.queue)
_mine = database_sync_to_async(desk_selectors.mine)
_conversation = database_sync_to_async(desk_selectors.conversation)
_history = database_sync_to_async(desk_selectors.history)
_note_add = database_sync_to_async(services.note_add)


def _about(error: ClientError, frame: dict[str, Any]) -> dict[str, Any]:
    """The error frame, naming what it answers: the conversation, and a message's `client_id`
    (the desk then marks that message "not sent" instead of leaving it pending)."""
    if error.client_id is None and frame.get("type") == "message" and isinstance(frame.get("client_id"), str):
        error.client_id = frame["client_id"][:MAX_DESK_CLIENT_ID]
    answer = dict(error.frame())
    if isinstance(frame.get("session_id"), str):
        answer["session_id"] = frame["session_id"][:36]
    return answer


def _named(text_data: str) -> dict[str, Any]:
    """What a refused (rate-limited) frame names, read only from a small frame: the flood the
    limit is for costs no parsing, and an agent's ordinary message is small."""
    if len(text_data) > NAMED_PARSE_CHARS:
        return {}
    try:
        frame = json.loads(text_data)
    except ValueError:
        return {}
    return frame if isinstance(frame, dict) else {}


class DeskConsumer(AsyncWebsocketConsumer):
    """One agent's desk in one browser tab."""

    user: Any = None
    joined = False
    queue_dirty = False
    closing = False
    queue_changed_at = 0.0
    in_flight = 0
    queue_refresher: asyncio.Task[None] | None = None
    available = False
    presence_written = 0.0

    async def connect(self) -> None:
        """Agents only: 4401 without a login, 4403 without `use_desk` (the Origin is checked before)."""
        self.watched: dict[str, tuple[asyncio.Queue[dict[str, Any]], asyncio.Task[None]]] = {}
        self.lanes: dict[str, asyncio.Task[None]] = {}  # session id -> its latest frame's task
        self.running = asyncio.Semaphore(LANES_AT_ONCE)
        self.watching = asyncio.Lock()
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await _can_use_desk(user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user = user
        self.frame_bucket = TokenBucket(per_minute=settings.DESK_FRAME_RATE_LIMIT_PER_MINUTE, burst=60)
        await self.channel_layer.group_add(DESK_QUEUE_GROUP, self.channel_name)
        self.joined = True
        notify.ensure_running()

    async def disconnect(self, code: int) -> None:
        """Stop following every conversation; the agent's availability lapses with its heartbeat."""
        if self.queue_refresher is not None:
            self.queue_refresher.cancel()
        self.closing = True  # a frame still running follows no new conversation (see `_watch`)
        lanes = list(getattr(self, "lanes", {}).values())
        if lanes:  # what the agent sent is still stored (unacked: the desk resends it)
            _, late = await asyncio.wait(lanes, timeout=LANE_DRAIN_S)
            for lane in late:
                lane.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for session_id in list(self.watched):
            await self._unwatch(session_id)
        if self.joined:
            await self.channel_layer.group_discard(DESK_QUEUE_GROUP, self.channel_name)
            self.joined = False

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Validate one frame and run its handler; a bad frame gets one `error` frame naming the problem.

        Frames about one conversation run in order, in that conversation's lane, beside the
        frames about other conversations: an agent answering twenty visitors must not wait for
        each answer's database write before the next one starts (each waits its turn on the
        process's one database thread, tens of milliseconds under load).
        """
        if self.user is None:
            return
        frame: dict[str, Any] = {}
        try:
            if text_data is None:
                raise ClientError(protocol.INVALID_FRAME, "Send JSON text frames.")
            if len(text_data) > MAX_FRAME_CHARS:
                raise ClientError(protocol.INVALID_FRAME, f"Frames are limited to {MAX_FRAME_CHARS} characters.")
            wait = self.frame_bucket.take()  # before decoding: a flood costs no parsing
            if wait is not None:
                frame = _named(text_data)
                raise ClientError(protocol.RATE_LIMITED, "Too many frames; slow down.", retry_after=wait)
            frame = protocol.decode_frame(text_data, desk_protocol.FRAME_FIELDS, {})
            if self.in_flight >= MAX_IN_FLIGHT:
                raise ClientError(protocol.RATE_LIMITED, "Too many frames waiting; slow down.", retry_after=1)
            if "session_id" in frame:  # one spelling of each id, whatever the desk sent
                frame["session_id"] = str(services.public_id(frame["session_id"]))
            await self._heartbeat()
        except ClientError as error:
            await self._refuse(error, frame)
            return
        except Exception:
            logger.exception("Unhandled error in desk consumer")
            await self.send_json(frames.error(protocol.INTERNAL_ERROR, "Something went wrong on our side."))
            return
        if "session_id" not in frame:
            await self._run(frame)
            return
        session_id = frame["session_id"]
        previous = self.lanes.get(session_id)
        self.in_flight += 1
        lane = asyncio.create_task(self._in_lane(previous, frame))
        self.lanes[session_id] = lane
        lane.add_done_callback(lambda task: self._lane_done(session_id, task))

    async def _in_lane(self, previous: asyncio.Task[None] | None, frame: dict[str, Any]) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # its outcome is its own: this frame runs whatever it was
        async with self.running:  # a few at once: one busy desk must not crowd out the chat's writes
            await self._run(frame)

    def _lane_done(self, session_id: str, task: asyncio.Task[None]) -> None:
        self.in_flight -= 1
        if self.lanes.get(session_id) is task:
            del self.lanes[session_id]

    async def _run(self, frame: dict[str, Any]) -> None:
        try:
            await getattr(self, "handle_" + frame["type"])(frame)
        except ClientError as error:
            await self._refuse(error, frame)
        except Exception:
            logger.exception("Unhandled error in desk consumer")
            error = ClientError(protocol.INTERNAL_ERROR, "Something went wrong on our side.")
            await self.send_json(_about(error, frame))

    async def _refuse(self, error: ClientError, frame: dict[str, Any]) -> None:
        client_warnings.warning(
            logger, "desk", str(self.user.pk), "Desk of user %s: %s: %s", self.user.pk, error.code, error.detail
        )
        await self.send_json(_about(error, frame))

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Call the handler for `message["type"]`, without Channels' per-message thread hop.

        Channels' dispatch runs `aclose_old_connections` on the database thread before every
        message; every database unit here goes through `database_sync_to_async`, which closes
        stale connections itself (as the chat consumer does). An unknown message is logged.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            logger.warning("Ignored a channel-layer message of unknown type %r", message.get("type"))
            return
        await handler(message)

    # --- agent frames -------------------------------------------------------------------------
    async def handle_hello(self, frame: dict[str, Any]) -> None:
        lists = await _queue(agent=self.user)
        agent = desk_selectors.agent_info(self.user, available=self.available)
        await self.send_json(desk_protocol.welcome(agent=agent, lists=lists))
        for item in lists["mine"]:  # an agent's own conversations are followed live from the start
            await self._watch(item["session_id"])

    async def handle_ping(self, frame: dict[str, Any]) -> None:
        await self.send_json(desk_protocol.pong())

    async def handle_availability(self, frame: dict[str, Any]) -> None:
        presence = await _presence_set(user=self.user, available=frame["available"])
        self.available, self.presence_written = presence.available, time.monotonic()
        await self.send_json(desk_protocol.availability(available=presence.available))

    async def handle_open(self, frame: dict[str, Any]) -> None:
        await self._show(frame["session_id"])

    async def handle_history(self, frame: dict[str, Any]) -> None:
        """Earlier messages of a conversation than the desk has (a long one did not fit one frame)."""
        messages, truncated = await _history(session_id=frame["session_id"], before_seq=frame["before_seq"])
        await self.send_json(
            desk_protocol.history(session_id=frame["session_id"], messages=messages, truncated=truncated)
        )

    async def handle_claim(self, frame: dict[str, Any]) -> None:
        changed = await actions.claim(session_id=frame["session_id"], agent=self.user)
        session_id = str(changed.session.public_id)
        await self._watch(session_id)  # following it before the ack: nothing said after the ack is missed
        await self.send_json(desk_protocol.claim_ack(session_id=session_id))
        await self._show(session_id)

    async def handle_release(self, frame: dict[str, Any]) -> None:
        await actions.release(session_id=frame["session_id"], agent=self.user)
        await self.send_json(desk_protocol.action_ack("release", session_id=frame["session_id"]))

    async def handle_transfer(self, frame: dict[str, Any]) -> None:
        await actions.transfer(session_id=frame["session_id"], agent=self.user, to_user_id=frame["agent_id"])
        await self.send_json(desk_protocol.action_ack("transfer", session_id=frame["session_id"]))

    async def handle_handback(self, frame: dict[str, Any]) -> None:
        await actions.handback(session_id=frame["session_id"], agent=self.user)
        await self.send_json(desk_protocol.action_ack("handback", session_id=frame["session_id"]))

    async def handle_resolve(self, frame: dict[str, Any]) -> None:
        await actions.resolve(session_id=frame["session_id"], agent=self.user)
        await self.send_json(desk_protocol.action_ack("resolve", session_id=frame["session_id"]))

    async def handle_message(self, frame: dict[str, Any]) -> None:
        """Store (durable before the ack, idempotent on `client_id`), then every visitor tab sees it."""
        message = await actions.send_message(
            session_id=frame["session_id"], agent=self.user, text=frame["text"], client_id=frame["client_id"]
        )
        await self.send_json(
            desk_protocol.message_ack(
                session_id=frame["session_id"],
                client_id=frame["client_id"],
                seq=message.seq,
                message_id=str(message.public_id),
            )
        )

    async def handle_note(self, frame: dict[str, Any]) -> None:
        """An internal note: stored, then shown on every desk that has the conversation open."""
        stored = await _note_add(session_id=frame["session_id"], agent=self.user, text=frame["text"])
        note = desk_protocol.note(
            session_id=frame["session_id"],
            author=stored.author_name,
            text=stored.text,
            created_at=iso(stored.created_at),
        )
        await self.channel_layer.group_send(
            desk_session_group(frame["session_id"]), {"type": "desk.frame", "frame": note}
        )
        if frame["session_id"] not in self.watched:
            await self.send_json(note)

    async def handle_typing(self, frame: dict[str, Any]) -> None:
        await actions.typing(session_id=frame["session_id"], agent=self.user, state=frame["state"])

    # --- channel-layer messages ---------------------------------------------------------------
    async def desk_queue(self, message: dict[str, Any]) -> None:
        """The queue changed somewhere: re-read this agent's view of it, soon, once per burst.

        The first change is read at once; changes arriving while a read is under way or within
        QUEUE_REFRESH_S after it are folded into one more read; the desks of a process share
        the read of the lists they show alike (`desk.lists`) and each reads only its own. The
        read runs beside the frame loop, never in it: 200 claims in a row used to cost every desk
        200 reads of the queue, one after the other, on the process's one database thread (8 ms
        each), and every visitor message and agent answer queued behind them.
        """
        self.queue_changed_at = time.monotonic()
        self.queue_dirty = True
        if self.queue_refresher is None or self.queue_refresher.done():
            self.queue_refresher = asyncio.create_task(self._refresh_queue())

    async def _refresh_queue(self) -> None:
        while self.queue_dirty:
            self.queue_dirty = False
            try:
                shared = await desk_lists.shared().get(since=self.queue_changed_at)
                own = await _mine(agent=self.user)
                await self.send_json(desk_protocol.queue_updated(lists=desk_selectors.with_mine(shared, own)))
            except Exception:
                logger.exception("Could not refresh the queue of a desk; retrying")
                self.queue_dirty = True  # the change is still unseen: read again, a little later
                await asyncio.sleep(QUEUE_RETRY_S)
            await asyncio.sleep(QUEUE_REFRESH_S)

    async def desk_frame(self, message: dict[str, Any]) -> None:
        """For the desks of one conversation: the visitor's typing, a note."""
        await self.send_json(message["frame"])

    async def chat_frames(self, event: dict[str, Any]) -> None:
        """A followed conversation's frames from another process (this process's come by the hub)."""
        if event.get("process") == PROCESS_ID:
            return
        await self._forward(event)

    async def chat_event(self, message: dict[str, Any]) -> None:
        """Event copies are for subscribers in the session's processes; the desk shows frames."""

    async def chat_snapshot(self, message: dict[str, Any]) -> None:
        """Snapshots are for visitor tabs that joined mid-reply; the desk reads the transcript."""

    # --- following conversations --------------------------------------------------------------
    async def _show(self, session_id: str) -> None:
        """Follow the conversation, then read it: a message said in between arrives live (and may
        be in the transcript too: the desk shows each seq once)."""
        following = session_id not in self.watched
        await self._watch(session_id)
        try:
            payload = await _conversation(session_id=session_id)
        except ClientError:  # not_found: nothing to follow
            if following:
                await self._unwatch(session_id)
            raise
        await self.send_json(desk_protocol.conversation(payload))

    async def _watch(self, session_id: str) -> None:
        async with self.watching:  # lanes run side by side: one change of the followed set at a time
            if session_id in self.watched or self.closing:
                return
            if len(self.watched) >= MAX_WATCHED:
                await self._unwatch_locked(next(iter(self.watched)))
            await self._watch_locked(session_id)

    async def _unwatch(self, session_id: str) -> None:
        async with self.watching:
            if session_id in self.watched:
                await self._unwatch_locked(session_id)

    async def _watch_locked(self, session_id: str) -> None:
        group = session_group(session_id)
        await self.channel_layer.group_add(group, self.channel_name)
        await self.channel_layer.group_add(desk_session_group(session_id), self.channel_name)
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        hub.join(group, inbox)  # after the layer group: see `delivery.has_remote_members`
        self.watched[session_id] = (inbox, asyncio.create_task(self._pump(inbox)))

    async def _unwatch_locked(self, session_id: str) -> None:
        inbox, pump = self.watched.pop(session_id)
        group = session_group(session_id)
        hub.leave(group, inbox)
        pump.cancel()
        await self.channel_layer.group_discard(group, self.channel_name)
        await self.channel_layer.group_discard(desk_session_group(session_id), self.channel_name)

    async def _pump(self, inbox: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            await self._forward(await inbox.get())

    async def _forward(self, event: dict[str, Any]) -> None:
        session_id = session_of_group(event.get("group") or "")
        if session_id is None or session_id not in self.watched:
            return
        for frame in event.get("frames", []):
            kind = frame.get("type", "")
            if kind.startswith("_") or kind == "chat.snapshot":
                continue
            clean = frames.client_view(frame)
            if kind == "reply.delta":
                clean["offset"] = frame.get("_offset")
            elif kind == "reply.end" and "_text" in frame:
                clean["text"] = frame["_text"]  # the whole reply: a desk that missed a delta is whole again
            await self.send_json(desk_protocol.session_frame(session_id, clean))

    async def send_json(self, data: dict[str, Any]) -> None:
        """Send one JSON frame."""
        await self.send(text_data=json.dumps(data, ensure_ascii=False, separators=(",", ":")))

    async def _heartbeat(self) -> None:
        """Any frame proves the desk is open: `seen_at` is refreshed, at most every PRESENCE_WRITE_S."""
        now = time.monotonic()
        if now - self.presence_written >= PRESENCE_WRITE_S:
            self.presence_written = now
            presence = await _presence_set(user=self.user)
            self.available = presence.available
