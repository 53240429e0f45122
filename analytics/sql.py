"""The one hand-written statement of analytics: the tracker's upsert of sessions' rows.

The trackers of a server process hand their rows to one writer that sends them together,
about once a second (`analytics.tracker.writer`), so this runs often. Django's `bulk_create(update_conflicts=True)`
spends ~0.4 ms of CPU compiling the 40-column statement each time (docs/benchmarks.md); the
multi-row `INSERT … ON CONFLICT … DO UPDATE` is built once per row count by `project.sql` (the
builder the chat turn uses too) and sent through Django's own connection and field adapters.
Portable between SQLite 3.24+ and Postgres.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from analytics.models import ChatAnalytics
from project import sql as shared

#: Columns written on insert only: the row's identity and birth, and `visitor_returned`, which
#: the rollup sweep sets from the visitor's other sessions (`services.visitor_returns_refresh`).
_INSERT_ONLY = ("id", "session", "created_at", "visitor_returned")

#: Rows per statement: 40 columns each stays far below SQLite's 32,766 parameters.
MAX_ROWS = 200


def upsert(*, rows: dict[int, dict[str, Any]], now: datetime) -> None:
    """Insert or replace the `ChatAnalytics` rows of sessions (session pk to its other columns).

    One statement per `MAX_ROWS` sessions; a statement is atomic on its own.
    """
    fields = shared.columns(ChatAnalytics)
    prepared = []
    for session_pk, values in rows.items():
        row = dict(values, id=uuid.uuid4(), session=session_pk, created_at=now, updated_at=now, visitor_returned=None)
        prepared.append(shared.values_from(row, fields))
    shared.insert(ChatAnalytics, prepared, conflict="session", keep=_INSERT_ONLY, max_rows=MAX_ROWS)
