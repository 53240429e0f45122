"""Writing the demo history: batches of whole sessions, one transaction each.

Rows go in with `COPY` on Postgres (1,000,000 messages take minutes, not hours) and with the
multi-row INSERT of `project.sql` elsewhere. Sessions' and messages' primary keys are reserved
up front, so the rows of a batch can point at each other before any of them is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, models, transaction

from analytics.models import ChatAnalytics, DailySessionRollup
from assistant.models import ChatEvent, ChatMessage, ChatSession, Feedback, ProviderCall, SessionRating
from project import sql

#: Sessions generated and inserted per transaction.
BATCH_SESSIONS = 1000
#: The tables written, in the order their rows can be inserted (referenced tables first).
TABLES: tuple[type[models.Model], ...] = (ChatSession, ChatMessage, ProviderCall, Feedback, SessionRating, ChatEvent)


@dataclass(slots=True)
class Batch:
    """Unsaved rows of a batch of whole sessions; their relations point at rows of the batch."""

    sessions: list[ChatSession] = field(default_factory=list)
    messages: list[ChatMessage] = field(default_factory=list)
    calls: list[ProviderCall] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)
    ratings: list[SessionRating] = field(default_factory=list)
    events: list[ChatEvent] = field(default_factory=list)

    def tables(self) -> tuple[Sequence[models.Model], ...]:
        """The rows of each of `TABLES`, in that order."""
        return self.sessions, self.messages, self.calls, self.feedback, self.ratings, self.events


@dataclass(slots=True)
class Counts:
    """Rows written so far."""

    sessions: int = 0
    messages: int = 0
    calls: int = 0
    feedback: int = 0
    ratings: int = 0
    events: int = 0


class Writer:
    """Inserts batches: `COPY` on Postgres, multi-row INSERTs elsewhere; ids reserved up front."""

    #: Tables whose rows others point at: their keys are reserved before anything is inserted.
    REFERENCED = (ChatSession, ChatMessage)

    def __init__(self) -> None:
        self.postgres = connection.vendor == "postgresql"
        self.counts = Counts()

    def write(self, batch: Batch) -> None:
        """Insert one batch of whole sessions in one transaction."""
        with transaction.atomic():
            for model, rows in zip(TABLES, batch.tables(), strict=True):
                if model in self.REFERENCED:
                    for row, pk in zip(rows, self._reserve(model, len(rows)), strict=True):
                        row.pk = pk
            for model, rows in zip(TABLES, batch.tables(), strict=True):
                _link(model, rows)
                self._insert(model, rows, pk=model in self.REFERENCED)
        counts = self.counts
        counts.sessions += len(batch.sessions)
        counts.messages += len(batch.messages)
        counts.calls += len(batch.calls)
        counts.feedback += len(batch.feedback)
        counts.ratings += len(batch.ratings)
        counts.events += len(batch.events)

    def _reserve(self, model: type[models.Model], count: int) -> list[int]:
        """`count` unused primary keys (from the sequence on Postgres, above the maximum elsewhere)."""
        table = model._meta.db_table
        with connection.cursor() as cursor:
            if self.postgres:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count]
                )
                return [row[0] for row in cursor.fetchall()]
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {sql.quote(table)}")
            top = cursor.fetchone()[0]
        return list(range(top + 1, top + 1 + count))

    def _insert(self, model: type[models.Model], rows: Sequence[models.Model], *, pk: bool) -> None:
        if not rows:
            return
        fields = sql.columns(model, pk=pk)
        if not self.postgres:
            sql.insert(model, [sql.values(row, fields, stamp=False) for row in rows], pk=pk)
            return
        # COPY takes the Python values as psycopg adapts them (aware datetimes, UUIDs); only JSON
        # needs its text. Preparing every value through the fields would double the load time.
        names = ", ".join(sql.quote(f.column) for f in fields)
        statement = f"COPY {sql.quote(model._meta.db_table)} ({names}) FROM STDIN"
        copiers = [_copier(f) for f in fields]
        with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([copier(row) for copier in copiers])


def _link(model: type[models.Model], rows: Sequence[models.Model]) -> None:
    """Point each row's foreign keys at the (now numbered) rows its relations were set to."""
    relations = [f for f in model._meta.concrete_fields if f.is_relation]
    for row in rows:
        for relation in relations:
            related = relation.get_cached_value(row, default=None)
            if related is not None:
                setattr(row, relation.attname, related.pk)


def _copier(model_field: models.Field) -> Callable[[models.Model], Any]:
    """How `COPY` reads `model_field` of a row: JSON as its text, the rest as is."""
    attname = model_field.attname
    if isinstance(model_field, models.JSONField):
        return lambda row: json.dumps(getattr(row, attname))
    return lambda row: getattr(row, attname)


def analyze() -> None:
    """Fresh planner statistics on Postgres after a bulk load (autovacuum would take a while)."""
    if connection.vendor != "postgresql":
        return
    tables = [model._meta.db_table for model in (*TABLES, ChatAnalytics, DailySessionRollup)]
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(sql.quote(table) for table in tables)}")
