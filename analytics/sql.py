"""The one hand-written statement of analytics: the tracker's upsert of sessions' rows.

The trackers of a server process hand their rows to one writer that sends them together,
about once a second (`analytics.tracker.writer`), so this runs often. Django's `bulk_create(update_conflicts=True)`
spends ~0.4 ms of CPU compiling the 40-column statement each time (docs/benchmarks.md); this
builds it once per database vendor and sends it through Django's own connection and field
adapters (`Field.get_db_prep_save`), as `assistant/sql.py` does for the chat turn. The SQL
(`INSERT … ON CONFLICT … DO UPDATE`) is portable between SQLite 3.24+ and Postgres.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Field

from analytics.models import ChatAnalytics

#: Columns written on insert only: the row's identity and birth.
_INSERT_ONLY = ("id", "session", "created_at")


@functools.cache
def _fields() -> tuple[Field, ...]:
    return tuple(ChatAnalytics._meta.concrete_fields)  # type: ignore[arg-type]


@functools.cache
def _upsert_sql(vendor: str, rows: int) -> str:
    quote = connection.ops.quote_name
    fields = _fields()
    columns = ", ".join(quote(field.column) for field in fields)
    updates = ", ".join(
        f"{quote(field.column)} = EXCLUDED.{quote(field.column)}" for field in fields if field.name not in _INSERT_ONLY
    )
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return (
        f"INSERT INTO {quote(ChatAnalytics._meta.db_table)} ({columns}) VALUES {', '.join([row] * rows)} "
        f"ON CONFLICT ({quote(ChatAnalytics._meta.get_field('session').column)}) DO UPDATE SET {updates}"
    )


#: Rows per statement: 40 columns each stays far below SQLite's 32,766 parameters.
MAX_ROWS = 200


def upsert(*, rows: dict[int, dict[str, Any]], now: datetime) -> None:
    """Insert or replace the `ChatAnalytics` rows of sessions (session pk to its other columns).

    One statement per `MAX_ROWS` sessions; a statement is atomic on its own.
    """
    items = list(rows.items())
    for start in range(0, len(items), MAX_ROWS):
        chunk = items[start : start + MAX_ROWS]
        params: list[Any] = []
        for session_pk, fields in chunk:
            values = dict(fields, id=uuid.uuid4(), session=session_pk, created_at=now, updated_at=now)
            params.extend(field.get_db_prep_save(values[field.name], connection) for field in _fields())
        with connection.cursor() as cursor:
            cursor.execute(_upsert_sql(connection.vendor, len(chunk)), params)
