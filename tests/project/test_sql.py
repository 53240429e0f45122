"""`project.sql`: the multi-row INSERT/upsert builder of the hot write paths, on SQLite and Postgres.

`backends`: these also run in the services pass, where the same statements go to Postgres.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from assistant.models import ChatSession
from project import sql

PAST = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def session_row(token_hash: str, *, title: str = "", public_id: uuid.UUID | None = None) -> list[object]:
    """A new session's prepared values, the database numbering it (no pk)."""
    session = ChatSession(token_hash=token_hash, title=title, created_at=PAST, updated_at=PAST, last_seen_at=PAST)
    if public_id is not None:
        session.public_id = public_id
    return sql.values(session, sql.columns(ChatSession, pk=False), stamp=False)


def test_columns_without_pk_leave_the_primary_key_to_the_database() -> None:
    with_pk, without_pk = sql.columns(ChatSession), sql.columns(ChatSession, pk=False)

    assert with_pk[0].name == "id"
    assert [field.name for field in without_pk] == [field.name for field in with_pk[1:]]


def test_insert_sql_has_one_placeholder_per_column_and_row() -> None:
    statement = sql.insert_sql(ChatSession, 3, pk=False, returning=True)

    assert statement.count("%s") == 3 * len(sql.columns(ChatSession, pk=False))
    assert statement.endswith(f"RETURNING {sql.quote('id')}")
    assert "ON CONFLICT" not in statement


@pytest.mark.backends
@pytest.mark.django_db
def test_insert_returns_primary_keys_in_the_order_of_the_rows() -> None:
    returned = sql.insert(ChatSession, [session_row(f"{n}" * 64) for n in range(3)], pk=False, returning=True)

    stored = dict(ChatSession.objects.values_list("pk", "token_hash"))
    assert [stored[pk] for (pk,) in returned] == ["0" * 64, "1" * 64, "2" * 64]
    assert ChatSession.objects.get(token_hash="0" * 64).created_at == PAST  # stamp=False: the values given


@pytest.mark.backends
@pytest.mark.django_db
def test_insert_sends_at_most_max_rows_rows_per_statement() -> None:
    with CaptureQueriesContext(connection) as queries:
        sql.insert(ChatSession, [session_row(f"{n}" * 64) for n in range(5)], pk=False, max_rows=2)

    inserts = [query["sql"] for query in queries.captured_queries if query["sql"].startswith("INSERT")]
    assert len(inserts) == 3  # 2 + 2 + 1
    assert ChatSession.objects.count() == 5


@pytest.mark.backends
@pytest.mark.django_db
def test_insert_with_explicit_primary_keys_writes_them() -> None:
    fields = sql.columns(ChatSession)
    rows = []
    for pk in (41, 42):
        session = ChatSession(pk=pk, token_hash=str(pk) * 32, created_at=PAST, updated_at=PAST, last_seen_at=PAST)
        rows.append(sql.values(session, fields, stamp=False))

    sql.insert(ChatSession, rows)

    assert sorted(ChatSession.objects.values_list("pk", "token_hash")) == [(41, "41" * 32), (42, "42" * 32)]


@pytest.mark.backends
@pytest.mark.django_db
def test_upsert_replaces_a_stored_row_except_the_kept_columns() -> None:
    public_id = uuid.uuid4()
    sql.insert(ChatSession, [session_row("a" * 64, title="first", public_id=public_id)], pk=False)
    first = ChatSession.objects.get()

    sql.insert(
        ChatSession,
        [session_row("b" * 64, title="second", public_id=public_id), session_row("c" * 64, title="other")],
        pk=False,
        conflict="public_id",
        keep=("public_id", "token_hash"),
    )

    again = ChatSession.objects.get(public_id=public_id)
    assert (again.pk, again.title, again.token_hash) == (first.pk, "second", "a" * 64)
    assert ChatSession.objects.filter(title="other").count() == 1  # no conflict: inserted


@pytest.mark.django_db
def test_insert_of_no_rows_sends_nothing() -> None:
    with CaptureQueriesContext(connection) as queries:
        assert sql.insert(ChatSession, [], returning=True) == []

    assert queries.captured_queries == []


def test_values_with_stamp_apply_auto_now_as_save_would() -> None:
    session = ChatSession(token_hash="x" * 64, created_at=PAST, updated_at=PAST, last_seen_at=PAST)
    fields = [ChatSession._meta.get_field(name) for name in ("created_at", "updated_at", "closed_at")]

    assert sql.values(session, fields, stamp=False) == [sql.prepare(fields[0], PAST)] * 2 + [None]
    stamped = sql.values(session, fields, stamp=True)
    assert stamped[:2] != [sql.prepare(fields[0], PAST)] * 2  # now, not the values on the instance
    assert session.updated_at > PAST
