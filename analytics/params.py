"""Query parameters of the analytics API and exports: parsed strictly, refused precisely.

Every problem is a `ParamError` naming the parameter, which the views turn into a 400 with
`{"error": ..., "parameter": ...}`. Unknown parameters are refused too, so a typo such as
`end_dat` is not silently ignored.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.http import QueryDict
from django.utils import timezone

from analytics.selectors import Filters, Period
from assistant.models import ChatMessage, ChatSession

#: Named ranges the dashboard offers: 24h is exactly the last 24 hours, the others whole local days
#: ending today.
RANGES = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}
DEFAULT_RANGE = "7d"
MAX_DAYS = 366
#: The dates any staff endpoint accepts (API, exports, the dashboard page): nothing Parley stores
#: is older than MIN_DATE, and nothing is dated more than MAX_DAYS_AHEAD days after today (a
#: little room for time zones and a period that ends in the future). Outside the range, Python's
#: date arithmetic overflows (date.max + 1 day) long before the database would find nothing, so
#: such dates are refused with a 400 naming the parameter instead of failing mid-response.
MIN_DATE = date(2000, 1, 1)
MAX_DAYS_AHEAD = 366
PROVIDERS = ("openai", "anthropic", "gemini", "local")
#: The `user_type` filter's choices.
USER_TYPES: tuple[str, ...] = tuple(ChatSession.UserType.values)
#: The `source` filter: where sessions came from (`ChatSession.source`: `widget`, `api`,
#: `import:<format>`). Any such name is accepted (imports add their own), none longer than the column.
SOURCE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,31}")


class ParamError(ValueError):
    """A bad query parameter; `parameter` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message

    def as_dict(self) -> dict[str, str]:
        """The 400 body."""
        return {"error": self.message, "parameter": self.parameter}


def one(query: QueryDict, name: str) -> str | None:
    """The parameter's one value, stripped (None when absent or blank); given twice is an error."""
    values = query.getlist(name)
    if len(values) > 1:
        raise ParamError(name, f"'{name}' was given {len(values)} times; give it once.")
    if not values:
        return None
    value = values[0].strip()
    return value or None


def date_value(query: QueryDict, name: str) -> date | None:
    """A local date between MIN_DATE and `max_date()`, or None."""
    value = one(query, name)
    if value is None:
        return None
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise ParamError(name, f"'{name}' must be a date like 2026-03-31, got {value[:40]!r}.") from None
    latest = max_date()
    if not MIN_DATE <= parsed <= latest:
        raise ParamError(name, f"'{name}' must be between {MIN_DATE} and {latest}, got {parsed}.")
    return parsed


def max_date() -> date:
    """The last date a staff endpoint accepts: MAX_DAYS_AHEAD days after today (local)."""
    return timezone.localdate() + timedelta(days=MAX_DAYS_AHEAD)


def choice(query: QueryDict, name: str, choices: tuple[str, ...]) -> str | None:
    """One of `choices`, or None."""
    value = one(query, name)
    if value is not None and value not in choices:
        raise ParamError(name, f"'{name}' must be one of {', '.join(choices)}; got {value[:40]!r}.")
    return value


def boolean(query: QueryDict, name: str) -> bool | None:
    """true/false (also 1/0, yes/no), or None."""
    value = one(query, name)
    if value is None:
        return None
    lowered = value.lower()
    if lowered in {"1", "true", "yes"}:
        return True
    if lowered in {"0", "false", "no"}:
        return False
    raise ParamError(name, f"'{name}' must be true or false, got {value[:40]!r}.")


def check_known(query: QueryDict, allowed: set[str]) -> None:
    """Refuse any parameter not in `allowed`, so that a typo is not silently ignored."""
    for name in query:
        if name not in allowed:
            raise ParamError(name, f"Unknown parameter '{name[:40]}'; allowed: {', '.join(sorted(allowed))}.")


def source(query: QueryDict, name: str = "source") -> str | None:
    """A session source such as `widget`, `api` or `import:csv` (SOURCE_PATTERN), or None."""
    value = one(query, name)
    if value is not None and not SOURCE_PATTERN.fullmatch(value):
        raise ParamError(
            name,
            f"'{name}' must be a source such as widget, api or import:<format> (a-z, 0-9, _.:-; at most "
            f"32 characters), got {value[:40]!r}.",
        )
    return value


@dataclass(frozen=True, slots=True)
class PeriodQuery:
    """A period and the filters of a summary request."""

    period: Period
    filters: Filters
    range: str | None


PERIOD_PARAMS = {"start_date", "end_date", "range", "user_type", "provider", "source"}


def period_query(query: QueryDict, *, extra: set[str] = frozenset()) -> PeriodQuery:  # type: ignore[assignment]
    """`start_date`/`end_date` (local dates, inclusive) or `range`, plus `user_type`, `provider`, `source`.

    With neither, the last 7 days ending today. `end_date` alone means the 7 days ending then;
    `start_date` alone, from then to today.
    """
    check_known(query, PERIOD_PARAMS | set(extra))
    start, end = date_value(query, "start_date"), date_value(query, "end_date")
    named = choice(query, "range", tuple(RANGES))
    if named is not None and (start or end):
        raise ParamError("range", "Give either 'range' or 'start_date'/'end_date', not both.")
    today = timezone.localdate()
    if named == "24h":
        period = Period.last_hours(24)
    elif named is not None:
        period = Period.ending(today, RANGES[named])
    elif start is None and end is None:
        period, named = Period.ending(today, RANGES[DEFAULT_RANGE]), DEFAULT_RANGE
    else:
        end = end or today
        start = start or end - timedelta(days=RANGES[DEFAULT_RANGE] - 1)
        if start > end:
            raise ParamError("start_date", f"'start_date' ({start}) is after 'end_date' ({end}).")
        if (end - start).days + 1 > MAX_DAYS:
            raise ParamError("start_date", f"The range is {(end - start).days + 1} days; the most is {MAX_DAYS}.")
        period = Period(start=start, end=end)
    user_type = choice(query, "user_type", USER_TYPES)
    provider = choice(query, "provider", PROVIDERS)
    filters = Filters(user_type=user_type, provider=provider, source=source(query))
    return PeriodQuery(period=period, filters=filters, range=named)


@dataclass(frozen=True, slots=True)
class ExportQuery:
    """Filters of an export."""

    period: Period | None
    user_type: str | None
    is_active: bool | None
    session_id: uuid.UUID | None
    sender_type: str | None
    resolved: bool | None
    format: str
    source: str | None = None


EXPORT_PARAMS = {
    "start_date", "end_date", "user_type", "is_active", "session_id", "sender_type", "resolved", "format", "source"
}  # fmt: skip


def export_query(query: QueryDict, *, allowed: set[str]) -> ExportQuery:
    """The filters an export accepts (`allowed`, a subset of EXPORT_PARAMS); no dates means all time."""
    check_known(query, allowed)
    start, end = date_value(query, "start_date"), date_value(query, "end_date")
    period = None
    if start or end:
        start, end = start or MIN_DATE, end or timezone.localdate()
        if start > end:
            raise ParamError("start_date", f"'start_date' ({start}) is after 'end_date' ({end}).")
        period = Period(start=start, end=end)
    session_id = one(query, "session_id")
    parsed_session: uuid.UUID | None = None
    if session_id is not None:
        try:
            parsed_session = uuid.UUID(session_id)
        except ValueError:
            raise ParamError("session_id", f"'session_id' must be a session UUID, got {session_id[:40]!r}.") from None
    return ExportQuery(
        period=period,
        user_type=choice(query, "user_type", USER_TYPES),
        is_active=boolean(query, "is_active"),
        session_id=parsed_session,
        sender_type=choice(query, "sender_type", tuple(ChatMessage.Role.values)),
        resolved=boolean(query, "resolved"),
        format=choice(query, "format", ("csv", "jsonl")) or "csv",
        source=source(query),
    )


def as_dict(value: Any) -> dict[str, Any]:
    """JSON form of a PeriodQuery, echoed in API answers."""
    return {"period": value.period.as_dict(), "filters": value.filters.as_dict(), "range": value.range}
