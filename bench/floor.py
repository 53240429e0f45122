"""The least a durable chat turn can cost on this stack: the benchmark's floor.

Per visitor message it parses the JSON frame, commits the message with one hand-written
INSERT (no ORM, no checks, no idempotency, no reply row) in one database unit, then sends the
four frames of a turn (`ack`, `reply.start`, `reply.delta`, `reply.end`) with a fixed reply.
No knowledge search, no channel layer, no rate limits. Whatever Parley's own turn costs above
this is the price of its features; what this costs above an echo is the price of the stack.
"""

from __future__ import annotations

import json
import uuid

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import connection
from django.utils import timezone

REPLY = "This is a fixed reply of a few words, the same size as one chunk."


def _create_session() -> int:
    from assistant.models import ChatSession  # imported late: bench.asgi sets Django up first

    return ChatSession.objects.create(token_hash=uuid.uuid4().hex).pk


def _store(session_pk: int, seq: int, text: str, client_id: str) -> None:
    """One INSERT in autocommit mode: durable when it returns."""
    from assistant.models import ChatMessage

    quote = connection.ops.quote_name
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    columns = [
        "public_id", "session_id", "seq", "role", "text", "status", "client_id", "provider", "model",
        "cached", "error_code", "knowledge_sections", "author_name", "created_at", "updated_at",
    ]  # fmt: skip
    values = [
        uuid.uuid4().hex if connection.vendor == "sqlite" else uuid.uuid4(),  # as UUIDField stores it
        session_pk, seq, ChatMessage.Role.USER, text, ChatMessage.Status.COMPLETE, client_id, "", "",
        False, "", "[]", "", now, now,
    ]  # fmt: skip
    sql = (
        f"INSERT INTO {quote(ChatMessage._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)


_create_session_unit = database_sync_to_async(_create_session)
_store_unit = database_sync_to_async(_store)


class FloorConsumer(AsyncWebsocketConsumer):
    """Commit each message with one statement, then send a one-chunk turn."""

    async def connect(self) -> None:
        """Each connection is a session of its own (so seqs need no locking here)."""
        self.session_pk = await _create_session_unit()
        self.seq = 0
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """`{"type": "message", "text", "client_id"}` → ack, reply.start, reply.delta, reply.end."""
        frame = json.loads(text_data or "{}")
        self.seq += 2
        user_seq = self.seq - 1
        await _store_unit(self.session_pk, user_seq, frame["text"], frame["client_id"])
        message_id = str(uuid.uuid4())
        for out in (
            {"type": "ack", "client_id": frame["client_id"], "seq": user_seq, "message_id": message_id},
            {"type": "reply.start", "seq": self.seq, "message_id": message_id, "reply_to": user_seq},
            {"type": "reply.delta", "seq": self.seq, "text": REPLY},
            {"type": "reply.end", "seq": self.seq, "message_id": message_id, "status": "complete"},
        ):
            await self.send(text_data=json.dumps(out, separators=(",", ":")))
