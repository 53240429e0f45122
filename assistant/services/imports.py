"""Bulk writes of imported conversations: sessions, their messages and ratings, many at a time.

The importer (`analytics.imports`) reads a file of past chats and hands this module batches of
conversations, hundreds at once: the chat's per-turn services would cost a transaction and a
dozen statements per message, far from the ≥ 20,000 messages/s an import of years of history
needs. So sessions go in as multi-row INSERTs returning their keys (`project.sql`), messages
by `COPY` on Postgres (multi-row INSERTs elsewhere), and a replaced conversation loses its
messages and rating in two statements. Rows keep the file's times: the session's `created_at`
is its first message, `closed_at` its last; an imported session cannot be resumed (its token
hash is empty, which no token hashes to).

Callers run it inside their transaction, with the rows that link the file to the sessions.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Model

from assistant.models import ChatMessage, ChatSession, SessionRating
from assistant.services.turns import make_title
from project import sql


@dataclass(slots=True)
class ImportedMessage:
    """One message to store: role user, agent (a person, named `author_name`) or assistant (automated)."""

    role: str
    text: str
    created_at: datetime
    author_name: str = ""


@dataclass(slots=True)
class ImportedSession:
    """One conversation to store; `session_pk` set replaces that session's messages and rating."""

    source: str
    external_user_id: str
    external_user_name: str
    messages: list[ImportedMessage]
    rating: int | None = None
    resolved: bool | None = None
    session_pk: int | None = None
    created_at: datetime = field(init=False)
    closed_at: datetime = field(init=False)

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError("an imported session needs at least one message")
        self.created_at = self.messages[0].created_at
        self.closed_at = max(message.created_at for message in self.messages)


def imported_sessions_write(*, sessions: Sequence[ImportedSession], now: datetime) -> list[int]:
    """Store `sessions` (new ones inserted, those with `session_pk` replaced); their pks, in order.

    Run inside a transaction: a batch is all or nothing.
    """
    replaced = [item for item in sessions if item.session_pk is not None]
    if replaced:
        _clear(replaced, now=now)
    new = [item for item in sessions if item.session_pk is None]
    if new and copying():
        for item, pk in zip(new, ids_allocate(ChatSession, len(new)), strict=True):
            item.session_pk = pk
        rows_copy(ChatSession, [dict(_session_values(item, now), id=item.session_pk) for item in new])
    elif new:
        fields = sql.columns(ChatSession, pk=False)
        rows = [sql.values_from(_session_values(item, now), fields) for item in new]
        for item, (pk,) in zip(new, sql.insert(ChatSession, rows, pk=False, returning=True), strict=True):
            item.session_pk = pk
    _insert_messages(sessions, now=now)
    # The survey's time is the conversation's end, so a rebuild of the session's numbers (which
    # reads it as activity) gives the same duration as the import.
    ratings = [
        {
            "session": item.session_pk,
            "score": item.rating,
            "resolved": item.resolved,
            "comment": "",
            "created_at": item.closed_at,
            "updated_at": item.closed_at,
        }
        for item in sessions
        if item.rating is not None
    ]
    if ratings and copying():
        rows_copy(SessionRating, ratings)
    elif ratings:
        fields = sql.columns(SessionRating, pk=False)
        sql.insert(SessionRating, [sql.values_from(row, fields) for row in ratings], pk=False)
    return [item.session_pk for item in sessions]  # type: ignore[misc]


# --- COPY (Postgres) ----------------------------------------------------------------------------
def copying() -> bool:
    """Whether bulk rows go by `COPY` (Postgres): multi-row INSERTs of thousands of values cost
    more in the driver's client-side parameter parsing than in the database."""
    return connection.vendor == "postgresql"


def tables_analyze(models: Sequence[type[Model]]) -> None:
    """Refresh the planner's statistics of bulk-loaded tables (Postgres `ANALYZE`), so the queries
    that follow an import (first-contact resolution over the customers' sessions, the rollups) are
    planned for the rows just written, not for the table as autovacuum last saw it."""
    if not copying():
        return
    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"ANALYZE {sql.quote(model._meta.db_table)}")


def ids_allocate(model: type[Model], count: int) -> list[int]:
    """`count` fresh primary keys from the model's sequence (Postgres), for rows written by COPY."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, model._meta.pk.column, count],
        )
        return [row[0] for row in cursor.fetchall()]


def rows_copy(model: type[Model], rows: Sequence[Mapping[str, Any]]) -> None:
    """`COPY` rows (field name → Python value) into the model's table; omitted fields are NULL.

    Fields are the model's concrete fields present in the first row; JSON fields are sent as
    JSON text. Postgres only (`copying()`).
    """
    if not rows:
        return
    fields = [field for field in model._meta.concrete_fields if field.name in rows[0]]
    json_fields = {field.name for field in fields if field.get_internal_type() == "JSONField"}
    columns = ", ".join(sql.quote(field.column) for field in fields)
    statement = f"COPY {sql.quote(model._meta.db_table)} ({columns}) FROM STDIN"
    names = [field.name for field in fields]
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(
                [json.dumps(row[name], ensure_ascii=False) if name in json_fields else row[name] for name in names]
            )


def _session_values(item: ImportedSession, now: datetime) -> dict[str, object]:
    first_user = next((message.text for message in item.messages if message.role == "user"), "")
    return {
        "public_id": uuid.uuid4(),
        "token_hash": "",
        "status": ChatSession.Status.CLOSED,
        "title": make_title(first_user),
        "last_seq": len(item.messages),
        "user_type": ChatSession.UserType.CLIENT,
        "external_user_id": item.external_user_id,
        "external_user_name": item.external_user_name,
        "external_user_email": "",
        "page_url": "",
        "page_title": "",
        "referrer": "",
        "locale": "",
        "user_agent": "",
        "source": item.source,
        "created_at": item.created_at,
        "updated_at": now,
        "last_seen_at": item.closed_at,
        "closed_at": item.closed_at,
        "served_by": None,
        "handoff_state": ChatSession.Handoff.AI,
        "assigned_agent": None,
    }


def _clear(replaced: list[ImportedSession], *, now: datetime) -> None:
    """Drop the old messages and rating of replaced sessions and rewrite their session fields."""
    pks = [item.session_pk for item in replaced]
    ChatMessage.objects.filter(session_id__in=pks).delete()
    SessionRating.objects.filter(session_id__in=pks).delete()
    rows = []
    for item in replaced:
        values = _session_values(item, now)
        rows.append(
            ChatSession(
                pk=item.session_pk,
                **{name: values[name] for name in _REPLACED_FIELDS},
            )
        )
    ChatSession.objects.bulk_update(rows, list(_REPLACED_FIELDS), batch_size=500)


_REPLACED_FIELDS = (
    "title",
    "last_seq",
    "external_user_id",
    "external_user_name",
    "created_at",
    "updated_at",
    "last_seen_at",
    "closed_at",
    "status",
)

#: The message columns `COPY` writes; the others are nullable and stay NULL.
_COPY_COLUMNS = (
    "public_id",
    "session_id",
    "seq",
    "role",
    "text",
    "status",
    "author_name",
    "provider",
    "model",
    "cached",
    "error_code",
    "knowledge_sections",
    "created_at",
    "updated_at",
    "finished_at",
)


def _message_rows(sessions: Sequence[ImportedSession], now: datetime) -> list[tuple[object, ...]]:
    rows = []
    for item in sessions:
        for seq, message in enumerate(item.messages, start=1):
            finished = message.created_at if message.role == ChatMessage.Role.ASSISTANT else None
            rows.append(
                (
                    uuid.uuid4(),
                    item.session_pk,
                    seq,
                    message.role,
                    message.text,
                    ChatMessage.Status.COMPLETE,
                    message.author_name,
                    "",
                    "",
                    False,
                    "",
                    "[]",
                    message.created_at,
                    now,
                    finished,
                )
            )
    return rows


def _insert_messages(sessions: Sequence[ImportedSession], *, now: datetime) -> None:
    """Every message of `sessions`, seq 1…n each: `COPY` on Postgres, multi-row INSERTs elsewhere."""
    rows = _message_rows(sessions, now)
    if not rows:
        return
    if copying():
        columns = ", ".join(sql.quote(name) for name in _COPY_COLUMNS)
        statement = f"COPY {sql.quote(ChatMessage._meta.db_table)} ({columns}) FROM STDIN"
        with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        return
    fields = sql.columns(ChatMessage, pk=False)
    names = [field.name for field in fields]
    prepared = []
    for row in rows:
        values = dict(zip(_COPY_COLUMNS, row, strict=True))
        values["session"] = values.pop("session_id")
        values["knowledge_sections"] = json.loads(values["knowledge_sections"])  # type: ignore[arg-type]
        full = {name: values.get(name) for name in names}
        prepared.append(sql.values_from(full, fields))
    sql.insert(ChatMessage, prepared, pk=False)
