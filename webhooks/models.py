"""Webhook endpoints, the outbox of deliveries, and the log of every attempt.

The outbox is one row per (event, endpoint): written by the chat's own transaction (one
multi-row INSERT per write, whatever the number of endpoints), carrying the exact body that is
signed and sent, so that a retry a day later sends the same bytes under the same `webhook-id`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

#: Every event type, in the order the admin shows them (docs/api.md, "Webhooks").
EVENT_TYPES: tuple[tuple[str, str], ...] = (
    ("conversation.started", "A conversation started (its first message, rating or event)"),
    ("message.created", "A message was stored: visitor, agent, or a finished AI reply"),
    ("reply.completed", "An AI reply ended complete (or stopped by the visitor)"),
    ("reply.failed", "An AI reply failed (every provider) or was interrupted"),
    ("feedback.created", "Thumbs up or down on a reply"),
    ("feedback.updated", "A visitor changed their thumbs on a reply"),
    ("rating.created", "The end-of-chat survey"),
    ("handoff.requested", "The visitor asked for a person"),
    ("handoff.assigned", "A person took the conversation (claim, takeover or transfer)"),
    ("conversation.closed", "The visitor ended the conversation, or left while waiting"),
    ("alert.fired", "An alert rule fired"),
    ("alert.resolved", "An alert rule resolved"),
)
EVENT_TYPE_NAMES: frozenset[str] = frozenset(name for name, _ in EVENT_TYPES)


class WebhookEndpoint(models.Model):
    """A URL that receives signed events (Standard Webhooks), with its secret and the types it wants."""

    url = models.URLField(max_length=2000, help_text="Where events are POSTed (https recommended).")
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(
        max_length=120,
        blank=True,
        help_text="Standard Webhooks secret (whsec_ followed by base64). Leave blank to generate one.",
    )
    event_types = models.JSONField(
        default=list, blank=True, help_text="The event types sent here; none selected means every type."
    )
    active = models.BooleanField(default=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_endpoints",
        help_text="Emailed if the endpoint is disabled after failing.",
    )
    owner_email = models.EmailField(blank=True, help_text="Emailed instead of the owner's address, if set.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Health, kept by the dispatcher: every attempt failing since `failing_since` disables it.
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=300, blank=True, editable=False)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.description or self.url

    def wants(self, event_type: str) -> bool:
        """Whether events of `event_type` are sent here (no types selected: all of them)."""
        return not self.event_types or event_type in self.event_types


class WebhookDelivery(models.Model):
    """One event for one endpoint: the outbox row, then its delivery state.

    `endpoint` has no database constraint on purpose: a process whose list of endpoints is a
    few seconds stale may still write a row for an endpoint deleted meanwhile, and that must not
    fail the chat's transaction (such rows are never claimed, and are pruned).
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Given up"

    event_id = models.CharField(max_length=40, help_text="The webhook-id header: the same for every attempt.")
    event_type = models.CharField(max_length=40)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, db_constraint=False, related_name="deliveries"
    )
    conversation_id = models.CharField(
        max_length=36, blank=True, help_text="Events of one conversation are delivered in order."
    )
    body = models.TextField(help_text="The JSON body exactly as signed and sent.")
    occurred_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    leased_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=48, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-pk"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # The dispatcher's claim: due pending rows, oldest first.
            models.Index(fields=["next_attempt_at"], condition=Q(state="pending"), name="webhookdelivery_due_idx"),
            # Per-conversation order: is an earlier row of this conversation still pending?
            models.Index(
                fields=["endpoint", "conversation_id", "id"],
                condition=Q(state="pending"),
                name="webhookdelivery_order_idx",
            ),
            # The pruning by age of what is done. Partial, like the two above, so that the chat's
            # INSERT of a pending row touches no index but those two (and the primary key).
            models.Index(fields=["created_at"], condition=~Q(state="pending"), name="webhookdelivery_done_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery: the delivery log."""

    # No database constraint: an attempt that ends after its endpoint (and deliveries) were
    # deleted in the admin is dropped by the join, not an error in the dispatcher.
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, db_constraint=False, related_name="log")
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    response_excerpt = models.CharField(max_length=1000, blank=True, help_text="The start of the answer's body.")

    class Meta:
        ordering = ["-attempted_at", "-pk"]
        indexes = [models.Index(fields=["attempted_at"], name="webhookattempt_at_idx")]

    def __str__(self) -> str:
        return f"{self.status_code or self.error} at {self.attempted_at:%Y-%m-%d %H:%M:%S}"

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
