"""Alert writes: evaluate the rules, fire and resolve them (once, across processes), record deliveries.

An evaluation of a rule has two steps:

1. `rule_plan` reads the rule's state and its number (outside any transaction: the reads can
   take a while) and decides with `rules.decide`;
2. `rule_apply` stores the decision with a guarded update (`version` as read in step 1). Of two
   processes that evaluated the rule at the same moment, one updates one row and fires; the
   other updates none and does nothing. On firing or resolving it writes the history row and,
   in the same transaction, the `alert.fired` / `alert.resolved` webhook (the webhooks app's
   durable outbox), so a webhook is sent exactly when an alert is stored.

Email and Slack go after the commit (`deliver_now`, or the sweep's own tasks), bounded by
their timeouts; what they answered is appended to the history row (`deliveries_record`).
A rule evaluated less than half an interval ago (by another process) is skipped, so several
processes do not count one breach several times towards `consecutive`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from alerts import channels, notifiers, rules, selectors, text
from alerts.models import AlertEvent, AlertRule, AlertState
from webhooks import routes as webhook_routes
from webhooks import services as webhook_services

logger = logging.getLogger(__name__)

#: A history row keeps at most this many delivery results (the latest).
MAX_DELIVERIES = 50
SWITCHED_OFF = "the rule was switched off"


@dataclass(frozen=True, slots=True)
class Plan:
    """What one evaluation of a rule read and decided, and the state version it read."""

    rule: AlertRule
    version: int
    firing: bool
    open_event_id: int | None
    reading: rules.Reading | None
    decision: rules.Decision
    now: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an evaluation did: its status, whether it fired or resolved, what to deliver."""

    rule_id: int
    status: str
    fired: bool = False
    resolved: bool = False
    #: "" (stored), "recent" (another process evaluated it just now), "lost" (the guarded update lost).
    skipped: str = ""
    notice: notifiers.Notice | None = None


@dataclass(slots=True)
class Pass:
    """One evaluation pass over every rule."""

    outcomes: list[Outcome] = field(default_factory=list)
    errors: int = 0

    @property
    def fired(self) -> int:
        """Rules that fired in this pass."""
        return sum(1 for outcome in self.outcomes if outcome.fired)

    @property
    def resolved(self) -> int:
        """Rules that resolved in this pass."""
        return sum(1 for outcome in self.outcomes if outcome.resolved)

    @property
    def notices(self) -> list[notifiers.Notice]:
        """What is left to deliver by email and Slack."""
        return [outcome.notice for outcome in self.outcomes if outcome.notice is not None]


def limits(rule: AlertRule) -> rules.Limits:
    """The settings of `rule` that `rules.decide` reads."""
    return rules.Limits(
        comparison=rule.comparison,
        threshold=rule.threshold,
        hysteresis=rule.hysteresis,
        min_sample=0 if rules.is_live(rule.kind, rule.metric) else rule.min_sample,
        consecutive=rule.consecutive,
        cooldown=timedelta(minutes=rule.cooldown_minutes),
        ceiling=rules.ceiling(rule.kind, rule.metric),
    )


def min_gap() -> timedelta:
    """How recent an evaluation by another process makes a rule skip this pass."""
    return timedelta(seconds=settings.ALERTS_INTERVAL_S / 2)


def rule_plan(rule: AlertRule, *, now: datetime) -> Plan | None:
    """Read the rule's state and number and decide; None when it was evaluated just now."""
    state = selectors.state_of(rule.pk)
    if state.evaluated_at is not None and now - state.evaluated_at < min_gap():
        return None
    base = {
        "rule": rule,
        "version": state.version,
        "firing": state.firing,
        "open_event_id": state.open_event_id,
        "now": now,
    }
    memory = rules.Memory(firing=state.firing, breaches=state.breaches, resolved_at=state.resolved_at)
    if not rule.active:
        return Plan(**base, reading=None, decision=rules.Decision("ok", 0, resolve=state.firing), reason=SWITCHED_OFF)
    try:
        reading = selectors.reading(rule, now=now)
    except Exception:
        logger.exception("Alert rule %s (%r) could not be read; it neither fires nor resolves", rule.pk, rule.name)
        return Plan(**base, reading=None, decision=rules.Decision("error", state.breaches))
    return Plan(**base, reading=reading, decision=rules.decide(reading, memory, limits(rule), now=now))


def rule_apply(plan: Plan) -> Outcome:
    """Store a plan if nobody evaluated the rule since it was read; fire or resolve as it says."""
    rule, decision, now = plan.rule, plan.decision, plan.now
    reading = plan.reading
    fields: dict[str, Any] = {
        "status": decision.status,
        "breaches": decision.breaches,
        "evaluated_at": now,
        "version": F("version") + 1,
    }
    if reading is not None:
        fields.update(value=reading.value, sample=reading.sample)
    if decision.fire:
        fields["firing"] = True
    if decision.resolve:
        fields.update(firing=False, resolved_at=now, open_event=None)
    with transaction.atomic():
        if not AlertState.objects.filter(pk=rule.pk, version=plan.version).update(**fields):
            return Outcome(rule_id=rule.pk, status=decision.status, skipped="lost")
        if decision.fire and reading is not None and reading.value is not None:
            event = _fire(rule, reading, now)
            AlertState.objects.filter(pk=rule.pk).update(open_event=event)
            return Outcome(rule_id=rule.pk, status=decision.status, fired=True, notice=_notice(rule, event, "fired"))
        if decision.resolve:
            event = _resolve(rule, plan, now)
            notice = _notice(rule, event, "resolved") if event is not None else None
            return Outcome(rule_id=rule.pk, status=decision.status, resolved=True, notice=notice)
    return Outcome(rule_id=rule.pk, status=decision.status)


def _view(rule: AlertRule) -> text.RuleView:
    return text.RuleView(
        name=rule.name,
        kind=rule.kind,
        metric=rule.metric,
        comparison=rule.comparison,
        threshold=rule.threshold,
        window_minutes=rule.window_minutes,
        user_type=rule.user_type,
        provider=rule.provider,
        description=rule.description,
        sample=rule.sample,
    )


def _fire(rule: AlertRule, reading: rules.Reading, now: datetime) -> AlertEvent:
    value = float(reading.value)  # type: ignore[arg-type]
    message = text.fired(_view(rule), value=value, sample=reading.sample, detail=reading.detail)
    event = AlertEvent.objects.create(
        rule=rule,
        kind=rule.kind,
        metric=rule.metric,
        comparison=rule.comparison,
        threshold=rule.threshold,
        value=value,
        sample=reading.sample,
        fired_at=now,
        message=message,
    )
    logger.warning("Alert fired: %s", message)
    _emit(rule, event, "alert.fired")
    return event


def _resolve(rule: AlertRule, plan: Plan, now: datetime) -> AlertEvent | None:
    event = AlertEvent.objects.filter(pk=plan.open_event_id, state=AlertEvent.State.FIRING).first()
    if event is None:
        return None  # its history row was deleted meanwhile: nothing to tell
    value = plan.reading.value if plan.reading is not None else None
    message = text.resolved(_view(rule), value=value, fired_at=event.fired_at, now=now, reason=plan.reason)
    event.state = AlertEvent.State.RESOLVED
    event.resolved_at = now
    event.resolved_value = value
    event.resolve_message = message
    event.save(update_fields=["state", "resolved_at", "resolved_value", "resolve_message"])
    logger.warning("Alert resolved: %s", message)
    _emit(rule, event, "alert.resolved")
    return event


def webhook_data(rule: AlertRule, event: AlertEvent) -> dict[str, Any]:
    """The `data` of an `alert.fired` / `alert.resolved` webhook."""
    return {
        "alert_id": event.pk,
        "rule_id": rule.pk,
        "rule": rule.name,
        "state": event.state,
        "kind": event.kind,
        "metric": event.metric or None,
        "label": rules.label(event.kind, event.metric),
        "unit": rules.unit(event.kind, event.metric),
        "comparison": event.comparison,
        "threshold": event.threshold,
        "window_minutes": None if rules.is_live(event.kind, event.metric) else rule.window_minutes,
        "filters": {"user_type": rule.user_type or None, "provider": rule.provider or None},
        "value": event.value,
        "sample": event.sample,
        "fired_at": event.fired_at.isoformat(),
        "resolved_at": event.resolved_at.isoformat() if event.resolved_at else None,
        "resolved_value": event.resolved_value,
        "message": event.resolve_message if event.state == AlertEvent.State.RESOLVED else event.message,
        "history_url": text.history_url(rule.pk),
    }


def _emit(rule: AlertRule, event: AlertEvent, kind: str) -> None:
    """Queue the webhook in this transaction; a failure is recorded, never undoes the alert.

    Nothing is recorded when no active endpoint wants `kind` (nothing is sent either).
    """
    if not rule.webhook:
        return
    transition = "fired" if kind == "alert.fired" else "resolved"
    result: dict[str, Any] = {
        "event": transition,
        "channel": "webhook",
        "target": kind,
        "at": timezone.now().isoformat(),
    }
    try:
        endpoints = len(webhook_routes.endpoints_for(kind))
        if not endpoints:
            return
        with transaction.atomic():  # a savepoint: a failing outbox write rolls back alone
            webhook_services.emit(kind, webhook_data(rule, event), conversation_id=None)
    except Exception as error:
        logger.exception("Alert %s: could not queue the %s webhook", event.pk, kind)
        result.update(ok=False, detail=f"{type(error).__name__}: {error}"[: notifiers.MAX_DETAIL_CHARS])
    else:
        result.update(ok=True, detail=f"queued for {endpoints} endpoint(s)")
    event.deliveries = [*event.deliveries, result][-MAX_DELIVERIES:]
    event.save(update_fields=["deliveries"])


def _notice(rule: AlertRule, event: AlertEvent, transition: notifiers.Transition) -> notifiers.Notice | None:
    emails = tuple(channels.email_list(rule.emails))
    slack_urls = tuple(channels.url_list(rule.slack_urls))
    if not emails and not slack_urls:
        return None
    if transition == "fired":
        message, at = event.message, event.fired_at
    else:
        message, at = event.resolve_message, event.resolved_at or event.fired_at
    return notifiers.Notice(
        event_id=event.pk,
        rule_id=rule.pk,
        transition=transition,
        subject=text.subject(rule.name, transition),
        text=message,
        email_body=text.body(message, description=rule.description, rule_id=rule.pk, at=at),
        history_url=text.history_url(rule.pk),
        emails=emails,
        slack_urls=slack_urls,
    )


def deliveries_record(*, event_id: int, results: list[dict[str, Any]]) -> None:
    """Append what the channels answered to the alert's history row."""
    if not results:
        return
    with transaction.atomic():
        event = AlertEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            return
        event.deliveries = [*event.deliveries, *results][-MAX_DELIVERIES:]
        event.save(update_fields=["deliveries"])


def deliver_now(notice: notifiers.Notice) -> None:
    """Send a notice by email and Slack here and now, and record what they answered."""
    deliveries_record(event_id=notice.event_id, results=notifiers.send(notice))


def rule_evaluate(rule: AlertRule, *, now: datetime | None = None) -> Outcome:
    """Evaluate one rule (plan, then apply); nothing is delivered by email or Slack here."""
    now = now or timezone.now()
    plan = rule_plan(rule, now=now)
    if plan is None:
        return Outcome(rule_id=rule.pk, status="", skipped="recent")
    return rule_apply(plan)


def alerts_evaluate(*, now: datetime | None = None, deliver: bool = True) -> Pass:
    """One pass over every rule due; with `deliver`, send the emails and Slack messages before returning.

    The sweep passes `deliver=False` and sends them from tasks of its own, so that a slow mail
    server never delays the next evaluation. A rule that fails is logged and the others go on.
    """
    now = now or timezone.now()
    result = Pass()
    for rule in selectors.rules_to_evaluate():
        try:
            result.outcomes.append(rule_evaluate(rule, now=now))
        except Exception:
            result.errors += 1
            logger.exception("Alert rule %s (%r) could not be evaluated", rule.pk, rule.name)
    if deliver:
        for notice in result.notices:
            deliver_now(notice)
    return result
