"""What an import reads: conversations and their messages, the limits on them, and the problems found.

Every parser (`analytics.imports.parsers`) turns its format into these, so cleaning, hashing and
writing are one code path whatever the file looked like. A record that breaks a limit is not
cut to fit: it is reported (`Problem`, with the chat id or line number) and skipped, so the
summary says precisely what was left out and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

#: Formats, as `--format` and the `format` field name them; the session's source is `import:<format>`.
FORMATS = ("fb-grouped", "jsonl", "csv")
#: A conversation id (ImportedConversation.external_id is 255; fb-grouped appends `@<ISO time>`).
MAX_ID_CHARS = 200
#: One message's text (a chat message is short; longer is a paste of a document or a broken export).
MAX_TEXT_CHARS = 20_000
#: Messages in one conversation (after splitting a chat at its silences).
MAX_MESSAGES = 5_000
#: An author's or customer's name (ChatMessage.author_name is 150).
MAX_NAME_CHARS = 150
#: A jsonl line (one whole conversation) or a csv field, in bytes.
MAX_LINE_BYTES = 8 * 1024 * 1024
#: A conversation's `metadata`, as JSON.
MAX_METADATA_BYTES = 16 * 1024
#: Message times before this are refused (the analytics' own earliest date), and so are times
#: more than `MAX_FUTURE` ahead of the clock.
MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(days=1)

ROLES = ("user", "assistant", "agent")


@dataclass(slots=True)
class Message:
    """One message as the file gave it: role user (the customer), agent (a person) or assistant (automated)."""

    role: str
    text: str
    at: datetime
    author: str = ""


@dataclass(slots=True)
class Conversation:
    """One conversation of the file, before cleaning (autoresponses and duplicates still in)."""

    external_id: str
    where: str  # "chat 1234" or "line 17": how the summary points at it
    messages: list[Message]
    customer_id: str = ""
    customer_name: str = ""
    rating: int | None = None
    resolved: bool | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Problem:
    """A record (or a message of one) that was skipped: `reason` is the summary's key, `detail` the why."""

    reason: str
    where: str
    detail: str
    fatal: bool = False  # the rest of the file cannot be read (broken JSON, not UTF-8)


class RecordError(ValueError):
    """A field that breaks a rule; the parser turns it into a `Problem` with the record's place."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_time(value: Any, name: str) -> datetime:
    """An ISO 8601 time (a naive one is in TIME_ZONE), inside MIN_TIME … now + MAX_FUTURE."""
    if not isinstance(value, str) or not value.strip():
        raise RecordError("bad_time", f"{name} must be an ISO 8601 time, got {_shown(value)}")
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RecordError("bad_time", f"{name} is not an ISO 8601 time: {_shown(value)}") from None
    if timezone.is_naive(at):
        at = timezone.make_aware(at)
    if not MIN_TIME <= at <= timezone.now() + MAX_FUTURE:
        raise RecordError("bad_time", f"{name} {value[:40]} is before {MIN_TIME.date()} or in the future")
    return at


def clean_text(value: Any, name: str, *, limit: int = MAX_TEXT_CHARS, required: bool = True) -> str:
    """A string the database and the JSON encoder accept (no NUL, no lone surrogate), within `limit`."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise RecordError("bad_field", f"{name} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise RecordError("too_long", f"{name} has {len(value)} characters (at most {limit})")
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError("bad_field", f"{name} holds a lone surrogate (broken \\u escape)") from None
    return value


def clean_id(value: Any, name: str) -> str:
    """A conversation or customer id: a non-empty string or integer of at most MAX_ID_CHARS characters."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordError("bad_id", f"{name} must be a string or an integer, got {_shown(value)}")
    text = clean_text(str(value).strip(), name, limit=MAX_ID_CHARS)
    if not text:
        raise RecordError("bad_id", f"{name} is empty")
    return text


def clean_rating(value: Any) -> int | None:
    """A 1–5 score (an integer, or a string of one), or None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise RecordError("bad_rating", f"rating must be an integer from 1 to 5, got {_shown(value)}")
    return value


_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


def clean_resolved(value: Any) -> bool | None:
    """true/false (or yes/no, 1/0 as text), or None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise RecordError("bad_resolved", f"resolved must be true or false, got {_shown(value)}")


def _shown(value: Any) -> str:
    """A value as a problem's detail shows it: type and a short repr."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
