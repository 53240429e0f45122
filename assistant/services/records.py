"""What the chat's writes record for durable subscribers (`assistant.events.record`), built from rows.

Every builder here runs inside the write's transaction, and only after `events.recording(...)`
said a subscriber wants the record: with no webhook endpoint active nothing here runs at all.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from django.db import connection

from assistant import events
from assistant.models import ChatMessage, ChatSession
from project import sql as shared

if TYPE_CHECKING:
    from assistant.services.turns import ProviderCallRecord, ReplyOutcome

#: Statuses of a reply that ended as its provider (or the visitor's stop) meant it to.
COMPLETED = frozenset({ChatMessage.Status.COMPLETE, ChatMessage.Status.STOPPED})


def replies_wanted() -> bool:
    """Whether a finished reply is recorded now: as a message, or as a reply (`reply_ended`)."""
    return events.recording(events.ReplyFinished) or events.recording(events.MessageCreated)


def conversation_started(row: ChatSession) -> events.ConversationStarted:
    """The conversation's row was just written."""
    return events.ConversationStarted(
        session_id=str(row.public_id),
        occurred_at=row.created_at,
        source=row.source,
        user_type=row.user_type,
        user_id=row.external_user_id,
        user_name=row.external_user_name,
        user_email=row.external_user_email,
        locale=row.locale,
        page_url=row.page_url,
    )


def message_created(
    message: ChatMessage, *, session_id: str, reply_to: int | None = None, retry_of: int | None = None
) -> events.MessageCreated:
    """A stored message (its `created_at` already set: `sql.insert_message` stamps it)."""
    return events.MessageCreated(
        session_id=session_id,
        occurred_at=message.created_at,
        message_id=str(message.public_id),
        seq=message.seq,
        role=message.role,
        text=message.text,
        status=message.status,
        created_at=message.created_at,
        client_id=(message.client_id or "") if message.role == ChatMessage.Role.USER else "",
        author_name=message.author_name if message.role == ChatMessage.Role.AGENT else "",
        reply_to=reply_to,
        retry_of=retry_of,
    )


@dataclass(frozen=True, slots=True)
class _Placeholder:
    """What a reply's records need that its outcome does not say, known when its row was written."""

    public_id: uuid.UUID
    seq: int
    created_at: datetime
    session_id: str
    reply_to: int | None
    retry_of: int | None


#: Replies started in this process while something records them, by message pk, so that
#: `reply_ended` needs no read. Bounded: a reply finished elsewhere (or never) falls out.
_placeholders: OrderedDict[int, _Placeholder] = OrderedDict()
_placeholders_lock = threading.Lock()
MAX_PLACEHOLDERS = 10_000


def reply_started(message: ChatMessage, *, session_id: str, reply_to: int | None, retry_of: int | None = None) -> None:
    """Remember a reply placeholder just written (`turn_begin`, `reply_failover`) for `reply_ended`."""
    known = _Placeholder(message.public_id, message.seq, message.created_at, session_id, reply_to, retry_of)
    with _placeholders_lock:
        _placeholders[message.pk] = known
        if len(_placeholders) > MAX_PLACEHOLDERS:
            _placeholders.popitem(last=False)


def _placeholder(message_pk: int) -> _Placeholder | None:
    """The reply's ids and seqs: remembered by `reply_started`, else one read."""
    with _placeholders_lock:
        known = _placeholders.pop(message_pk, None)
    if known is not None:
        return known
    rows = shared.execute(_reply_sql(connection.vendor), [message_pk])
    if not rows:
        return None
    public_id, seq, created, session_public_id, reply_to, retry_of = rows[0]
    return _Placeholder(_uuid(public_id), seq, _datetime(created), str(_uuid(session_public_id)), reply_to, retry_of)


def reply_ended(
    *, message_pk: int, outcome: ReplyOutcome, calls: Sequence[ProviderCallRecord], now: datetime, announce: bool = True
) -> list[events.Record]:
    """A reply's final state as stored by `reply_finish` (or a cut one by `reply_failover`).

    What the outcome does not say (the message's public ids and seqs) comes from `reply_started`
    in this process, else from one read. `announce` False (a failover's cut message): only the
    message itself, no `ReplyFinished` (the reply goes on in its replacement).
    """
    known = _placeholder(message_pk)
    if known is None:
        return []
    public_id, seq, created_at, session_id = known.public_id, known.seq, known.created_at, known.session_id
    reply_to, retry_of = known.reply_to, known.retry_of
    made: list[events.Record] = [
        events.MessageCreated(
            session_id=session_id,
            occurred_at=now,
            message_id=str(public_id),
            seq=seq,
            role=ChatMessage.Role.ASSISTANT,
            text=outcome.text,
            status=outcome.status,
            created_at=created_at,
            reply_to=reply_to,
            retry_of=retry_of,
        )
    ]
    if announce:
        made.append(
            events.ReplyFinished(
                session_id=session_id,
                occurred_at=now,
                message_id=str(public_id),
                seq=seq,
                reply_to=reply_to,
                status=outcome.status,
                error=outcome.error_code,
                provider=outcome.provider,
                model=outcome.model,
                ttft_ms=outcome.ttft_ms,
                duration_ms=outcome.duration_ms,
                input_tokens=outcome.input_tokens,
                output_tokens=outcome.output_tokens,
                cached=outcome.cached,
                calls=tuple(call.info() for call in calls if call.message_id in (None, message_pk)),
            )
        )
    return made


@functools.cache
def _reply_sql(vendor: str) -> str:
    """What `reply_ended` needs beyond the outcome, in one statement (it runs on every reply while
    webhooks are on; the ORM's query building would double its cost)."""
    quote = shared.quote
    message, session = quote(ChatMessage._meta.db_table), quote(ChatSession._meta.db_table)
    return (
        f"SELECT m.{quote('public_id')}, m.{quote('seq')}, m.{quote('created_at')}, s.{quote('public_id')}, "
        f"r.{quote('seq')}, t.{quote('seq')} FROM {message} m "
        f"JOIN {session} s ON s.{quote('id')} = m.{quote('session_id')} "
        f"LEFT JOIN {message} r ON r.{quote('id')} = m.{quote('reply_to_id')} "
        f"LEFT JOIN {message} t ON t.{quote('id')} = m.{quote('retry_of_id')} WHERE m.{quote('id')} = %s"
    )


def _uuid(value: object) -> uuid.UUID:
    """A UUID column's value (SQLite returns its 32 hex digits, Postgres a UUID)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _datetime(value: object) -> datetime:
    """A datetime column's value, aware (SQLite returns naive UTC text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def replies_interrupted(rows: Iterable[ChatMessage], now: datetime) -> list[events.Record]:
    """Replies whose process died, just marked `interrupted` (rows with `session` and `reply_to` loaded)."""
    made: list[events.Record] = []
    for row in rows:
        session_id = str(row.session.public_id)
        reply_to = row.reply_to.seq if row.reply_to is not None else None
        made.append(
            events.MessageCreated(
                session_id=session_id,
                occurred_at=now,
                message_id=str(row.public_id),
                seq=row.seq,
                role=row.role,
                text=row.text,
                status=ChatMessage.Status.INTERRUPTED,
                created_at=row.created_at,
                reply_to=reply_to,
            )
        )
        made.append(
            events.ReplyFinished(
                session_id=session_id,
                occurred_at=now,
                message_id=str(row.public_id),
                seq=row.seq,
                reply_to=reply_to,
                status=ChatMessage.Status.INTERRUPTED,
                error="",
                provider=row.provider,
                model=row.model,
                ttft_ms=row.ttft_ms,
                duration_ms=None,
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                cached=False,
            )
        )
    return made
