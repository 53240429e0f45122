"""Alert reads: a rule's current number (through the dashboard's own selectors), the banner, the rules due.

A rule never computes a metric of its own: a window is read with `analytics.selectors.
period_totals` (what `summary` sums for the dashboard, the API and the report) and the value
with the registry's formula (`METRICS[key].value`), rounded as every surface rounds it
(`round_value`); live numbers come from `analytics.selectors.live_numbers`, the dashboard's
live cards. `provider_failures` rules read the registry's `failed_provider_calls` the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Max, Q
from django.utils import timezone

from alerts import rules, text
from alerts.models import AlertEvent, AlertRule, AlertState
from analytics import metrics
from analytics import selectors as analytics_selectors
from analytics.selectors import Filters, Period

#: The banner lists at most this many firing alerts (the history has them all).
BANNER_LIMIT = 20


def rule_period(rule: AlertRule, now: datetime) -> Period:
    """The rule's window: exactly the last `window_minutes` up to `now`."""
    return Period.between(now - timedelta(minutes=rule.window_minutes), now)


def rule_filters(rule: AlertRule) -> Filters:
    """The rule's filters, as the dashboard's selectors take them."""
    return Filters(user_type=rule.user_type or None, provider=rule.provider or None)


def reading(rule: AlertRule, *, now: datetime | None = None) -> rules.Reading:
    """The rule's number now, and the sample it stands on."""
    now = now or timezone.now()
    if rule.kind == AlertRule.Kind.WAITING:
        live = analytics_selectors.live_numbers(now)
        waiting = live["waiting_now"]
        value = round(live["longest_wait_ms"] / 60_000, 2)
        return rules.Reading(value=value, detail=f"{waiting} visitor{'s' if waiting != 1 else ''} waiting")
    if rule.kind == AlertRule.Kind.METRIC and rule.metric in metrics.LIVE:
        value = analytics_selectors.live_numbers(now)[rule.metric]
        return rules.Reading(value=float(value))
    totals = analytics_selectors.period_totals(rule_period(rule, now), rule_filters(rule))
    basis = rules.SAMPLES[rule.sample or rules.default_sample(rule.kind, rule.metric)]
    sample = basis.count(totals)
    key = rules.PROVIDER_FAILURES_METRIC if rule.kind == AlertRule.Kind.PROVIDER_FAILURES else rule.metric
    value = metrics.round_value(key, metrics.METRICS[key].value(totals))
    return rules.Reading(value=None if value is None else float(value), sample=sample)


def rules_to_evaluate() -> list[AlertRule]:
    """Active rules, and inactive ones still firing (switching a rule off resolves its alert)."""
    return list(AlertRule.objects.filter(Q(active=True) | Q(state__firing=True)).order_by("pk"))


def state_of(rule_id: int) -> AlertState:
    """The rule's state row (made on first use)."""
    state, _ = AlertState.objects.get_or_create(rule_id=rule_id)
    return state


def event(event_id: int) -> AlertEvent | None:
    """One history row."""
    return AlertEvent.objects.filter(pk=event_id).first()


def firing_events() -> list[AlertEvent]:
    """The alerts firing now, newest first."""
    return list(
        AlertEvent.objects.filter(state=AlertEvent.State.FIRING).select_related("rule", "rule__state")[:BANNER_LIMIT]
    )


def banner() -> dict[str, Any]:
    """The dashboard banner's JSON: every firing alert, its value against the threshold, since when."""
    items = []
    for item in firing_events():
        rule = item.rule
        state = getattr(rule, "state", None)
        current = state.value if state is not None else None
        items.append(
            {
                "id": item.pk,
                "rule_id": rule.pk,
                "name": rule.name,
                "kind": item.kind,
                "metric": item.metric,
                "label": rules.label(item.kind, item.metric),
                "unit": rules.unit(item.kind, item.metric),
                "comparison": item.comparison,
                "threshold": item.threshold,
                "threshold_text": text.value_text(item.kind, item.metric, item.threshold),
                "value": current if current is not None else item.value,
                "value_text": text.value_text(item.kind, item.metric, current if current is not None else item.value),
                "fired_value": item.value,
                "fired_at": item.fired_at.isoformat(),
                "message": item.message,
                "history_url": text.history_path(rule.pk),
            }
        )
    checked = AlertState.objects.filter(rule__active=True).aggregate(last=Max("evaluated_at"))["last"]
    return {
        "alerts": items,
        "count": AlertEvent.objects.filter(state=AlertEvent.State.FIRING).count(),
        "history_url": text.history_path(),
        "evaluated_at": checked.isoformat() if checked else None,
    }
