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

from django.conf import settings
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

    # Language-aware sentiment of the visitor's messages (analytics.sentiment): a message in a
    # language the offline lexicons do not cover is counted as unscored, never scored as English.
    language = models.CharField(
        max_length=16, blank=True, help_text="ISO 639-1 code of the visitor's language, detected or from the locale."
    )
    message_sentiments = models.JSONField(
        default=dict, blank=True, help_text="Scored visitor messages per label: negative, neutral, positive."
    )
    unscored_messages = models.PositiveIntegerField(
        default=0, help_text="Visitor messages left without a score (a language the offline lexicons do not cover)."
    )
    opening_sentiment = models.FloatField(null=True, blank=True, help_text="Score of the first scored visitor message.")
    closing_sentiment = models.FloatField(
        null=True, blank=True, help_text="Score of the last scored visitor message, when there are two or more."
    )
    rule_resolved = models.BooleanField(
        null=True,
        blank=True,
        help_text="What the assumed-resolution rule says of a finished session, ignoring any rating "
        "(None while pending): checked against the visitor's answer where they rated.",
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

    # Sentiment, trajectory, AI predictions and their accuracy (issue 17; docs/analytics.md).
    message_sentiments = models.JSONField(default=dict, help_text="Scored visitor messages per sentiment label.")
    unscored_messages = models.PositiveIntegerField(default=0)
    languages = models.JSONField(default=dict, help_text="Sessions per visitor language ('' unknown).")
    trajectory_sessions = models.PositiveIntegerField(default=0, help_text="Sessions with an opening and a closing.")
    opening_sentiment_sum = models.FloatField(default=0)
    closing_sentiment_sum = models.FloatField(default=0)
    opened_negative = models.PositiveIntegerField(default=0)
    recovered = models.PositiveIntegerField(default=0, help_text="Opened negative and closed positive.")
    analyzed_sessions = models.PositiveIntegerField(default=0)
    conversation_sentiments = models.JSONField(default=dict, help_text="Analysed sessions per sentiment label.")
    unrated_finished = models.PositiveIntegerField(default=0, help_text="Finished sessions with no rating.")
    predicted_sessions = models.PositiveIntegerField(
        default=0, help_text="Finished sessions with no rating and a predicted satisfaction."
    )
    predicted_satisfied = models.PositiveIntegerField(default=0, help_text="Of those, predicted 4 or 5.")
    predicted_satisfaction_sum = models.PositiveIntegerField(default=0)
    follow_up_sessions = models.PositiveIntegerField(default=0, help_text="Analysed sessions that need a follow-up.")
    confusion = models.JSONField(
        default=dict, help_text="Prediction against the visitor's answer: 'predictor.tp|fp|fn|tn' to count."
    )

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


class ConversationAnalysis(models.Model):
    """What `analyze_conversations` (or the close hook) concluded about one conversation.

    One row per session, replaced when the conversation's content or `version` changes. Every
    value says which method produced it in `methods` (field to "llm:<provider>", "lexicon:<name>",
    "detector:<name>", "taxonomy", "locale" or "none"), so an offline guess is never read as the
    model's answer. The rollups read it through the session (`rollup.session_rows`).
    """

    class Label(models.TextChoices):
        NEGATIVE = "negative", "Negative"
        NEUTRAL = "neutral", "Neutral"
        POSITIVE = "positive", "Positive"

    session = models.OneToOneField(ChatSession, on_delete=models.CASCADE, related_name="analysis")
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the transcript that was analysed.")
    version = models.CharField(max_length=16, help_text="The analysis prompt and schema version.")
    method = models.CharField(max_length=16, help_text="llm, or offline when no provider answered.")
    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=128, blank=True)
    methods = models.JSONField(default=dict, help_text="Field name to the method that produced it.")

    language = models.CharField(max_length=16, blank=True)
    sentiment = models.FloatField(null=True, blank=True, help_text="-1 to 1; None: no sentiment (uncovered language).")
    sentiment_label = models.CharField(max_length=16, choices=Label.choices, blank=True)
    predicted_satisfaction = models.PositiveSmallIntegerField(null=True, blank=True, help_text="1 to 5.")
    predicted_resolved = models.BooleanField(null=True, blank=True)
    topics = models.JSONField(default=list, blank=True)
    new_topics = models.JSONField(default=list, blank=True, help_text="Topics outside the taxonomy the model named.")
    summary = models.TextField(blank=True)
    needs_follow_up = models.BooleanField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, help_text="Why the model's answer was not used, if so.")

    analyzed_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "conversation analyses"
        indexes = [models.Index(fields=["analyzed_at"], name="convanalysis_analyzed_idx")]

    def __str__(self) -> str:
        return f"Analysis of {self.session_id} ({self.method})"


class ImportedConversation(models.Model):
    """The link from a conversation in an imported file to the session it became.

    Keyed by (source, external_id), so importing the same file again finds every conversation:
    an unchanged `content_hash` is skipped, a changed one replaces the session's messages.
    """

    session = models.OneToOneField(ChatSession, on_delete=models.CASCADE, related_name="imported")
    source = models.CharField(max_length=32, help_text="import:<format>, as on the session.")
    external_id = models.CharField(max_length=255, help_text="The conversation's id in the file.")
    content_hash = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict, blank=True)
    imported_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="importedconversation_key"),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.external_id}"


class ImportRun(models.Model):
    """One import (command, upload page or API): what was read and what was skipped, and why."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    format = models.CharField(max_length=16)
    filename = models.CharField(max_length=255, blank=True)
    via = models.CharField(max_length=16, help_text="command, upload or api.")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    summary = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["started_at"], name="importrun_started_idx")]

    def __str__(self) -> str:
        return f"Import of {self.filename or self.format} ({self.status})"
