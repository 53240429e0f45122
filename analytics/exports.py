"""Staff exports of sessions, messages and per-session analytics, as CSV or JSON lines.

`/admin/chat-analytics/export/sessions/`, `export/messages/` and `export/analytics/` stream their
rows: an async iterator reads them in keyset-paginated chunks (`CHUNK_ROWS` rows in primary-key
order, one `database_sync_to_async` call each) and encodes each in a worker thread while the next
is read, so a million rows never sit in memory at once: at most two chunks do. CSV always starts
with its header row, also when no row matches.

Which rows (the same sessions the dashboard and weekly report count, so the numbers agree):

- A session belongs to the local day (`TIME_ZONE`) it started, `ChatAnalytics.day`, like every
  analytics number; its messages go with it, whenever they were written. `start_date`/`end_date`
  (inclusive; none means all time) pick sessions by that day in all three exports.
- sessions: chat sessions with at least one message, one row each. For a period, the row count
  is the `sessions` metric and the sums of `messages`, `user_messages` and `assistant_messages`
  are those metrics (the counts come from the analytics row; blank until analytics has seen the
  session, within a second of its first message).
- messages: every message of those sessions, in the order they were written. For a period, the
  row count is the `messages` metric; with `sender_type=user` (or `assistant`) it is
  `user_messages` (or `assistant_messages`). A reply still streaming is exported as such.
- analytics: the `ChatAnalytics` row of each session, which the rollups sum: its columns add up
  to the summary's numbers (`total_messages` to `messages`, `feedback_up` to `thumbs_up`…), and
  its human-support columns give the human-support metrics (rows with `handoff_requests` > 0 over
  rows: the handoff rate; the mean of the `human_first_response_ms` lists: the first human
  response; the mean of `avg_agent_response_ms`: the agent response time…). The messages
  export names the person who wrote each `agent` message (`author_name`).

Filters: `user_type` and `source` (the session's), `session_id` (one session's public UUID), `is_active`
(true: not closed; closed means ended by the visitor or idle past RESOLUTION_IDLE_MINUTES, as
analytics last recorded it — the `active_sessions` metric), `resolved` (confirmed or assumed
resolved, as analytics records it) apply to all three; `sender_type` (user, assistant, agent,
system) only to messages, and is refused with a 400 by the other two. `format=jsonl` gives one
JSON object per line instead of CSV.

CSV cells are neutralised against formula injection (OWASP): a text cell gets a leading `'`
when it starts with a tab or a carriage return, or when its first character that is not
whitespace or a control/format character (spaces, tabs, newlines, no-break and zero-width
spaces, a BOM…) is `=`, `+`, `-`, `@` or a compatibility form of one (full-width `＝＋－＠`,
small `﹦﹢﹣﹫`: NFKC folds them to the ASCII sign). That applies to every text column (visitor
text, titles, URLs, models, feedback comments…); lists (topics, actions, response times) are
JSON text, which starts with `[`. Numeric columns are written as plain numbers, so a negative
sentiment stays `-0.5` (a spreadsheet reads a number as a number; prefixing it would turn it
into text). JSON lines are not neutralised: JSON consumers do not evaluate formulas, and the
values stay exactly as stored; but U+2028, U+2029 and U+0085, which JSON allows raw in a string
and which many readers take as line ends, are written as `\u2028`, `\u2029`, `\u0085`, so
each row is exactly one line and still decodes to the stored text. Times are ISO 8601 in UTC with
microseconds, formatted by the database; booleans are `true`/`false`, no value an empty cell.

Each chunk is its own read: rows written while an export runs may or may not be in it (an export
is not a snapshot). daphne writes what it is given without waiting for a slow client; the
`project.backpressure` middleware makes the stream wait while the client's socket is full, so a
slow link does not pile the export up in the server's memory.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db.models import CharField, FilteredRelation, Func, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse, StreamingHttpResponse
from django.utils import timezone

from analytics import params, rollup
from analytics.access import staff_page
from analytics.models import ChatAnalytics
from analytics.params import ExportQuery, ParamError
from assistant.models import ChatMessage, ChatSession

#: Rows per database read; each read is one query and one encoded chunk of the response. Two
#: chunks of messages cost ~15 MB of server memory; bench/dashboard_scale.py weighs this.
CHUNK_ROWS = 2000
#: Characters a spreadsheet takes as the start of a formula (OWASP CSV injection). A cell also
#: starts a formula when these come after whitespace or control characters (spreadsheets trim
#: them on import), or in a compatibility form (full-width U+FF1D U+FF0B U+FF0D U+FF20, small U+FE66…), which a
#: spreadsheet's input method may turn into the ASCII sign: `_starts_formula` checks both.
FORMULA_TRIGGERS = frozenset("=+-@\t\r")
FORMULA_STARTERS = frozenset("=+-@")
#: A first character that settles it: printable ASCII that is neither a starter nor a space.
_PLAIN_FIRST = frozenset(chr(code) for code in range(0x21, 0x7F)) - FORMULA_STARTERS
#: Characters that end a line for common readers but that JSON may leave raw inside strings
#: (Python's `str.splitlines`, JavaScript before ES2019, many log shippers): escaped in JSON
#: lines as `\u2028`, `\u2029`, `\u0085`, which is still valid JSON and decodes to the same text.
#: Matched in the UTF-8 bytes, where each encoding is unambiguous.
_JSON_LINE_BREAKS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"), (b"\xc2\x85", b"\\u0085"))
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}

#: The last line of an export that failed after its first bytes were sent. The status and headers
#: are gone by then, and daphne cannot end a response whose application raised mid-body (it tries
#: to send a 500 and fails: the download then hangs for good), so the stream ends itself with a
#: line no complete export has: a CSV comment row, or a JSON line with an `error` key.
FAILED = {
    "csv": b"# export failed: this file is incomplete, see the server log\r\n",
    "jsonl": b'{"error":"export_failed","detail":"This export is incomplete; see the server log."}\n',
}

logger = logging.getLogger(__name__)

SESSION_FILTERS = {"start_date", "end_date", "user_type", "is_active", "session_id", "resolved", "format", "source"}
MESSAGE_FILTERS = SESSION_FILTERS | {"sender_type"}


# --- Cells -----------------------------------------------------------------------------------
def _starts_formula(text: str) -> bool:
    """Whether a spreadsheet could read `text` as a formula (see FORMULA_TRIGGERS)."""
    first = text[0]
    if first in _PLAIN_FIRST:  # the common case, decided without a Unicode lookup
        return False
    if first in FORMULA_TRIGGERS:
        return True
    for char in text:
        if char.isspace() or unicodedata.category(char)[0] == "C":  # spaces, controls, format chars
            continue
        return unicodedata.normalize("NFKC", char)[:1] in FORMULA_STARTERS
    return False


def neutralize(text: str) -> str:
    """`text` made safe for a spreadsheet: a leading `'` when it would start a formula."""
    return "'" + text if text and _starts_formula(text) else text


class UtcIsoText(Func):
    """A timestamp as ISO 8601 text in UTC with microseconds, `2026-03-04T10:00:00.000000+00:00`.

    Formatted by the database: loading a million datetimes through Django's timestamptz loader
    (pure Python) and formatting them again costs more than the rest of an export row.
    """

    output_field = CharField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        """to_char in UTC, whatever the session's DateStyle."""
        template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        """SQLite stores naive UTC as `YYYY-MM-DD HH:MM:SS[.ffffff]`."""
        template = (
            "replace(CASE WHEN length(%(expressions)s) = 19 THEN %(expressions)s || '.000000' "
            "ELSE %(expressions)s END, ' ', 'T') || '+00:00'"
        )
        sql, params = self.as_sql(compiler, connection, template=template, **extra)
        return sql, params * 3


class UuidText(Func):
    """A UUID as its canonical text, `8-4-4-4-12` lowercase hex, formatted by the database."""

    output_field = CharField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        """Postgres's uuid type prints the canonical form."""
        return self.as_sql(compiler, connection, template="(%(expressions)s)::text", **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        """Django stores UUIDs in SQLite as 32 hex digits."""
        parts = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
        template = " || '-' || ".join(f"substr(%(expressions)s, {start}, {length})" for start, length in parts)
        sql, params = self.as_sql(compiler, connection, template=template, **extra)
        return sql, params * len(parts)


#: How each kind of column is read: a database expression that formats it, or the field as is.
READ_AS: dict[str, Callable[[str], Any]] = {"datetime": UtcIsoText, "uuid": UuidText}
_BOOL_TEXT = {True: "true", False: "false", None: ""}


@dataclass(frozen=True, slots=True)
class Column:
    """One exported column: its header, the ORM path it is read from, and its kind.

    Kinds: text (neutralised in CSV), number, bool, datetime (UTC text from the database),
    date, local_day (a datetime's date in TIME_ZONE), uuid, list (JSON text in CSV).
    """

    name: str
    field: str
    kind: str = "text"

    def read(self) -> Any:
        """What `values_list` reads for this column."""
        wrap = READ_AS.get(self.kind)
        return wrap(self.field) if wrap else self.field


class Encoder:
    """Turns fetched rows (keyset value first, then one value per column) into CSV or JSON lines."""

    def __init__(self, columns: tuple[Column, ...]) -> None:
        self.names = [column.name for column in columns]
        kinds = [column.kind for column in columns]
        self.text = [i for i, kind in enumerate(kinds) if kind == "text"]
        self.bool = [i for i, kind in enumerate(kinds) if kind == "bool"]
        self.list = [i for i, kind in enumerate(kinds) if kind == "list"]
        self.date = [i for i, kind in enumerate(kinds) if kind == "date"]
        self.local_day = [i for i, kind in enumerate(kinds) if kind == "local_day"]

    def header(self) -> bytes:
        """The CSV header row."""
        buffer = io.StringIO()
        csv.writer(buffer).writerow(self.names)
        return buffer.getvalue().encode()

    def _common(self, row: tuple[Any, ...]) -> list[Any]:
        out = list(row[1:])
        for i in self.date:
            if out[i] is not None:
                out[i] = out[i].isoformat()
        for i in self.local_day:
            if out[i] is not None:
                out[i] = timezone.localdate(out[i]).isoformat()
        return out

    def encode(self, values: list[tuple[Any, ...]], fmt: str) -> bytes:
        """`values` as CSV rows or JSON lines."""
        return self.jsonl(values) if fmt == "jsonl" else self.csv(values)

    def csv(self, values: list[tuple[Any, ...]]) -> bytes:
        """CSV rows; text cells neutralised, None as an empty cell."""
        sink = _ByteSink()
        csv.writer(sink).writerows(self._csv_rows(values))
        return b"".join(sink.parts)

    def _csv_rows(self, values: list[tuple[Any, ...]]) -> Iterator[list[Any]]:
        starts_formula, text, flags, lists, bool_text = _starts_formula, self.text, self.bool, self.list, _BOOL_TEXT
        for row in values:
            out = self._common(row)
            for i in text:
                value = out[i]
                if value and starts_formula(value):
                    out[i] = "'" + value
            for i in flags:
                out[i] = bool_text[out[i]]
            for i in lists:
                if out[i] is not None:
                    out[i] = json.dumps(out[i], ensure_ascii=False)
            yield out

    def jsonl(self, values: list[tuple[Any, ...]]) -> bytes:
        """One JSON object per line, values as stored (no neutralisation: nothing evaluates them).

        U+2028, U+2029 and U+0085 are escaped (`_JSON_LINE_BREAKS`), so every reader sees one row
        per line.
        """
        names = self.names
        encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        body = b"".join([(encode(dict(zip(names, self._common(row), strict=True))) + "\n").encode() for row in values])
        for raw, escaped in _JSON_LINE_BREAKS:
            body = body.replace(raw, escaped)
        return body


class _ByteSink:
    """A file for csv.writer that keeps each row as UTF-8 bytes.

    Encoding row by row keeps a chunk's text compact: joined first, one non-Latin-1 character
    would make the whole chunk's string two or four bytes per character.
    """

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, text: str) -> None:
        """Called by csv.writer once per row."""
        self.parts.append(text.encode())


# --- The three exports -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Export:
    """What one export reads: its rows after a keyset value (filtered, in key order) and columns."""

    name: str
    key: str
    columns: tuple[Column, ...]
    allowed: frozenset[str]
    rows: Callable[[ExportQuery, int], QuerySet[Any]]
    encoder: Encoder = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoder", Encoder(self.columns))

    def check(self, query: Any) -> None:
        """Refuse filters that exist but mean nothing for this export, naming the parameter."""
        if "sender_type" in query and "sender_type" not in self.allowed:
            raise ParamError(
                "sender_type",
                f"'sender_type' filters messages; the {self.name} export has no sender. "
                "Use /admin/chat-analytics/export/messages/.",
            )


def _session_filters(query: ExportQuery, prefix: str = "", analytics: str = "analytics") -> Q:
    """The session-level filters, on ChatSession fields reached through `prefix`.

    `analytics` names the session's ChatAnalytics relation (or its per-chunk alias).
    """
    q = Q()
    if query.period is not None:
        start = rollup.day_bounds(query.period.start)[0]
        end = rollup.day_bounds(query.period.end)[1]
        # The local start day, as ChatAnalytics.day (started_at is the session's created_at).
        q &= Q(**{f"{prefix}created_at__gte": start, f"{prefix}created_at__lt": end})
    if query.user_type is not None:
        q &= Q(**{f"{prefix}user_type": query.user_type})
    if query.source is not None:
        q &= Q(**{f"{prefix}source": query.source})
    if query.session_id is not None:
        q &= Q(**{f"{prefix}public_id": query.session_id})
    if query.is_active is not None:
        closed = Q(**{f"{prefix}{analytics}__closed": True})
        q &= ~closed if query.is_active else closed
    if query.resolved is not None:
        resolved = Q(**{f"{prefix}{analytics}__resolved": True})
        q &= resolved if query.resolved else ~resolved
    return q


def _bounded(relation: str, key: str, after: int) -> FilteredRelation:
    """A one-to-one relation keyed like the export, joined only past the keyset value.

    Postgres merge-joins such a relation on its unique index and, told nothing else, scans that
    index from its start for every chunk: the bound keeps the last chunk as cheap as the first.
    """
    return FilteredRelation(relation, condition=Q(**{f"{relation}__{key}__gt": after}))


def _sessions(query: ExportQuery, after: int) -> QuerySet[ChatSession]:
    rows = ChatSession.objects.annotate(row_analytics=_bounded("analytics", "session_id", after))
    return rows.filter(_session_filters(query, analytics="row_analytics"), last_seq__gt=0, pk__gt=after)


def _messages(query: ExportQuery, after: int) -> QuerySet[ChatMessage]:
    rows = ChatMessage.objects.annotate(row_feedback=_bounded("feedback", "message_id", after))
    rows = rows.filter(_session_filters(query, "session__"), pk__gt=after)
    if query.sender_type is not None:
        rows = rows.filter(role=query.sender_type)
    return rows


def _analytics(query: ExportQuery, after: int) -> QuerySet[ChatAnalytics]:
    rows = ChatAnalytics.objects.filter(session_id__gt=after)
    if query.period is not None:
        rows = rows.filter(day__gte=query.period.start, day__lte=query.period.end)
    if query.user_type is not None:
        rows = rows.filter(user_type=query.user_type)
    if query.source is not None:
        rows = rows.filter(session__source=query.source)
    if query.session_id is not None:
        rows = rows.filter(session__public_id=query.session_id)
    if query.is_active is not None:
        rows = rows.filter(closed=not query.is_active)
    if query.resolved is not None:
        rows = rows.filter(resolved=query.resolved)
    return rows


SESSIONS = Export(
    name="sessions",
    key="pk",
    allowed=frozenset(SESSION_FILTERS),
    rows=_sessions,
    columns=(
        Column("session_id", "public_id", "uuid"),
        Column("day", "created_at", "local_day"),
        Column("created_at", "created_at", "datetime"),
        Column("status", "status"),
        Column("closed", "row_analytics__closed", "bool"),
        Column("user_type", "user_type"),
        Column("source", "source"),
        Column("external_user_id", "external_user_id"),
        Column("title", "title"),
        Column("page_url", "page_url"),
        Column("page_title", "page_title"),
        Column("referrer", "referrer"),
        Column("locale", "locale"),
        Column("messages", "row_analytics__total_messages", "number"),
        Column("user_messages", "row_analytics__user_messages", "number"),
        Column("assistant_messages", "row_analytics__assistant_messages", "number"),
        Column("provider", "row_analytics__provider"),
        Column("resolution", "row_analytics__resolution"),
        Column("resolved", "row_analytics__resolved", "bool"),
        Column("escalated", "row_analytics__escalated_to_human", "bool"),
        Column("rating", "row_analytics__satisfaction_rating", "number"),
        Column("handoff_requests", "row_analytics__handoff_requests", "number"),
        Column("human_involved", "row_analytics__human_involved", "bool"),
        Column("human_resolved", "row_analytics__human_resolved", "bool"),
        Column("agent_messages", "row_analytics__agent_messages", "number"),
        Column("avg_agent_response_ms", "row_analytics__avg_agent_response_ms", "number"),
        Column("visitor_returned", "row_analytics__visitor_returned", "bool"),
        Column("last_seen_at", "last_seen_at", "datetime"),
        Column("closed_at", "closed_at", "datetime"),
    ),
)

MESSAGES = Export(
    name="messages",
    key="pk",
    allowed=frozenset(MESSAGE_FILTERS),
    rows=_messages,
    columns=(
        Column("session_id", "session__public_id", "uuid"),
        Column("message_id", "public_id", "uuid"),
        Column("seq", "seq", "number"),
        Column("role", "role"),
        Column("author_name", "author_name"),
        Column("status", "status"),
        Column("text", "text"),
        Column("provider", "provider"),
        Column("model", "model"),
        Column("ttft_ms", "ttft_ms", "number"),
        Column("duration_ms", "duration_ms", "number"),
        Column("input_tokens", "input_tokens", "number"),
        Column("output_tokens", "output_tokens", "number"),
        Column("cached", "cached", "bool"),
        Column("error_code", "error_code"),
        Column("feedback", "row_feedback__rating"),
        Column("feedback_reason", "row_feedback__reason"),
        Column("feedback_comment", "row_feedback__comment"),
        Column("created_at", "created_at", "datetime"),
        Column("finished_at", "finished_at", "datetime"),
    ),
)

ANALYTICS = Export(
    name="analytics",
    key="session_id",
    allowed=frozenset(SESSION_FILTERS),
    rows=_analytics,
    columns=(
        Column("session_id", "session__public_id", "uuid"),
        Column("day", "day", "date"),
        Column("started_at", "started_at", "datetime"),
        Column("last_activity_at", "last_activity_at", "datetime"),
        Column("user_type", "user_type"),
        Column("provider", "provider"),
        Column("total_messages", "total_messages", "number"),
        Column("user_messages", "user_messages", "number"),
        Column("assistant_messages", "assistant_messages", "number"),
        Column("avg_response_time_ms", "avg_response_time_ms", "number"),
        Column("p95_response_time_ms", "p95_response_time_ms", "number"),
        Column("avg_ttft_ms", "avg_ttft_ms", "number"),
        Column("resolved", "resolved", "bool"),
        Column("resolution", "resolution"),
        Column("escalated_to_human", "escalated_to_human", "bool"),
        Column("unanswered", "unanswered", "bool"),
        Column("closed", "closed", "bool"),
        Column("topics_discussed", "topics_discussed", "list"),
        Column("actions_taken", "actions_taken", "list"),
        Column("engagement_score", "engagement_score", "number"),
        Column("satisfaction_rating", "satisfaction_rating", "number"),
        Column("avg_sentiment", "avg_sentiment", "number"),
        Column("feedback_up", "feedback_up", "number"),
        Column("feedback_down", "feedback_down", "number"),
        Column("cached_replies", "cached_replies", "number"),
        Column("failed_replies", "failed_replies", "number"),
        Column("failovers", "failovers", "number"),
        Column("provider_errors", "provider_errors", "number"),
        Column("duration_s", "duration_s", "number"),
        Column("response_times_ms", "response_times_ms", "list"),
        Column("ttfts_ms", "ttfts_ms", "list"),
        Column("handoff_requests", "handoff_requests", "number"),
        Column("human_involved", "human_involved", "bool"),
        Column("human_resolved", "human_resolved", "bool"),
        Column("agent_messages", "agent_messages", "number"),
        Column("avg_agent_response_ms", "avg_agent_response_ms", "number"),
        Column("human_first_response_ms", "human_first_response_ms", "list"),
        Column("human_resolution_ms", "human_resolution_ms", "list"),
        Column("visitor_returned", "visitor_returned", "bool"),
        # Sentiment and trajectory (the sums of these make the registry's sentiment metrics):
        Column("language", "language"),
        Column("unscored_messages", "unscored_messages", "number"),
        Column("opening_sentiment", "opening_sentiment", "number"),
        Column("closing_sentiment", "closing_sentiment", "number"),
        Column("rule_resolved", "rule_resolved", "bool"),
        # The conversation analysis, empty when the session has none (AI CSAT, how right the AI is):
        Column("analysis_method", "session__analysis__method"),
        Column("analysis_sentiment", "session__analysis__sentiment", "number"),
        Column("analysis_sentiment_label", "session__analysis__sentiment_label"),
        Column("predicted_satisfaction", "session__analysis__predicted_satisfaction", "number"),
        Column("predicted_resolved", "session__analysis__predicted_resolved", "bool"),
        Column("needs_follow_up", "session__analysis__needs_follow_up", "bool"),
        Column("updated_at", "updated_at", "datetime"),
    ),
)


# --- Reading and encoding --------------------------------------------------------------------
def fetch_rows(export: Export, query: ExportQuery, *, after: int, limit: int) -> list[tuple[Any, ...]]:
    """The next `limit` rows after keyset value `after` (0: from the start), key first. Sync (ORM)."""
    rows = export.rows(query, after).order_by(export.key)
    return list(rows.values_list(export.key, *(column.read() for column in export.columns))[:limit])


async def stream(export: Export, query: ExportQuery) -> AsyncIterator[bytes]:
    """The export's bytes: the header (CSV), then one encoded chunk per database read.

    While one chunk is encoded (in a worker thread: it is pure Python) the next one is read (in
    the request's database thread), so Postgres works while Python formats; at most two chunks
    of rows are in memory.
    """
    limit, fmt = CHUNK_ROWS, query.format
    if fmt == "csv":
        yield export.encoder.header()
    fetch = database_sync_to_async(fetch_rows)
    encode = sync_to_async(export.encoder.encode, thread_sensitive=False)
    following: asyncio.Future[list[tuple[Any, ...]]] | None = None
    try:
        values = await fetch(export, query, after=0, limit=limit)
        while values:
            following = None
            if len(values) == limit:
                following = asyncio.ensure_future(fetch(export, query, after=values[-1][0], limit=limit))
            body = await encode(values, fmt)
            del values
            yield body
            values = await following if following is not None else []
    except Exception:  # Parley's own fault: log it, and end the response instead of leaving it open
        logger.exception("The %s export failed mid-stream", export.name)
        yield FAILED[fmt]
    finally:
        if following is not None and not following.done():  # the client went away mid-export
            following.cancel()


def filename(export: Export, query: ExportQuery) -> str:
    """`parley-<export>-<start>_<end>.<ext>`, or `…-all-time…` without dates."""
    period = "all-time" if query.period is None else f"{query.period.start}_{query.period.end}"
    return f"parley-{export.name}-{period}.{query.format}"


# --- Views -----------------------------------------------------------------------------------
def _view(export: Export) -> Any:
    @staff_page
    async def view(request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        try:
            export.check(request.GET)
            query = params.export_query(request.GET, allowed=set(export.allowed))
        except ParamError as error:
            return JsonResponse(error.as_dict(), status=400)
        response = StreamingHttpResponse(stream(export, query), content_type=CONTENT_TYPES[query.format])
        response["Content-Disposition"] = f'attachment; filename="{filename(export, query)}"'
        response["Cache-Control"] = "no-store"
        return response

    view.__name__ = view.__qualname__ = f"export_{export.name}"
    view.__doc__ = f"The {export.name} export, streamed as CSV or JSON lines (staff only)."
    return view


export_sessions = _view(SESSIONS)
export_messages = _view(MESSAGES)
export_analytics = _view(ANALYTICS)
