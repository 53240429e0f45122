"""Keyset ("cursor") pagination of the sessions listing, newest first.

A page ends at a session; the cursor is that session's `(created_at, id)`, opaque to clients
(URL-safe base64). The next page is every session strictly older in that order, so a walk sees
each session once even while new ones arrive (they are newer: they sort before the first page),
and a page deep in the walk costs what the first one does: the database seeks to the position in
the `created_at` index instead of counting past the earlier pages, as an offset would.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

from analytics.params import ParamError

CURSOR_MAX = 200
_VERSION = "1"


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: the last session's start time and primary key."""

    created_at: datetime
    pk: int


def encode_cursor(cursor: Cursor) -> str:
    """The opaque text of a cursor."""
    raw = f"{_VERSION}|{cursor.created_at.isoformat()}|{cursor.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    """A cursor from its text; a `ParamError` naming `cursor` when it is not one of ours."""
    problem = ParamError("cursor", "'cursor' is not a cursor this API gave out; use 'next_cursor' as it came.")
    if len(text) > CURSOR_MAX or not text.isascii():
        raise problem
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        version, moment, pk = raw.split("|")
        created_at = datetime.fromisoformat(moment)
        number = int(pk)
        if version != _VERSION or created_at.tzinfo is None or not 0 < number < 2**63:
            raise ValueError(raw)
        created_at = created_at.astimezone(UTC)  # in range for every database adapter
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise problem from None
    return Cursor(created_at=created_at, pk=number)
