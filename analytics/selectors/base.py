"""The period's rollup rows and their sums: `Period`, `Filters`, `period_totals`, `summary`.

Day periods read the stored daily rollups; a window (the dashboard's last 24 hours) or one
visitor's numbers are rolled up on the fly with the same arithmetic (`analytics.rollup`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Max, Min, Q, QuerySet
from django.utils import timezone

from analytics import metrics, rollup
from analytics.metrics import Totals
from analytics.models import ChatAnalytics, DailyProviderRollup, DailySessionRollup
from assistant.models import ProviderCall

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
SESSION_ROLLUP_FIELDS = [
    f.name
    for f in DailySessionRollup._meta.concrete_fields
    if f.name not in {"id", "user_type", "provider", "source", "computed_at"}
]
SUMMARY_ROLLUP_FIELDS = [name for name in SESSION_ROLLUP_FIELDS if name not in {"topics", "issue_topics", "hours"}]
PROVIDER_ROLLUP_FIELDS = [
    f.name for f in DailyProviderRollup._meta.concrete_fields if f.name not in {"id", "computed_at"}
]


@dataclass(frozen=True, slots=True)
class Period:
    """Whole local days from `start` to `end`, inclusive; or, with `window`, exactly those times.

    Day periods read the stored daily rollups. A window (the dashboard's "last 24 hours") is
    rolled up on the fly from the sessions that started in it and the calls made in it, with
    the same arithmetic (`analytics.rollup`); `start`/`end` are then the local days it touches.
    """

    start: date
    end: date
    window: tuple[datetime, datetime] | None = None

    @classmethod
    def ending(cls, end: date, days: int) -> Period:
        """The `days` days that end with `end`."""
        return cls(start=end - timedelta(days=days - 1), end=end)

    @classmethod
    def last_hours(cls, hours: int, now: datetime | None = None) -> Period:
        """The `hours` hours up to `now`."""
        now = now or timezone.now()
        return cls.between(now - timedelta(hours=hours), now)

    @classmethod
    def between(cls, start: datetime, end: datetime) -> Period:
        """Exactly `[start, end)`."""
        return cls(start=timezone.localdate(start), end=timezone.localdate(end), window=(start, end))

    @property
    def days(self) -> int:
        """How many (local) days the period covers or touches."""
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        if self.window is not None:
            start, end = self.window
            return Period.between(start - (end - start), start)
        return Period.ending(self.start - timedelta(days=1), self.days)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        data: dict[str, Any] = {"start": self.start.isoformat(), "end": self.end.isoformat(), "days": self.days}
        if self.window is not None:
            data["start_time"], data["end_time"] = (moment.isoformat() for moment in self.window)
            data["hours"] = round((self.window[1] - self.window[0]).total_seconds() / 3600, 2)
        return data


@dataclass(frozen=True, slots=True)
class Filters:
    """Optional narrowing of a summary."""

    user_type: str | None = None
    provider: str | None = None
    source: str | None = None
    external_user_id: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        """JSON form."""
        return {
            "user_type": self.user_type,
            "provider": self.provider,
            "source": self.source,
            "external_user_id": self.external_user_id,
        }

    @property
    def per_session(self) -> bool:
        """Whether the rollups cannot answer (they are kept per day, user type, provider and source)."""
        return bool(self.external_user_id)

    def sessions(self, prefix: str = "session__") -> Q:
        """The source and visitor filters on `ChatSession` fields reached through `prefix`."""
        q = Q()
        if self.source:
            q &= Q(**{f"{prefix}source": self.source})
        if self.external_user_id:
            q &= Q(**{f"{prefix}external_user_id": self.external_user_id})
        return q


def _session_rows(period: Period, filters: Filters, *fields: str) -> Iterable[dict[str, Any]]:
    """The period's session rollup rows as dicts of `fields` (stored, or rolled up for a window)."""
    if period.window is not None or filters.per_session:
        names = fields or SESSION_ROLLUP_FIELDS
        return [
            {name: getattr(row, name) for name in names}
            for row in rollup.session_rows(_sessions_in(period, filters), by_source=False)
        ]
    rows = DailySessionRollup.objects.filter(day__gte=period.start, day__lte=period.end)
    if filters.user_type:
        rows = rows.filter(user_type=filters.user_type)
    if filters.provider:
        rows = rows.filter(provider=filters.provider)
    if filters.source:
        rows = rows.filter(source=filters.source)
    return rows.values(*(fields or SESSION_ROLLUP_FIELDS))


def _provider_rows(period: Period, filters: Filters) -> Iterable[dict[str, Any]]:
    """The period's provider rollup rows as dicts (stored, or rolled up for a window)."""
    if period.window is not None or filters.per_session:
        calls = ProviderCall.objects.filter(filters.sessions())
        if filters.provider:
            calls = calls.filter(Q(provider=filters.provider) | Q(fallback_from=filters.provider))
        start, end = _bounds(period)
        if period.window is None:  # days without one of the filtered calls need no query of their own
            seen = calls.filter(started_at__gte=start, started_at__lt=end).aggregate(
                low=Min("started_at"), high=Max("started_at")
            )
            if seen["low"] is None:
                return []
            start, end = seen["low"], seen["high"] + timedelta(microseconds=1)
        out = []
        for day, low, high in rollup.day_parts(start, end):
            out += [
                {name: getattr(row, name) for name in PROVIDER_ROLLUP_FIELDS}
                for row in rollup.provider_rows(calls.filter(started_at__gte=low, started_at__lt=high), day)
                if not filters.provider or row.provider == filters.provider
            ]
        return out
    rows = DailyProviderRollup.objects.filter(day__gte=period.start, day__lte=period.end)
    if filters.provider:
        rows = rows.filter(provider=filters.provider)
    if filters.source:
        rows = rows.filter(source=filters.source)
    return rows.values(*PROVIDER_ROLLUP_FIELDS)


def period_totals(period: Period, filters: Filters = Filters()) -> Totals:
    """The sums of a period's rollup rows."""
    totals = Totals()
    # Topics and hours feed the breakdowns, not the summary: not decoding them saves a third.
    for row in _session_rows(period, filters, *SUMMARY_ROLLUP_FIELDS):
        totals.add_session_row(row)
    for row in _provider_rows(period, filters):
        totals.add_provider_row(row)
    return totals


def summary(period: Period, filters: Filters = Filters()) -> dict[str, Any]:
    """Every metric of the period, the previous period's, and the change of each headline one."""
    current = metrics.summarize(period_totals(period, filters))
    previous = metrics.summarize(period_totals(period.previous(), filters))
    return {
        "period": period.as_dict(),
        "previous_period": period.previous().as_dict(),
        "filters": filters.as_dict(),
        "metrics": {key: metrics.round_value(key, value) for key, value in current.items()},
        "changes": {
            key: _rounded_change(key, current[key], previous[key]) for key in metrics.headline() if key in current
        },
    }


def _rounded_change(key: str, current: Any, previous: Any) -> dict[str, Any]:
    result = metrics.change(current, previous)
    result["previous"] = metrics.round_value(key, result["previous"])  # type: ignore[arg-type]
    return result


def _bounds(period: Period) -> tuple[datetime, datetime]:
    if period.window is not None:
        return period.window
    zone = timezone.get_current_timezone()
    start = datetime.combine(period.start, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(period.end + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return start, end


def _sessions_in(period: Period, filters: Filters) -> QuerySet[ChatAnalytics]:
    if period.window is not None:
        rows = ChatAnalytics.objects.filter(started_at__gte=period.window[0], started_at__lt=period.window[1])
    else:
        rows = ChatAnalytics.objects.filter(day__gte=period.start, day__lte=period.end)
    if filters.user_type:
        rows = rows.filter(user_type=filters.user_type)
    if filters.provider:
        rows = rows.filter(provider=filters.provider)
    return rows.filter(filters.sessions())
