"""jsonl (one conversation per line) and csv (one message per row) imports.

jsonl: `{"id", "started_at"?, "messages": [{"role": "user"|"assistant"|"agent", "text",
"created_at"?, "author"?}], "rating"?, "resolved"?, "metadata"?}`. A message without
`created_at` takes the previous message's time (the first one `started_at`); `metadata.customer_id`
(or `metadata.user_id`) identifies the customer for first-contact resolution, and the first
`author` of a user message names them.

csv: the same fields, one message per row: columns `id, started_at, role, text, created_at,
author, rating, resolved, metadata` (metadata as JSON). The conversation-level columns are taken
from the first row of the conversation that fills them. Rows of one conversation need not be
adjacent: up to `OPEN_CONVERSATIONS` conversations are kept open at once (the oldest is finished
when one more opens); a row whose conversation was already finished is reported
(`not_contiguous`) and skipped, so interleave at most that many conversations.
"""

from __future__ import annotations

import csv
import io
import json
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime
from typing import Any, BinaryIO

from analytics.imports.records import (
    MAX_LINE_BYTES,
    MAX_MESSAGES,
    MAX_METADATA_BYTES,
    MAX_NAME_CHARS,
    ROLES,
    Conversation,
    Message,
    Problem,
    RecordError,
    clean_id,
    clean_rating,
    clean_resolved,
    clean_text,
    parse_time,
)

#: csv conversations kept open at once (rows of one conversation may interleave with this many others).
OPEN_CONVERSATIONS = 1_000
CSV_COLUMNS = ("id", "started_at", "role", "text", "created_at", "author", "rating", "resolved", "metadata")


def parse_jsonl(stream: BinaryIO) -> Iterator[Conversation | Problem]:
    """One conversation per line; a bad line is a `Problem` with its number."""
    reader = io.BufferedReader(stream, buffer_size=1 << 16) if not isinstance(stream, io.BufferedReader) else stream  # type: ignore[arg-type]
    number = 0
    while True:
        line = reader.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        where = f"line {number}"
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while chunk := reader.readline(1 << 20):  # skip the rest of the over-long line
                if chunk.endswith(b"\n"):
                    break
            yield Problem("too_long", where, f"the line is longer than {MAX_LINE_BYTES} bytes")
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except UnicodeDecodeError:
            yield Problem("bad_json", where, "the line is not UTF-8")
            continue
        except ValueError as error:
            yield Problem("bad_json", where, f"not valid JSON: {str(error)[:120]}")
            continue
        try:
            yield _conversation(record, where)
        except RecordError as error:
            yield Problem(error.reason, _where(record, where), error.detail)


def _where(record: Any, where: str) -> str:
    """A line's place, with its id when it has a usable one."""
    if isinstance(record, dict) and isinstance(record.get("id"), str | int):
        return f"{where} (id {str(record['id'])[:60]})"
    return where


def _conversation(record: Any, where: str, skipped: list[Problem] | None = None) -> Conversation:
    """A record as a conversation; `RecordError` on the first broken field.

    With `skipped` (csv, where a row is the record), a bad message is reported there with its
    line and left out; otherwise (jsonl, where the line is the record) it fails the conversation.
    """
    if not isinstance(record, dict):
        raise RecordError("bad_record", f"a line must be a JSON object, got {type(record).__name__}")
    external_id = clean_id(record.get("id"), "id")
    started = parse_time(record["started_at"], "started_at") if record.get("started_at") is not None else None
    items = record.get("messages")
    if not isinstance(items, list):
        raise RecordError("not_a_list", f"messages must be an array, got {type(items).__name__}")
    if len(items) > MAX_MESSAGES:
        raise RecordError("too_many_messages", f"{len(items)} messages (at most {MAX_MESSAGES} per conversation)")
    messages: list[Message] = []
    previous = started
    customer_name = ""
    for index, item in enumerate(items, start=1):
        try:
            message = _message(item, previous)
        except RecordError as error:
            if skipped is None:
                raise RecordError(error.reason, f"message {index}: {error.detail}") from None
            skipped.append(Problem(error.reason, f"line {item['line']} (id {external_id[:60]})", error.detail))
            continue
        messages.append(message)
        previous = message.at
        if message.role == "user" and message.author and not customer_name:
            customer_name = message.author
    metadata = _metadata(record.get("metadata"))
    customer = metadata.get("customer_id", metadata.get("user_id"))
    return Conversation(
        external_id=external_id,
        where=f"{where} (id {external_id[:60]})",
        messages=messages,
        customer_id=clean_id(customer, "metadata.customer_id") if customer not in (None, "") else "",
        customer_name=customer_name,
        rating=clean_rating(record.get("rating")),
        resolved=clean_resolved(record.get("resolved")),
        metadata=metadata,
    )


def _message(item: Any, previous: datetime | None) -> Message:
    if not isinstance(item, dict):
        raise RecordError("bad_message", f"must be an object, got {type(item).__name__}")
    role = item.get("role")
    if role not in ROLES:
        raise RecordError("bad_role", f"role must be one of {', '.join(ROLES)}, got {str(role)[:40]!r}")
    text = clean_text(item.get("text"), "text")
    raw_time = item.get("created_at")
    if raw_time not in (None, ""):
        at = parse_time(raw_time, "created_at")
    elif previous is not None:
        at = previous
    else:
        raise RecordError("bad_time", "no created_at, and no started_at or earlier message to take it from")
    author = clean_text(item.get("author"), "author", limit=MAX_NAME_CHARS, required=False)
    return Message(role, text, at, author)


def _metadata(value: Any) -> dict[str, Any]:
    """An object of at most MAX_METADATA_BYTES as JSON (a csv cell holds it as JSON text)."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise RecordError("bad_metadata", "metadata is not valid JSON") from None
    if not isinstance(value, dict):
        raise RecordError("bad_metadata", f"metadata must be an object, got {type(value).__name__}")
    if len(json.dumps(value, ensure_ascii=False)) > MAX_METADATA_BYTES:
        raise RecordError("too_long", f"metadata is longer than {MAX_METADATA_BYTES} characters as JSON")
    return value


# --- csv ----------------------------------------------------------------------------------------
class _Open:
    """A csv conversation being read: its first line and the fields of its rows so far."""

    __slots__ = ("error", "line", "messages", "record")

    def __init__(self, line: int) -> None:
        self.line = line
        self.record: dict[str, Any] = {}
        self.messages: list[dict[str, Any]] = []
        self.error: RecordError | None = None


def parse_csv(stream: BinaryIO) -> Iterator[Conversation | Problem]:
    """One message per row, grouped by `id`; a bad row or conversation is a `Problem` with its line."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")  # type: ignore[type-var]
    csv.field_size_limit(MAX_LINE_BYTES)
    reader = csv.DictReader(text)
    try:
        header = reader.fieldnames or []
    except (csv.Error, UnicodeDecodeError) as error:
        yield Problem("bad_csv", "line 1", f"cannot read the header: {str(error)[:120]}", fatal=True)
        return
    missing = [name for name in ("id", "role", "text") if name not in header]
    if missing:
        yield Problem("bad_csv", "line 1", f"missing column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}")
        return
    open_: OrderedDict[str, _Open] = OrderedDict()
    finished: set[str] = set()
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except (csv.Error, UnicodeDecodeError) as error:
            yield Problem("bad_csv", f"line {line}", f"unreadable: {str(error)[:120]}", fatal=True)
            break
        line = reader.line_num
        if None in row:
            yield Problem("bad_csv", f"line {line}", "more fields than columns")
            continue
        try:
            key = clean_id(row.get("id"), "id")
        except RecordError as error:
            yield Problem(error.reason, f"line {line}", error.detail)
            continue
        if key in finished:
            yield Problem(
                "not_contiguous",
                f"line {line} (id {key[:60]})",
                f"its conversation was already finished: keep a conversation's rows within {OPEN_CONVERSATIONS} "
                "conversations of each other",
            )
            continue
        current = open_.get(key)
        if current is None:
            current = open_[key] = _Open(line)
            if len(open_) > OPEN_CONVERSATIONS:
                done_key, done = open_.popitem(last=False)
                finished.add(done_key)
                yield from _csv_conversation(done_key, done)
        _add_row(current, row, line)
    for key, current in open_.items():
        yield from _csv_conversation(key, current)


def _add_row(current: _Open, row: dict[str, Any], line: int) -> None:
    """One row into its conversation: the conversation fields from the first row that has them."""
    if current.error is not None:
        return
    for name in ("started_at", "rating", "resolved", "metadata"):
        if row.get(name) not in (None, "") and name not in current.record:
            current.record[name] = row[name]
    if len(current.messages) >= MAX_MESSAGES:
        current.error = RecordError("too_many_messages", f"more than {MAX_MESSAGES} messages in one conversation")
        return
    current.messages.append(
        {
            "role": row.get("role"),
            "text": row.get("text"),
            "created_at": row.get("created_at") or None,
            "author": row.get("author") or None,
            "line": line,
        }
    )


def _csv_conversation(key: str, current: _Open) -> Iterator[Conversation | Problem]:
    """The conversation of finished rows, after a `Problem` for each bad row in it."""
    where = f"line {current.line} (id {key[:60]})"
    if current.error is not None:
        yield Problem(current.error.reason, where, current.error.detail)
        return
    record = {"id": key, **current.record, "messages": current.messages}
    skipped: list[Problem] = []
    try:
        conversation = _conversation(record, f"line {current.line}", skipped)
    except RecordError as error:
        yield from skipped
        yield Problem(error.reason, where, error.detail)
        return
    yield from skipped
    yield conversation
