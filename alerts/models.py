"""Alert rules (edited by people), their state (written by the sweep) and their history.

The rule and its state are two rows on purpose: the admin saves every field of a rule it
shows, and a save that also wrote the state would overwrite what a sweep stored meanwhile.
The sweep alone writes `AlertState`, with a guarded update on `version`, so two processes that
evaluate a rule at the same moment fire it once. `AlertEvent` is one firing, from the moment it
fired to the moment it resolved, with what each channel answered.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from alerts import channels, rules


class AlertRule(models.Model):
    """A condition on a metric or a live number, and who to tell when it holds."""

    class Kind(models.TextChoices):
        METRIC = "metric", "A metric of the registry"
        WAITING = "waiting", "Visitors waiting for a person (minutes)"
        PROVIDER_FAILURES = "provider_failures", "Provider failures in the window"

    class Comparison(models.TextChoices):
        GT = ">", "> (above)"
        GE = ">=", "≥ (at or above)"
        LT = "<", "< (below)"
        LE = "<=", "≤ (at or below)"

    class Sample(models.TextChoices):
        AUTO = "", "Automatic (the metric's own denominator)"
        SESSIONS = "sessions", "Sessions"
        REPLIES = "replies", "Finished replies"
        ASSISTANT_MESSAGES = "assistant_messages", "Assistant replies"
        RATED_REPLIES = "rated_replies", "Rated replies (thumbs up or down)"
        RATINGS = "ratings", "End-of-chat ratings"
        PROVIDER_CALLS = "provider_calls", "Provider calls attempted"
        HANDOFF_REQUESTS = "handoff_requests", "Requests for a person answered"

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True, max_length=2000, help_text="What to do when it fires (sent along).")
    active = models.BooleanField(default=False, help_text="Evaluated by the sweep only when active.")
    kind = models.CharField(max_length=24, choices=Kind.choices, default=Kind.METRIC)
    metric = models.CharField(
        max_length=64, blank=True, help_text="A metric key of the registry (analytics/metrics/registry.py)."
    )
    window_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(rules.MAX_WINDOW_MINUTES)],
        help_text="The metric over the last this-many minutes (ignored for live numbers).",
    )
    comparison = models.CharField(max_length=2, choices=Comparison.choices, default=Comparison.GT)
    threshold = models.FloatField(
        help_text="In the metric's unit: percent 0–100, ms, USD, a count; minutes for waiting rules."
    )
    hysteresis = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="How far back past the threshold the value must go to resolve, in the same unit. "
        "Empty: 10 % of the threshold.",
    )
    min_sample = models.PositiveIntegerField(
        default=0, help_text="Fewer than this many in the window: not enough data, neither fire nor resolve."
    )
    sample = models.CharField(max_length=24, choices=Sample.choices, blank=True, default=Sample.AUTO)
    consecutive = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(rules.MAX_CONSECUTIVE)],
        help_text="Fire only after this many evaluations in a row past the threshold.",
    )
    cooldown_minutes = models.PositiveIntegerField(
        default=30, validators=[MaxValueValidator(7 * 24 * 60)], help_text="No new firing this long after resolving."
    )
    user_type = models.CharField(max_length=16, blank=True, help_text="Only sessions of this visitor type.")
    provider = models.CharField(max_length=32, blank=True, help_text="Only sessions and calls of this provider.")
    emails = models.TextField(blank=True, max_length=2000, help_text="Email addresses, one per line or comma.")
    slack_urls = models.TextField(
        blank=True, max_length=5000, help_text="Slack-compatible incoming-webhook URLs, one per line."
    )
    webhook = models.BooleanField(default=True, help_text="Send alert.fired / alert.resolved to the webhook endpoints.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Refuse a rule the sweep could not evaluate or deliver, naming the field."""
        found = rules.problems(
            kind=self.kind,
            metric=self.metric,
            window_minutes=self.window_minutes or 0,
            comparison=self.comparison,
            threshold=self.threshold if self.threshold is not None else float("nan"),
            hysteresis=self.hysteresis,
            consecutive=self.consecutive or 0,
            sample=self.sample,
            user_type=self.user_type,
            provider=self.provider,
        )
        found.update(channels.problems(emails=self.emails, slack_urls=self.slack_urls))
        found.update(channels.filter_problems(user_type=self.user_type, provider=self.provider))
        if found:
            raise ValidationError(found)


class AlertState(models.Model):
    """Where a rule stands, written only by the sweep (guarded by `version`)."""

    class Status(models.TextChoices):
        OK = "ok", "OK"
        BREACHED = "breached", "Past the threshold, not yet for long enough"
        COOLDOWN = "cooldown", "Past the threshold, in the cooldown"
        FIRING = "firing", "Firing"
        NO_DATA = "no_data", "Not enough data"
        ERROR = "error", "Could not be read"

    rule = models.OneToOneField(AlertRule, primary_key=True, on_delete=models.CASCADE, related_name="state")
    firing = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OK)
    breaches = models.PositiveSmallIntegerField(default=0, help_text="Evaluations in a row past the threshold.")
    value = models.FloatField(null=True, blank=True, help_text="The last evaluation's value.")
    sample = models.PositiveIntegerField(null=True, blank=True, help_text="The last evaluation's sample.")
    evaluated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="When it last resolved (for the cooldown).")
    open_event = models.ForeignKey(
        "AlertEvent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="While firing."
    )
    version = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.status}"


class AlertEvent(models.Model):
    """One firing of a rule, until it resolved: the alert history."""

    class State(models.TextChoices):
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="events")
    state = models.CharField(max_length=10, choices=State.choices, default=State.FIRING)
    kind = models.CharField(max_length=24)
    metric = models.CharField(max_length=64, blank=True)
    comparison = models.CharField(max_length=2)
    threshold = models.FloatField()
    value = models.FloatField(help_text="The value when it fired.")
    sample = models.PositiveIntegerField(null=True, blank=True)
    fired_at = models.DateTimeField()
    message = models.TextField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_value = models.FloatField(null=True, blank=True)
    resolve_message = models.TextField(blank=True)
    #: What each channel answered: [{"event": "fired", "channel": "email", "target", "ok", "detail", "at"}, ...]
    deliveries = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-fired_at", "-pk"]
        indexes = [
            models.Index(fields=["state", "fired_at"], name="alertevent_state_idx"),
            models.Index(fields=["rule", "fired_at"], name="alertevent_rule_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.state} at {self.fired_at:%Y-%m-%d %H:%M}"
