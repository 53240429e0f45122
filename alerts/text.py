"""The words of an alert: one place writes what email, Slack, webhooks and the banner say.

Values are printed by the weekly report's formatter (`analytics.reports.format`), so "95 %"
in an alert is the number the dashboard and the report show; waits are in minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from alerts import rules
from analytics.reports.format import format_duration, format_unit

SUBJECT_PREFIX = "[Parley]"
_WORDS = {">": "above", ">=": "at or above", "<": "below", "<=": "at or below"}


@dataclass(frozen=True, slots=True)
class RuleView:
    """What the words need of a rule (a plain snapshot: built inside the evaluation)."""

    name: str
    kind: str
    metric: str
    comparison: str
    threshold: float
    window_minutes: int
    user_type: str = ""
    provider: str = ""
    description: str = ""
    sample: str = ""


def value_text(kind: str, metric: str, value: float | None) -> str:
    """A rule's value or threshold as people read it ("82.5%", "14 min 12 s", "$12.40")."""
    if value is None:
        return "no data"
    unit = rules.unit(kind, metric)
    if unit == "minutes":
        return format_duration(value * 60_000) if value * 60 >= 1 else "0 s"
    return format_unit(unit, value)


def window_text(minutes: int) -> str:
    """ "the last 15 min", "the last 24 h", "the last 7 days"."""
    if minutes % 1440 == 0 and minutes > 1440:
        return f"the last {minutes // 1440} days"
    if minutes % 60 == 0:
        return f"the last {minutes // 60} h"
    return f"the last {minutes} min"


def scope_text(rule: RuleView) -> str:
    """Where the value was read: the window and filters ("over the last 15 min, provider openai")."""
    if rules.is_live(rule.kind, rule.metric):
        return "now"
    parts = [f"over {window_text(rule.window_minutes)}"]
    if rule.user_type:
        parts.append(f"{rule.user_type} visitors")
    if rule.provider:
        parts.append(f"provider {rule.provider}")
    return ", ".join(parts)


def condition_text(rule: RuleView) -> str:
    """ "above $20.00" — the condition the rule alerts on."""
    return f"{_WORDS.get(rule.comparison, rule.comparison)} {value_text(rule.kind, rule.metric, rule.threshold)}"


def subject(name: str, transition: str) -> str:
    """An email's subject: "[Parley] Alert: <rule>" or "[Parley] Resolved: <rule>"."""
    return f"{SUBJECT_PREFIX} {'Alert' if transition == 'fired' else 'Resolved'}: {name}"


def fired(rule: RuleView, *, value: float, sample: int | None, detail: str) -> str:
    """What a firing says."""
    what = rules.label(rule.kind, rule.metric)
    text = (
        f"{rule.name}: {what} is {value_text(rule.kind, rule.metric, value)} {scope_text(rule)}, {condition_text(rule)}"
    )
    extra = detail or _sample_text(rule, sample)
    return f"{text} ({extra})." if extra else f"{text}."


def resolved(rule: RuleView, *, value: float | None, fired_at: datetime, now: datetime, reason: str = "") -> str:
    """What a resolution says (`reason` instead of the value when it was not the value that resolved it)."""
    what = rules.label(rule.kind, rule.metric)
    lasted = format_duration(max(0.0, (now - fired_at).total_seconds() * 1000))
    if reason:
        text = f"{rule.name} resolved: {reason}. It had been firing for {lasted}."
    else:
        text = (
            f"{rule.name} resolved: {what} is back to {value_text(rule.kind, rule.metric, value)} "
            f"{scope_text(rule)} (alerting {condition_text(rule)}). It had been firing for {lasted}."
        )
    return text


def _sample_text(rule: RuleView, sample: int | None) -> str:
    if sample is None or rules.is_live(rule.kind, rule.metric):
        return ""
    basis = rules.SAMPLES.get(rule.sample or rules.default_sample(rule.kind, rule.metric))
    return f"{sample} {basis.label}" if basis else ""


def history_path(rule_id: int | None = None) -> str:
    """The alert history in the admin, for one rule or all."""
    path = reverse("admin:alerts_alertevent_changelist")
    return f"{path}?rule__id__exact={rule_id}" if rule_id is not None else path


def history_url(rule_id: int | None = None) -> str:
    """The history as a link for email and Slack: absolute when ALERTS_SITE_URL is set."""
    return settings.ALERTS_SITE_URL.rstrip("/") + history_path(rule_id)


def body(text: str, *, description: str, rule_id: int, at: datetime) -> str:
    """An email's plain text: what happened, what to do, where the history is."""
    lines = [text, "", f"At {timezone.localtime(at):%Y-%m-%d %H:%M %Z}."]
    if description:
        lines += ["", description]
    lines += ["", f"History: {history_url(rule_id)}"]
    return "\n".join(lines) + "\n"
