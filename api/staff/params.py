"""Query parameters of the staff API, parsed strictly: each problem is a `ParamError` naming it.

The API's error handler (`api.errors`) turns a `ParamError` into a 400 `invalid_parameter` with the
`parameter` named. Parsing reuses the analytics parameters (`analytics.params`: the same dates,
bounds, user types, providers and sources as the dashboard and the exports), so a query the
dashboard accepts means the same here. Unknown parameters are refused, so a typo is not ignored.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta

from django.http import QueryDict
from django.utils import timezone

from analytics import params
from analytics.params import MAX_DAYS, PROVIDERS, USER_TYPES, ParamError
from analytics.selectors import Filters, Period
from api.staff.pagination import Cursor, decode_cursor

DEFAULT_DAYS = 7
PERIOD = {"days", "start_date", "end_date"}
FILTERS = {"user_type", "provider", "source"}
STATUSES = ("active", "closed")
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
#: `q`: shorter text matches nearly every conversation (and no trigram index can help it).
Q_MIN, Q_MAX = 3, 100
TOPIC_MAX = 100
USER_ID_MAX = 255
SESSION_PARAMS = {
    "start_date", "end_date", "user_type", "status", "resolved", "escalated", "satisfied_only", "topic", "provider",
    "source", "q", "cursor", "limit",
}  # fmt: skip


def integer(query: QueryDict, name: str, *, minimum: int, maximum: int) -> int | None:
    """A whole number within bounds, or None."""
    value = params.one(query, name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 6:
        raise ParamError(name, f"'{name}' must be a whole number from {minimum} to {maximum}, got {value[:40]!r}.")
    number = int(value)
    if not minimum <= number <= maximum:
        raise ParamError(name, f"'{name}' must be from {minimum} to {maximum}, got {number}.")
    return number


def text(query: QueryDict, name: str, *, minimum: int = 1, maximum: int) -> str | None:
    """Printable text of `minimum` to `maximum` characters (no control characters: NUL breaks Postgres)."""
    value = params.one(query, name)
    if value is None:
        return None
    if not minimum <= len(value) <= maximum:
        raise ParamError(name, f"'{name}' must be {minimum} to {maximum} characters long, got {len(value)}.")
    if any(unicodedata.category(char) in {"Cc", "Cs"} for char in value):
        raise ParamError(name, f"'{name}' must not contain control characters.")
    return value


def period(query: QueryDict, *, default_days: int = DEFAULT_DAYS) -> Period:
    """`days` (ending today) or `start_date`/`end_date` (local, inclusive); by default the last 7 days.

    `end_date` alone means the `default_days` days ending then; `start_date` alone, from then to today.
    """
    days = integer(query, "days", minimum=1, maximum=MAX_DAYS)
    start, end = params.date_value(query, "start_date"), params.date_value(query, "end_date")
    today = timezone.localdate()
    if days is not None:
        if start or end:
            raise ParamError("days", "Give either 'days' or 'start_date'/'end_date', not both.")
        return Period.ending(today, days)
    if start is None and end is None:
        return Period.ending(today, default_days)
    end = end or today
    start = start or end - timedelta(days=default_days - 1)
    return Period(start=_start(start, end), end=end)


def _start(start: date, end: date) -> date:
    if start > end:
        raise ParamError("start_date", f"'start_date' ({start}) is after 'end_date' ({end}).")
    if (end - start).days + 1 > MAX_DAYS:
        raise ParamError("start_date", f"The range is {(end - start).days + 1} days; the most is {MAX_DAYS}.")
    return start


def filters(query: QueryDict, *, external_user_id: str | None = None) -> Filters:
    """`user_type`, `provider` and `source` (each optional)."""
    return Filters(
        user_type=params.choice(query, "user_type", USER_TYPES),
        provider=params.choice(query, "provider", PROVIDERS),
        source=params.source(query),
        external_user_id=external_user_id,
    )


def period_query(query: QueryDict, *, allowed: set[str]) -> tuple[Period, Filters]:
    """The period and the filters among `allowed` (`user_id`: one identified visitor's usage)."""
    params.check_known(query, allowed)
    user_id = text(query, "user_id", maximum=USER_ID_MAX) if "user_id" in allowed else None
    return period(query), filters(query, external_user_id=user_id)


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """The filters, page size and position of a sessions listing."""

    start: date | None
    end: date | None
    user_type: str | None
    status: str | None
    resolved: bool | None
    escalated: bool | None
    satisfied_only: bool
    topic: str | None
    provider: str | None
    source: str | None
    q: str | None
    cursor: Cursor | None
    limit: int

    def echo(self) -> dict[str, object]:
        """The filters as given (for the listing's answer)."""
        return {
            "start_date": self.start.isoformat() if self.start else None,
            "end_date": self.end.isoformat() if self.end else None,
            "user_type": self.user_type,
            "status": self.status,
            "resolved": self.resolved,
            "escalated": self.escalated,
            "satisfied_only": self.satisfied_only,
            "topic": self.topic,
            "provider": self.provider,
            "source": self.source,
            "q": self.q,
        }


def session_query(query: QueryDict) -> SessionQuery:
    """The sessions listing's parameters (no dates: all time)."""
    params.check_known(query, SESSION_PARAMS)
    start, end = params.date_value(query, "start_date"), params.date_value(query, "end_date")
    if start and end:
        _start(start, end)
    raw_cursor = params.one(query, "cursor")
    return SessionQuery(
        start=start,
        end=end,
        user_type=params.choice(query, "user_type", USER_TYPES),
        status=params.choice(query, "status", STATUSES),
        resolved=params.boolean(query, "resolved"),
        escalated=params.boolean(query, "escalated"),
        satisfied_only=bool(params.boolean(query, "satisfied_only")),
        topic=text(query, "topic", maximum=TOPIC_MAX),
        provider=params.choice(query, "provider", PROVIDERS),
        source=params.source(query),
        q=text(query, "q", minimum=Q_MIN, maximum=Q_MAX),
        cursor=decode_cursor(raw_cursor) if raw_cursor is not None else None,
        limit=integer(query, "limit", minimum=1, maximum=MAX_LIMIT) or DEFAULT_LIMIT,
    )
