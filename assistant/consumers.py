"""The `/ws/chat/` websocket: protocol handling only.

Lifecycle (`connect`, `disconnect`), then `receive` dispatching to `handle_<type>`, then the
channel-layer handlers. Work goes to services (one database unit each) and to the reply task
in `assistant.replies`, so the receive loop is never blocked by a reply: `stop` and `ping` are answered
while it streams. See docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings

from assistant import events, protocol, services, turns
from assistant.access import client_ip, header, origin_allowed, verify_identity
from assistant.delivery import PROCESS_ID, Frame, hub, publish, relay
from assistant.feedback import VisitorFeedback
from assistant.groups import session_group
from assistant.handoff import escalation
from assistant.handoff.visitor import VisitorHandoff
from assistant.protocol import ClientError, frames
from assistant.ratelimit import TokenBucket, connections, ip_window_take
from assistant.replies import orphan_end_frame, orphan_ended
from assistant.replies.runtime import request_snapshot, request_stop
from assistant.selectors import iso, session_by_public_id, user_message_by_client_id
from project import runtime
from project.logs import client_warnings

if TYPE_CHECKING:
    from assistant.models import ChatMessage, ChatSession

logger = logging.getLogger(__name__)

_session_open = database_sync_to_async(services.session_open)
_session_materialize = database_sync_to_async(services.session_materialize)
_session_by_public_id = database_sync_to_async(session_by_public_id)
_turn_begin = database_sync_to_async(services.turn_begin)
_session_end = database_sync_to_async(services.session_end)
_user_message_by_client_id = database_sync_to_async(user_message_by_client_id)


#: The consumer's own frame limit is a backstop for ASGI servers other than `manage.py serve`,
#: whose protocol (project/server.py) enforces the limit before a frame is queued. Frames reach
#: the consumer later and more bunched than they were sent, so its burst is twice as large.
BACKSTOP_BURST_FACTOR = 2


class ChatConsumer(VisitorHandoff, VisitorFeedback, AsyncWebsocketConsumer):
    """One visitor connection to one chat session."""

    session: ChatSession | None = None  # pending (no row yet) while `session.pk` is None
    group: str | None = None
    ip: str = "unknown"
    counted = False
    released = False
    closing = False
    #: Whether `SessionOpened` was published for this connection (then `ConnectionClosed` is too).
    observed = False

    # --- plumbing --------------------------------------------------------------------------
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Channels' own loop, plus a third source: the local inbox.

        Replies generated in this process put their frames in `inbox` (see `delivery.hub`)
        instead of a channel-layer round trip. Dispatch stays one message at a time, so a
        reply's frames never interleave with a handler (a `welcome` is always sent first).
        """
        self.scope = scope
        self.inbox: asyncio.Queue[Frame] = asyncio.Queue()
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        if self.channel_layer is None:
            raise RuntimeError("The chat consumer needs a channel layer (CHANNEL_LAYERS).")
        self.channel_name = await self.channel_layer.new_channel()
        self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        self.base_send = send
        try:
            await await_many_dispatch([receive, self.channel_receive, self.inbox.get], self.dispatch)
        except StopConsumer:
            pass
        finally:
            # Whatever ended the connection (a handler that raised, a client gone mid-`hello`,
            # the server cancelling us at shutdown), what it holds is given back here.
            await self._release()

    async def dispatch(self, message: Frame) -> None:
        """Call the handler for `message["type"]`.

        Channels' dispatch also runs `aclose_old_connections` (a thread hop) before every
        message; here every database unit goes through `database_sync_to_async`, which already
        closes stale connections around itself, so that hop is skipped.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            # Another version's message (a rolling upgrade): not a reason to drop the visitor.
            logger.warning("Ignored a channel-layer message of unknown type %r", message.get("type"))
            return
        await handler(message)

    # --- lifecycle -------------------------------------------------------------------------
    async def connect(self) -> None:
        """Refuse disallowed origins (4403) and IPs over the connection limit (4429)."""
        self.ip = client_ip(self.scope)
        # Accept first so the close code reaches the browser (a rejected handshake shows as 1006).
        if not origin_allowed(self.scope):
            logger.info("Refused websocket from origin %r", header(self.scope, b"origin"))
            await self._refuse(protocol.CLOSE_REFUSED)
            return
        if not connections.acquire(self.ip, settings.MAX_CONNECTIONS_PER_IP):
            await self._refuse(protocol.CLOSE_TOO_MANY_CONNECTIONS)
            return
        self.counted = True
        self.streams: dict[int, int] = {}
        self.awaiting_snapshot: dict[int, list[Frame]] = {}
        self.message_bucket = TokenBucket(
            per_minute=settings.CHAT_RATE_LIMIT_PER_MINUTE, burst=settings.CHAT_RATE_LIMIT_BURST
        )
        self.frame_bucket = TokenBucket(
            per_minute=settings.CHAT_FRAME_RATE_LIMIT_PER_MINUTE,
            burst=settings.CHAT_FRAME_BURST * BACKSTOP_BURST_FACTOR,
        )
        self.event_bucket = TokenBucket(
            per_minute=settings.CHAT_EVENT_RATE_LIMIT_PER_MINUTE,
            burst=max(1, settings.CHAT_EVENT_RATE_LIMIT_PER_MINUTE // 3),
        )
        await self.accept()

    async def _refuse(self, code: int) -> None:
        """Accept, then close with `code`; frames the client sends meanwhile are ignored."""
        self.closing = True
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        """Give back what the connection holds; a reply in progress carries on and is stored."""
        await self._release()

    async def _release(self) -> None:
        """Release the IP slot, hub and group membership, and tell subscribers: once, whatever raised.

        The synchronous parts come first, so that even a second cancellation while leaving the
        layer group cannot keep the slot.
        """
        if self.released:
            return
        self.released = True
        if self.counted:
            connections.release(self.ip)
            self.counted = False
        group, self.group = self.group, None
        if group is not None:
            hub.leave(group, self.inbox)  # hub first, layer group second: see `delivery.has_remote_members`
        if self.observed and self.session is not None:
            self.observed = False
            events.publish(
                events.ConnectionClosed(
                    session_pk=self.session.pk, session_id=str(self.session.public_id), connection=self.channel_name
                )
            )
        if group is not None:
            try:
                await asyncio.shield(self.channel_layer.group_discard(group, self.channel_name))
            except Exception:
                logger.warning("Could not leave %s; the layer expires the membership", group)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Validate one frame and dispatch it to `handle_<type>`; errors become error frames."""
        if self.closing:
            return  # closed for a policy violation: frames already on their way are ignored
        try:
            if text_data is None:
                raise ClientError(protocol.INVALID_FRAME, "Binary frames are not supported; send JSON text frames.")
            if len(text_data) > settings.CHAT_MAX_FRAME_BYTES // 4 and (
                len(text_data.encode("utf-8", "surrogatepass")) > settings.CHAT_MAX_FRAME_BYTES
            ):
                # `manage.py serve` has daphne refuse these before buffering them; this
                # guards other ASGI servers.
                await self._close_for(protocol.CLOSE_FRAME_TOO_BIG, "a frame over CHAT_MAX_FRAME_BYTES")
                return
            if self.frame_bucket.take() is not None:
                await self._close_for(protocol.CLOSE_POLICY_VIOLATION, "frames faster than the frame limit")
                return
            frame = protocol.decode_frame(text_data)
            frame_type = frame["type"]
            if self.session is None and frame_type not in {"hello", "ping"}:
                raise ClientError(protocol.HELLO_REQUIRED, "Send 'hello' before any other frame.")
            await getattr(self, "handle_" + frame_type)(frame)
        except ClientError as error:
            self._warn(f"{error.code}: {error.detail}")
            await self.send_frame(dict(error.frame()))
        except Exception:
            logger.exception("Unhandled error in chat consumer")
            await self.send_frame(frames.error(protocol.INTERNAL_ERROR, "Something went wrong on our side."))

    async def _close_for(self, code: int, reason: str) -> None:
        """Close for a policy reason: one WARNING line, and nothing more is read from the client."""
        self.closing = True
        self._warn(f"closed with {code}: {reason}")
        await self.close(code=code)

    def _warn(self, what: str) -> None:
        """One WARNING line for a visitor's bad input, at most one a minute per client address."""
        client_warnings.warning(logger, "chat", self.ip, "Chat client %s: %s", self.ip, protocol.printable(what, 300))

    async def send_frame(self, frame: Mapping[str, Any]) -> None:
        """Send one JSON frame to this connection.

        Text that is not valid Unicode (a lone surrogate, say from a vendor's stream) cannot be
        encoded as UTF-8; such a frame is sent with ASCII escapes instead of killing the socket.
        """
        try:
            await self.send(text_data=json.dumps(frame, ensure_ascii=False, separators=(",", ":")))
        except UnicodeEncodeError:
            await self.send(text_data=json.dumps(frame, separators=(",", ":")))

    # --- client frames ---------------------------------------------------------------------
    async def handle_hello(self, frame: dict[str, Any]) -> None:
        """Start or resume the session, join its group, send `welcome` with the history.

        A new session stays pending (no row) until the visitor sends something to keep; see
        `services.session_open` and `_materialize`.
        """
        if self.session is not None:
            raise ClientError(protocol.INVALID_FRAME, "'hello' was already received on this connection.")
        identity = verify_identity(frame.get("identity"))
        if settings.WIDGET_IDENTITY_REQUIRED and identity is None:
            await self._close_for(protocol.CLOSE_REFUSED, "no valid signed identity (WIDGET_IDENTITY_REQUIRED)")
            return
        if frame.get("token") and not frame.get("session_id"):
            raise ClientError(protocol.INVALID_FIELD, "'token' needs 'session_id'.", field="session_id")
        page = frame.get("page") or {}
        context = services.PageContext(
            url=page.get("url", ""),
            title=page.get("title", ""),
            referrer=page.get("referrer", ""),
            locale=frame.get("locale", ""),
            user_agent=header(self.scope, b"user-agent") or "",
        )
        resuming = protocol.is_uuid(frame.get("session_id"))
        if resuming:
            # Join before reading history, so nothing published in between is missed.
            await self._join(session_group(frame["session_id"]))
        if frame.get("session_id") is None:
            opened = services.session_open(
                session_id=None, token=None, last_seq=0, identity=identity, page=context
            )  # touches no database: a new session is pending
        else:
            try:
                opened = await _session_open(
                    session_id=frame["session_id"],
                    token=frame.get("token"),
                    last_seq=frame.get("last_seq", 0),
                    identity=identity,
                    page=context,
                )
            except ClientError:
                await self._leave()
                raise
        self.session = opened.session
        if not resuming:
            await self._join(session_group(opened.session.public_id))
        if opened.session.pk is not None:
            self._observe(opened.session, created=False)
        await self.send_frame(
            frames.welcome(
                session_id=str(opened.session.public_id),
                status=opened.session.status,
                title=opened.session.title,
                history=opened.history,
                history_truncated=opened.history_truncated,
                config={
                    "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
                    "quick_replies": list(settings.ASSISTANT_QUICK_REPLIES),
                    "greeting": settings.ASSISTANT_GREETING,
                    "ask_contact": settings.WIDGET_ASK_CONTACT,
                },
                token=opened.token,
            )
        )
        for item in opened.streaming:
            # The stored text is a checkpoint; ask the generating process for the rest.
            self.streams[item["seq"]] = len(item["text"])
            await self._request_snapshot(item["seq"], [])
        await self.send_handoff_status(opened.session)
        for item in opened.interrupted:  # replies of a dead process, ended just now: tell every tab
            self.streams[item["seq"]] = len(item["text"])
        if opened.interrupted:
            await publish(self.group, [orphan_end_frame(item) for item in opened.interrupted])
            for item in opened.interrupted:
                await relay(orphan_ended(opened.session, item))

    async def _join(self, group: str) -> None:
        """Join a session's group: the layer group before the hub (see `delivery.has_remote_members`)."""
        self.group = group  # set first: `_release` must leave it even if the join is interrupted
        await self.channel_layer.group_add(group, self.channel_name)
        hub.join(group, self.inbox)

    async def _leave(self) -> None:
        """Leave the session's group (a `hello` that failed)."""
        group, self.group = self.group, None
        if group is not None:
            hub.leave(group, self.inbox)
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _current(self) -> ChatSession:
        """The session, with its row if another tab (maybe on another process) has written it.

        A tab that resumed a pending session learns of its row here, on its first frame that
        needs one, so its `stop`, `feedback` and `end` reach the conversation the other tab began.
        """
        session = self.session
        assert session is not None
        if session.pk is None:
            stored = await _session_by_public_id(public_id=session.public_id)
            if stored is not None:
                await self._adopt(stored, created=False)
        return self.session

    async def _materialize(self, *, client_id: str | None = None) -> ChatSession:
        """The session's row, written now if the session is still pending.

        Writing one counts against CHAT_SESSIONS_PER_IP_PER_HOUR, so one address cannot fill the
        database with conversations (`hello` alone writes nothing at all).
        """
        session = await self._current()
        if session.pk is not None:
            return session
        wait = await ip_window_take(self.ip, settings.CHAT_SESSIONS_PER_IP_PER_HOUR, kind="sessions", window_s=3600)
        if wait is not None:
            raise ClientError(
                protocol.RATE_LIMITED,
                "Too many new conversations from your network; try again later.",
                retry_after=wait,
                client_id=client_id,
            )
        await self._adopt(*await _session_materialize(session=session))
        return self.session

    async def _adopt(self, session: ChatSession, created: bool) -> None:
        """Take the session's row as this connection's session, and tell subscribers."""
        self.session = session
        self._observe(session, created=created)

    def _observe(self, session: ChatSession, *, created: bool) -> None:
        """Publish `SessionOpened` for this connection (a session with a row)."""
        self.observed = True
        events.publish(
            events.SessionOpened(
                session_pk=session.pk,
                session_id=str(session.public_id),
                connection=self.channel_name,
                created=created,
                started_at=session.created_at.isoformat(),
                user_type=session.user_type,
            )
        )

    async def handle_message(self, frame: dict[str, Any]) -> None:
        """Store the visitor message (then `ack`) and start the reply task."""
        assert self.session is not None and self.group is not None
        text: str = frame["text"]
        client_id: str = frame["client_id"]
        if runtime.current().stopping:  # shutting down: the client sends it again elsewhere
            await self.send_frame(dict(protocol.restarting_error(client_id)))
            return
        if not text.strip():
            raise ClientError(protocol.EMPTY_MESSAGE, "The message is empty.", client_id=client_id)
        limit = settings.CHAT_MAX_MESSAGE_CHARS
        if len(text) > limit:
            raise ClientError(
                protocol.MESSAGE_TOO_LONG,
                f"The message is {len(text)} characters; the limit is {limit}.",
                client_id=client_id,
            )
        wait = self.message_bucket.take()
        if wait is None:
            wait = await ip_window_take(self.ip, settings.CHAT_IP_RATE_LIMIT_PER_MINUTE)
        if wait is not None:
            # A resend of a message that was stored (its ack lost) still gets its ack.
            stored = (
                await _user_message_by_client_id(session=self.session, client_id=client_id)
                if self.session.pk is not None
                else None
            )
            if stored is not None:
                await self.send_ack(stored)
                return
            raise ClientError(
                protocol.RATE_LIMITED, "You are sending messages too quickly.", retry_after=wait, client_id=client_id
            )
        try:
            session = await self._materialize(client_id=client_id)
            turn = await _turn_begin(session=session, text=text, client_id=client_id)
        except ClientError:
            self.message_bucket.refund()
            raise
        user = turn.user_message
        await self.send_ack(user)
        if turn.duplicate:
            self.message_bucket.refund()
            return
        if turn.assistant_message is not None:
            self.streams[turn.assistant_message.seq] = 0
        await turns.follow(session=session, turn=turn, group=self.group, origin=self.channel_name)

    async def send_ack(self, message: ChatMessage) -> None:
        """Tell this connection its message is stored."""
        await self.send_frame(
            frames.ack(
                client_id=message.client_id,
                seq=message.seq,
                message_id=str(message.public_id),
                created_at=iso(message.created_at),
                asks_for_person=escalation.get().asks_for_person(message.text),
            )
        )

    async def handle_stop(self, frame: dict[str, Any]) -> None:
        """Stop the reply being generated, in this process or another; idempotent."""
        assert self.session is not None and self.group is not None
        if (await self._current()).pk is None:
            return  # still pending: no reply anywhere
        await request_stop(self.session.pk, self.session.public_id)

    async def handle_end(self, frame: dict[str, Any]) -> None:
        """Close the session; every tab gets `ended` (a pending session has nothing to close)."""
        assert self.session is not None and self.group is not None
        session = await self._current()
        if session.pk is not None:
            await _session_end(session=session)
            await self.abandon_handoff(session)
        await publish(self.group, [frames.ended()])
        if session.pk is not None:
            await relay(events.SessionEnded(session_pk=session.pk, session_id=str(session.public_id)))

    async def handle_ping(self, frame: dict[str, Any]) -> None:
        """Keep-alive."""
        await self.send_frame(frames.pong())

    # --- channel layer ---------------------------------------------------------------------
    async def chat_frames(self, event: dict[str, Any]) -> None:
        """Frames published to the session: forward them, filling stream gaps."""
        if event.get("process") == PROCESS_ID:
            return  # the layer copy of frames this process already delivered to `inbox`
        from_self = event.get("origin") == self.channel_name
        for frame in event["frames"]:
            if frame.get("_others") and from_self:
                continue
            kind = frame["type"]
            if kind.startswith("_"):
                continue  # private to other versions' processes (a rolling upgrade): never for clients
            if kind == "reply.start":
                self.streams.setdefault(frame["seq"], 0)
            elif kind == "reply.delta":
                seq = frame["seq"]
                if seq in self.awaiting_snapshot:
                    self.awaiting_snapshot[seq].append(frame)
                elif frame["_offset"] > self.streams.get(seq, 0):
                    await self._request_snapshot(seq, [frame])  # a layer message was lost
                else:
                    await self._send_delta(seq, frame["_offset"], frame["text"])
                continue
            elif kind == "reply.end":
                seq = frame["seq"]
                self.awaiting_snapshot.pop(seq, None)
                await self._send_delta(seq, 0, frame["_text"])
                self.streams.pop(seq, None)
            await self.send_frame(frames.client_view(frame))

    async def chat_snapshot(self, event: dict[str, Any]) -> None:
        """The text so far of a reply this connection joined mid-stream."""
        seq = event["seq"]
        buffered = self.awaiting_snapshot.pop(seq, None)
        if buffered is None:
            return
        await self._send_delta(seq, 0, event["text"])
        for frame in buffered:
            await self._send_delta(seq, frame["_offset"], frame["text"])

    async def chat_event(self, message: dict[str, Any]) -> None:
        """A chat event from another process: hand it to this process's subscribers (once)."""
        if message.get("process") != PROCESS_ID:
            events.receive_copy(message)

    async def _request_snapshot(self, seq: int, buffered: list[Frame]) -> None:
        """Hold this reply's deltas until its generating process sends the text so far."""
        assert self.session is not None
        self.awaiting_snapshot[seq] = buffered
        await request_snapshot(self.session.pk, self.session.public_id, seq, self.channel_name, self.inbox)

    async def _send_delta(self, seq: int, offset: int, text: str) -> None:
        """Send the part of `text` (starting at `offset` of the reply) this client lacks."""
        position = self.streams.get(seq, 0)
        end = offset + len(text)
        if offset > position or end <= position:
            return  # a gap (filled later by the snapshot or reply.end) or already sent
        self.streams[seq] = end
        await self.send_frame(frames.reply_delta(seq=seq, text=text[position - offset :]))
