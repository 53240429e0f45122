"""Hand-written SQL for the statements every chat turn runs, and the liveness reads sharing its join.

Django's ORM spends 0.3–0.5 ms of CPU compiling each statement, and a turn runs six of them:
that was most of a turn's server CPU (docs/benchmarks.md). These helpers issue the same
statements as plain SQL through Django's own connection, so they share its transaction, its
connection pool and its value adapters (`Field.get_db_prep_save`); the multi-row INSERT is the
one `project.sql` builds for every hot write path. The SQL is portable between SQLite (3.35+,
for RETURNING) and Postgres. Everything off the hot path stays on the ORM.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from django.db import connection
from django.db.models import Field, Model

from assistant.liveness import PROCESS_ID, OwnerState
from assistant.models import ChatMessage, ChatSession, ServerProcess
from assistant.protocol import PROVIDER_INTERRUPTED
from project import sql as shared


class Streaming(NamedTuple):
    """A message that may stop a turn (or a streaming reply), with what is known of its owner."""

    pk: int
    client_id: str | None
    status: str
    stale: bool  # no checkpoint since `stale_before`
    silent: bool  # no checkpoint since `silent_before`
    owner: OwnerState


def _field(name: str) -> Field:
    return ChatMessage._meta.get_field(name)  # type: ignore[return-value]


def _prep(name: str, value: object) -> object:
    """`value` as the database driver wants it for ChatMessage field `name` (JSON, datetimes)."""
    return shared.prepare(_field(name), value)


# --- writes ---------------------------------------------------------------------------------
def insert_message(message: ChatMessage) -> ChatMessage:
    """INSERT a message built in Python (defaults and `auto_now` applied here); sets its pk."""
    insert_rows([message])
    return message


def insert_rows(objects: Sequence[Model]) -> None:
    """INSERT new model instances of one model (one statement for the few a turn writes); sets their pks."""
    if not objects:
        return
    model = type(objects[0])
    fields = shared.columns(model, pk=False)
    values = [shared.values(obj, fields, stamp=True) for obj in objects]
    rows = shared.insert(model, values, pk=False, returning=True)
    for obj, (pk,) in zip(objects, rows, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias


def allocate_seq(*, session_pk: int, now: datetime | None = None) -> int:
    """Reserve one seq in a session (a replacement reply, an agent's message); takes the row lock.

    With `now`, the session's `updated_at` moves too (an agent's message is activity).
    """
    quote = shared.quote
    table = quote(ChatSession._meta.db_table)
    touch, params = "", [session_pk]
    if now is not None:
        touch, params = f", {quote('updated_at')} = %s", [connection.ops.adapt_datetimefield_value(now), session_pk]
    rows = shared.execute(
        f"UPDATE {table} SET {quote('last_seq')} = {quote('last_seq')} + 1{touch} WHERE {quote('id')} = %s "
        f"RETURNING {quote('last_seq')}",
        params,
    )
    return rows[0][0]


def allocate_turn(*, session_pk: int, title: str, now: datetime) -> tuple[int, str, str] | None:
    """Reserve the turn's seqs, reopen the session and title it once; None if the session is gone.

    One `UPDATE … RETURNING`, which takes the session row's write lock until commit. Two seqs
    (the visitor's message and the assistant's reply), or one while a person answers the
    visitor (`handoff_state = 'assigned'`: no AI reply). Returns the new `last_seq`, the
    session's title and its handoff state, all as of this lock.
    """
    quote = shared.quote
    table = quote(ChatSession._meta.db_table)
    stamp = connection.ops.adapt_datetimefield_value(now)
    state = quote("handoff_state")
    rows = shared.execute(
        f"UPDATE {table} SET {quote('last_seq')} = {quote('last_seq')} + "
        f"CASE WHEN {state} = %s THEN 1 ELSE 2 END, {quote('last_seen_at')} = %s, "
        f"{quote('updated_at')} = %s, {quote('status')} = %s, {quote('closed_at')} = NULL, "
        f"{quote('title')} = CASE WHEN {quote('title')} = '' THEN %s ELSE {quote('title')} END, "
        f"{quote('served_by')} = %s WHERE {quote('id')} = %s "
        f"RETURNING {quote('last_seq')}, {quote('title')}, {state}",
        [ChatSession.Handoff.ASSIGNED, stamp, stamp, ChatSession.Status.ACTIVE, title, PROCESS_ID, session_pk],
    )
    return (rows[0][0], rows[0][1], rows[0][2]) if rows else None


@functools.cache
def _finish_sql(vendor: str, names: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{shared.quote(_field(name).column)} = %s" for name in names)
    return (
        f"UPDATE {shared.quote(ChatMessage._meta.db_table)} SET {assignments} "
        f"WHERE {shared.quote('id')} = %s AND {shared.quote('status')} = %s"
    )


def update_streaming_message(message_pk: int, **values: object) -> int:
    """UPDATE a message only while it is still streaming; the number of rows changed (0 or 1)."""
    names = tuple(values)
    params = [_prep(name, value) for name, value in values.items()]
    with connection.cursor() as cursor:
        cursor.execute(_finish_sql(connection.vendor, names), [*params, message_pk, ChatMessage.Status.STREAMING])
        return cursor.rowcount


# --- reads ----------------------------------------------------------------------------------
def heartbeat_age(column: str) -> str:
    """SQL for the seconds since a timestamp column, by the database's clock (no clock skew)."""
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM (STATEMENT_TIMESTAMP() - {column}))"
    return f"((julianday('now') - julianday({column})) * 86400.0)"


@functools.cache
def _streaming_sql(vendor: str, where: str) -> str:
    quote = shared.quote
    message, process = quote(ChatMessage._meta.db_table), quote(ServerProcess._meta.db_table)
    column = f"p.{quote('heartbeat_at')}"
    return (
        f"SELECT m.{quote('id')}, m.{quote('client_id')}, m.{quote('status')}, m.{quote('updated_at')} < %s, "
        f"m.{quote('updated_at')} < %s, m.{quote('owner')}, p.{quote('id')}, p.{quote('stopped_at')}, "
        f"{heartbeat_age(column)}, p.{quote('host')}, p.{quote('pid')}, p.{quote('pid_start')} "
        f"FROM {message} m LEFT JOIN {process} p ON p.{quote('id')} = m.{quote('owner')} WHERE {where}"
    )


def _streaming(where: str, params: list[object], *, stale_before: datetime, silent_before: datetime) -> list[Streaming]:
    rows = shared.execute(
        _streaming_sql(connection.vendor, where),
        [_prep("updated_at", stale_before), _prep("updated_at", silent_before), *params],
    )
    return [
        Streaming(
            pk,
            client_id,
            status,
            bool(stale),
            bool(silent),
            OwnerState(
                process_id=owner,
                known=known is not None,
                stopped=stopped is not None,
                heartbeat_age_s=float(age or 0),
                host=host or "",
                pid=pid or 0,
                pid_start=started or "",
            ),
        )
        for pk, client_id, status, stale, silent, owner, known, stopped, age, host, pid, started in rows
    ]


def turn_conflicts(
    *, session_pk: int, client_id: str, stale_before: datetime, silent_before: datetime
) -> list[Streaming]:
    """Messages that stop a new turn: the same `client_id`, or a reply still streaming.

    The one read of a turn; the owner of a streaming reply comes with it (a join, no extra query).
    """
    quote = shared.quote
    where = f"m.{quote('session_id')} = %s AND (m.{quote('client_id')} = %s OR m.{quote('status')} = %s)"
    return _streaming(
        where,
        [session_pk, client_id, ChatMessage.Status.STREAMING],
        stale_before=stale_before,
        silent_before=silent_before,
    )


def streaming_replies(*, session_pk: int | None, stale_before: datetime, silent_before: datetime) -> list[Streaming]:
    """Replies still streaming (of one session, or all of them), with what is known of their owner."""
    quote = shared.quote
    where, params = f"m.{quote('status')} = %s", [ChatMessage.Status.STREAMING]
    if session_pk is not None:
        where, params = f"m.{quote('session_id')} = %s AND {where}", [session_pk, *params]
    return _streaming(where, params, stale_before=stale_before, silent_before=silent_before)


def processes(*, heard_within_s: float) -> list[OwnerState]:
    """Server processes whose last heartbeat is at most `heard_within_s` old (database clock)."""
    quote = shared.quote
    age = heartbeat_age(quote("heartbeat_at"))
    rows = shared.execute(
        f"SELECT {quote('id')}, {quote('stopped_at')}, {age}, {quote('host')}, {quote('pid')}, {quote('pid_start')} "
        f"FROM {quote(ServerProcess._meta.db_table)} WHERE {age} <= %s",
        [heard_within_s],
    )
    return [
        OwnerState(pk, True, stopped is not None, float(age_s or 0), host, pid, started)
        for pk, stopped, age_s, host, pid, started in rows
    ]


def prompt_turns(*, session_pk: int, before_seq: int, limit: int) -> list[tuple[str, str]]:
    """(role, text) of the last `limit` finished, non-empty visitor/assistant messages, newest first.

    A reply cut mid-stream and replaced (`provider_interrupted`) is left out: its replacement
    follows it and says it all. A person's messages (`agent`) count as the assistant's side, so
    after a hand-back the AI goes on from what the person told the visitor.
    """
    quote = shared.quote
    table = quote(ChatMessage._meta.db_table)
    rows = shared.execute(
        f"SELECT {quote('role')}, {quote('text')} FROM {table} WHERE {quote('session_id')} = %s "
        f"AND {quote('seq')} < %s AND {quote('role')} IN (%s, %s, %s) AND {quote('status')} NOT IN (%s, %s) "
        f"AND {quote('text')} <> '' AND {quote('error_code')} <> %s ORDER BY {quote('seq')} DESC LIMIT %s",
        [
            session_pk,
            before_seq,
            ChatMessage.Role.USER,
            ChatMessage.Role.ASSISTANT,
            ChatMessage.Role.AGENT,
            ChatMessage.Status.STREAMING,
            ChatMessage.Status.FAILED,
            PROVIDER_INTERRUPTED,  # replaced by the reply that follows it: sending both repeats it
            limit,
        ],
    )
    agent = ChatMessage.Role.AGENT
    return [(ChatMessage.Role.ASSISTANT if role == agent else role, text) for role, text in rows]
