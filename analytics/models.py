"""What analytics stores: one row per session, and daily rollups that dashboards and reports read.

`ChatAnalytics` is derived data: every field can be rebuilt from the chat tables (messages,
feedback, ratings, events, provider calls) by `analytics.services.session_analytics_rebuild`,
which is how crashed sessions are recovered. The live tracker writes the same row from memory
so that the common path costs no reads.

The rollups are derived from `ChatAnalytics` and `ProviderCall`, one row per local day and
dimension, so that a 90-day dashboard sums a few hundred rows instead of scanning millions.
A session and all its messages count on the day (in `TIME_ZONE`) the session started.
"""

from __future__ import annotations

import uuid

from django.db import models

from assistant.models import ChatSession


class ChatAnalytics(models.Model):
    """One session's numbers, kept current by the tracker and rebuilt by recovery."""

    class Resolution(models.TextChoices):
        CONFIRMED = "confirmed", "Confirmed by the visitor"
        ASSUMED = "assumed", "Assumed (answered, then quiet)"
        UNRESOLVED = "unresolved", "Unresolved"
        PENDING = "pending", "Pending (still going)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.OneToOneField(ChatSession, on_delete=models.CASCADE, related_name="analytics")
    day = models.DateField(help_text="Local date the session started: the rollup it counts in.")
    started_at = models.DateTimeField()
    last_activity_at = models.DateTimeField()
    user_type = models.CharField(max_length=16)
    provider = models.CharField(max_length=32, blank=True, help_text="The provider that answered most replies.")
    last_seq = models.PositiveIntegerField(default=0, help_text="The session's last message seq these numbers cover.")

    total_messages = models.PositiveIntegerField(default=0)
    user_messages = models.PositiveIntegerField(default=0)
    assistant_messages = models.PositiveIntegerField(default=0)
    avg_response_time_ms = models.PositiveIntegerField(null=True, blank=True)
    p95_response_time_ms = models.PositiveIntegerField(null=True, blank=True)
    avg_ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    response_times_ms = models.JSONField(default=list, blank=True, help_text="Per finished reply, in order.")
    ttfts_ms = models.JSONField(default=list, blank=True, help_text="Per reply that produced text.")

    resolved = models.BooleanField(default=False)
    resolution = models.CharField(max_length=16, choices=Resolution.choices, default=Resolution.PENDING)
    escalated_to_human = models.BooleanField(default=False)
    unanswered = models.BooleanField(default=False, help_text="The last visitor message has no complete answer.")
    closed = models.BooleanField(default=False, help_text="Ended by the visitor, or idle past the idle window.")

    topics_discussed = models.JSONField(default=list, blank=True)
    actions_taken = models.JSONField(default=list, blank=True)
    engagement_score = models.PositiveSmallIntegerField(default=0)
    satisfaction_rating = models.PositiveSmallIntegerField(null=True, blank=True)
    avg_sentiment = models.FloatField(null=True, blank=True, help_text="VADER compound score, -1 to 1.")

    feedback_up = models.PositiveIntegerField(default=0)
    feedback_down = models.PositiveIntegerField(default=0)
    cached_replies = models.PositiveIntegerField(default=0)
    failed_replies = models.PositiveIntegerField(default=0)
    failovers = models.PositiveIntegerField(default=0)
    provider_errors = models.PositiveIntegerField(default=0)
    duration_s = models.PositiveIntegerField(default=0)

    # Human support: from the session's `Handoff` rows and agent messages (docs/analytics.md).
    handoff_requests = models.PositiveSmallIntegerField(
        default=0, help_text="Times the visitor asked for a person (a person taking over unasked is not one)."
    )
    human_involved = models.BooleanField(default=False, help_text="A person claimed the session or wrote in it.")
    human_resolved = models.BooleanField(
        default=False, help_text="A person marked it resolved, and the visitor did not say otherwise."
    )
    agent_messages = models.PositiveIntegerField(default=0)
    avg_agent_response_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Mean time from each agent message back to the visitor message before it."
    )
    human_first_response_ms = models.JSONField(
        default=list, blank=True, help_text="Per answered request: request to the first agent message."
    )
    human_resolution_ms = models.JSONField(
        default=list, blank=True, help_text="Per request a person resolved: request to resolution."
    )
    visitor_returned = models.BooleanField(
        null=True,
        blank=True,
        help_text="Identified visitors only: they started a new session within FCR_WINDOW_DAYS. "
        "Set by the rollup sweep, not the tracker.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "chat analytics"
        indexes = [
            models.Index(fields=["day"], name="chatanalytics_day_idx"),
            models.Index(fields=["updated_at"], name="chatanalytics_updated_idx"),
            models.Index(fields=["resolution", "last_activity_at"], name="chatanalytics_resolution_idx"),
            # The staff API's sessions listing by main provider: a rare one is found, not scanned for.
            models.Index(fields=["provider"], name="chatanalytics_provider_idx"),
            # Windows (the last 24 hours) and the newest sessions of a period, without reading them all.
            models.Index(fields=["started_at"], name="chatanalytics_started_idx"),
        ]

    def __str__(self) -> str:
        return f"Analytics of {self.session}"


class DailySessionRollup(models.Model):
    """Sums over the sessions that started on one local day, per user type, main provider and source.

    Response times and TTFT are kept as histograms of values rounded to two significant digits
    (`metrics.histogram_bucket`), which merge across days exactly; percentiles are read off them.
    """

    day = models.DateField()
    user_type = models.CharField(max_length=16)
    provider = models.CharField(max_length=32, blank=True)
    source = models.CharField(max_length=32, default="widget", help_text="Where the sessions came from.")

    sessions = models.PositiveIntegerField(default=0)
    closed_sessions = models.PositiveIntegerField(default=0)
    engaged_sessions = models.PositiveIntegerField(default=0)
    total_messages = models.PositiveIntegerField(default=0)
    user_messages = models.PositiveIntegerField(default=0)
    assistant_messages = models.PositiveIntegerField(default=0)

    replies_timed = models.PositiveIntegerField(default=0)
    response_ms_sum = models.BigIntegerField(default=0)
    response_hist = models.JSONField(default=dict)
    ttft_count = models.PositiveIntegerField(default=0)
    ttft_ms_sum = models.BigIntegerField(default=0)
    ttft_hist = models.JSONField(default=dict)
    cached_replies = models.PositiveIntegerField(default=0)
    failed_replies = models.PositiveIntegerField(default=0)

    feedback_up = models.PositiveIntegerField(default=0)
    feedback_down = models.PositiveIntegerField(default=0)
    sessions_with_feedback = models.PositiveIntegerField(default=0)
    ratings = models.PositiveIntegerField(default=0)
    rating_sum = models.PositiveIntegerField(default=0)
    rating_hist = models.JSONField(default=dict, help_text="Score (1-5) to count.")

    resolved_confirmed = models.PositiveIntegerField(default=0)
    resolved_assumed = models.PositiveIntegerField(default=0)
    unresolved = models.PositiveIntegerField(default=0)
    pending = models.PositiveIntegerField(default=0)
    escalated = models.PositiveIntegerField(default=0)
    engagement_sum = models.PositiveIntegerField(default=0)
    sentiment_sum = models.FloatField(default=0)
    sentiment_count = models.PositiveIntegerField(default=0)
    failovers = models.PositiveIntegerField(default=0)
    provider_errors = models.PositiveIntegerField(default=0)

    handoff_sessions = models.PositiveIntegerField(default=0)
    human_sessions = models.PositiveIntegerField(default=0)
    contained = models.PositiveIntegerField(default=0, help_text="Finished, resolved, no person involved.")
    agent_messages = models.PositiveIntegerField(default=0)
    human_first_response_count = models.PositiveIntegerField(default=0)
    human_first_response_ms_sum = models.BigIntegerField(default=0)
    human_first_response_hist = models.JSONField(default=dict)
    human_resolution_count = models.PositiveIntegerField(default=0)
    human_resolution_ms_sum = models.BigIntegerField(default=0)
    agent_response_sessions = models.PositiveIntegerField(default=0)
    agent_response_ms_sum = models.BigIntegerField(default=0, help_text="Sum of the sessions' mean agent response.")
    fcr_sessions = models.PositiveIntegerField(default=0, help_text="Finished sessions of identified visitors.")
    fcr_resolved = models.PositiveIntegerField(default=0, help_text="Of those, resolved at first contact.")

    topics = models.JSONField(default=dict, help_text="Topic to number of sessions.")
    issue_topics = models.JSONField(default=dict, help_text="Topic to number of unresolved sessions.")
    hours = models.JSONField(default=list, help_text="Sessions started in each local hour 0-23.")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "user_type", "provider", "source"], name="dailysessionrollup_key"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.user_type} {self.provider or '-'}: {self.sessions} sessions"


class DailyProviderRollup(models.Model):
    """Sums over the provider calls that started on one local day, per feature, provider, model and source."""

    day = models.DateField()
    feature = models.CharField(max_length=32)
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=128, blank=True)
    source = models.CharField(
        max_length=32, blank=True, default="widget", help_text="The source of the calls' sessions ('': no session)."
    )

    calls = models.PositiveIntegerField(default=0)
    ok = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    interrupted = models.PositiveIntegerField(default=0)
    stopped = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed_over = models.PositiveIntegerField(default=0, help_text="Calls after which another provider took over.")
    latency_ms_sum = models.BigIntegerField(default=0)
    latency_count = models.PositiveIntegerField(default=0)
    ttft_ms_sum = models.BigIntegerField(default=0)
    ttft_count = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    estimated_calls = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=8, default=0, help_text="Of the priced calls only.")
    price_unknown_calls = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "feature", "provider", "model", "source"], name="dailyproviderrollup_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.provider}/{self.model} {self.feature}: {self.calls} calls"


class RollupState(models.Model):
    """Where the incremental rollup left off (a single row)."""

    analytics_seen_at = models.DateTimeField(null=True, blank=True)
    last_call_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Rollups current to {self.analytics_seen_at} (call {self.last_call_id})"
