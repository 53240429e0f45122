"""Chat sessions, their messages, and what visitors say about them.

Public identifiers are UUIDs (`public_id`); integer primary keys stay internal so that foreign
keys and analytics joins stay narrow, and nothing sequential is exposed to visitors.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class ChatSession(models.Model):
    """One visitor conversation, resumable from any tab or server process with its token."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CLOSED = "closed", "Closed"

    class UserType(models.TextChoices):
        ANONYMOUS = "anonymous", "Anonymous"
        CLIENT = "client", "Client"
        PROVIDER = "provider", "Provider"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    token_hash = models.CharField(max_length=64, editable=False, help_text="SHA-256 of the resume token.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    title = models.CharField(max_length=120, blank=True, help_text="From the first visitor message.")
    last_seq = models.PositiveIntegerField(default=0, help_text="Highest message seq allocated so far.")

    user_type = models.CharField(max_length=16, choices=UserType.choices, default=UserType.ANONYMOUS)
    external_user_id = models.CharField(max_length=255, blank=True)
    external_user_name = models.CharField(max_length=255, blank=True)
    external_user_email = models.EmailField(max_length=254, blank=True)

    page_url = models.URLField(max_length=2000, blank=True)
    page_title = models.CharField(max_length=500, blank=True)
    referrer = models.URLField(max_length=2000, blank=True)
    locale = models.CharField(max_length=35, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    #: Where the conversation came from: the widget's websocket, the REST API, or (issue 17) an
    #: import (`import:<format>`). Every staff filter accepts it.
    source = models.CharField(max_length=32, default="widget", db_index=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # NULL before the liveness migration; see `assistant.liveness`.
    served_by = models.CharField(  # noqa: DJ001
        max_length=32, null=True, blank=True, help_text="The server process that last served this session."
    )

    class Handoff(models.TextChoices):
        AI = "ai", "The assistant answers"
        WAITING = "waiting", "Waiting for a person"
        ASSIGNED = "assigned", "A person answers"
        RESOLVED = "resolved", "Resolved by a person"

    #: Who answers now. Kept on the session row, not only on `Handoff`, because every turn
    #: already locks this row: a claim and a visitor message are ordered by that lock, so a
    #: message either starts an AI reply before the takeover or none after it.
    handoff_state = models.CharField(max_length=16, choices=Handoff.choices, default=Handoff.AI)
    assigned_agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_sessions"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["created_at"], name="chatsession_created_idx"),
            models.Index(fields=["status", "last_seen_at"], name="chatsession_status_seen_idx"),
            models.Index(fields=["user_type", "created_at"], name="chatsession_usertype_idx"),
            # One visitor's sessions (first-contact resolution, the staff API's visitor filter):
            # found, not scanned for, when a history import brings a hundred thousand of them.
            models.Index(fields=["user_type", "external_user_id"], name="chatsession_visitor_idx"),
            # The desk's queue reads the few sessions a person is (or should be) on.
            models.Index(
                fields=["handoff_state", "updated_at"],
                condition=Q(handoff_state__in=["waiting", "assigned"]),
                name="chatsession_handoff_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.title or f"Chat {str(self.public_id)[:8]} (no messages yet)"


class ChatMessage(models.Model):
    """One message in a session; `seq` orders a session's messages 1, 2, 3…"""

    class Role(models.TextChoices):
        USER = "user", "Visitor"
        ASSISTANT = "assistant", "Assistant"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"

    class Status(models.TextChoices):
        COMPLETE = "complete", "Complete"
        STREAMING = "streaming", "Streaming"
        STOPPED = "stopped", "Stopped"
        INTERRUPTED = "interrupted", "Interrupted"
        FAILED = "failed", "Failed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    # NULL, not "", for "no client id": the partial unique constraint must ignore those rows.
    client_id = models.CharField(max_length=64, null=True, blank=True, help_text="Visitor's idempotency key.")  # noqa: DJ001
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="chat_messages",
        help_text="The person who wrote an `agent` message.",
    )
    author_name = models.CharField(
        max_length=150, blank=True, help_text="The name shown to the visitor, kept if the account goes."
    )
    retry_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="retries",
        help_text="The interrupted reply this one replaces (another provider took over mid-stream).",
    )

    provider = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=128, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to first token.")
    duration_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to the whole reply.")
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    cached = models.BooleanField(default=False, help_text="Served from the response cache.")
    error_code = models.CharField(max_length=48, blank=True)
    knowledge_sections = models.JSONField(default=list, blank=True, help_text="Sections the reply used.")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last write; a streaming reply's heartbeat.")
    finished_at = models.DateTimeField(null=True, blank=True)
    # NULL for rows written before the liveness migration (they keep the checkpoint-age rule).
    owner = models.CharField(  # noqa: DJ001
        max_length=32, null=True, blank=True, help_text="The server process generating this reply (ServerProcess)."
    )

    class Meta:
        ordering = ["session_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["session", "seq"], name="chatmessage_session_seq_uniq"),
            models.UniqueConstraint(
                fields=["session", "client_id"],
                condition=Q(client_id__isnull=False),
                name="chatmessage_session_client_id_uniq",
            ),
        ]
        indexes = [
            models.Index(fields=["created_at"], name="chatmessage_created_idx"),
            models.Index(fields=["role", "created_at"], name="chatmessage_role_created_idx"),
            models.Index(fields=["session", "status"], name="chatmessage_session_status_idx"),
            # The orphaned-reply sweep (analytics recovery) reads only the few streaming rows.
            models.Index(fields=["updated_at"], condition=Q(status="streaming"), name="chatmessage_streaming_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.role}: {self.text[:60]}"


class Feedback(models.Model):
    """A visitor's thumbs up or down on one assistant reply; updating replaces it."""

    class Rating(models.TextChoices):
        UP = "up", "Thumbs up"
        DOWN = "down", "Thumbs down"

    message = models.OneToOneField(ChatMessage, on_delete=models.CASCADE, related_name="feedback")
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="feedback")
    rating = models.CharField(max_length=8, choices=Rating.choices)
    reason = models.CharField(max_length=100, blank=True)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "feedback"
        indexes = [models.Index(fields=["created_at"], name="feedback_created_idx")]

    def __str__(self) -> str:
        return f"{self.rating} on message #{self.message.seq}"


class SessionRating(models.Model):
    """The end-of-chat survey: a 1–5 score and whether the problem was solved."""

    session = models.OneToOneField(ChatSession, on_delete=models.CASCADE, related_name="rating")
    score = models.PositiveSmallIntegerField()
    resolved = models.BooleanField(null=True, blank=True)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(score__gte=1) & Q(score__lte=5), name="sessionrating_score_1_to_5"),
        ]
        indexes = [models.Index(fields=["created_at"], name="sessionrating_created_idx")]

    def __str__(self) -> str:
        return f"{self.score}/5 for {self.session}"


class ChatEvent(models.Model):
    """A visitor action reported by the widget (link click, quick reply, widget open…)."""

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=64)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["name", "created_at"], name="chatevent_name_created_idx")]

    def __str__(self) -> str:
        return f"{self.name} in {self.session}"


class ProviderCall(models.Model):
    """One attempt at one AI provider: what analytics bill, chart and alert on.

    Every attempt is a row, failed ones included, so a reply that needed a retry and a failover
    shows three rows with their latencies, errors and `fallback_from`.
    """

    class Feature(models.TextChoices):
        CHAT_REPLY = "chat_reply", "Chat reply"
        TITLE = "title", "Session title"
        ANALYSIS = "analysis", "Conversation analysis"

    class Outcome(models.TextChoices):
        OK = "ok", "Answered"
        ERROR = "error", "Failed before any text"
        INTERRUPTED = "interrupted", "Broke after text began"
        STOPPED = "stopped", "Stopped by the visitor"
        SKIPPED = "skipped", "Skipped: circuit breaker open"

    session = models.ForeignKey(ChatSession, null=True, on_delete=models.CASCADE, related_name="provider_calls")
    message = models.ForeignKey(
        ChatMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="provider_calls"
    )
    feature = models.CharField(max_length=32, choices=Feature.choices, default=Feature.CHAT_REPLY)
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=128, blank=True)
    attempt = models.PositiveSmallIntegerField(help_text="1 for the first try of this provider, 2 for its retry…")
    started_at = models.DateTimeField()
    latency_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Until the attempt ended.")
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Until its first text.")
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    cached_tokens = models.PositiveIntegerField(null=True, blank=True)
    tokens_estimated = models.BooleanField(default=False, help_text="Counted by Parley: the vendor reported none.")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    error_kind = models.CharField(max_length=32, blank=True)
    error_detail = models.CharField(max_length=500, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    fallback_from = models.CharField(max_length=32, blank=True, help_text="The provider that failed before this one.")

    class Meta:
        indexes = [
            models.Index(fields=["started_at"], name="providercall_started_idx"),
            models.Index(fields=["provider", "started_at"], name="providercall_provider_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} #{self.attempt}: {self.outcome}"


class ServerProcess(models.Model):
    """One chat server process: who owns a streaming reply, and whether it is still alive.

    Written by the process itself: a row at startup, `heartbeat_at` every `PROCESS_HEARTBEAT_S`
    (by the database's clock, so clocks of other hosts never matter), `stopped_at` on a clean
    shutdown. `assistant.liveness` reads it to tell replies and sessions of dead processes.
    """

    id = models.CharField(primary_key=True, max_length=32, help_text="The process's PROCESS_ID.")
    host = models.CharField(max_length=255, help_text="Host, boot and pid namespace: where `pid` means something.")
    pid = models.PositiveIntegerField()
    pid_start = models.CharField(max_length=32, blank=True, help_text="The pid's start time (Linux), against reuse.")
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["heartbeat_at"], name="serverprocess_heartbeat_idx")]

    def __str__(self) -> str:
        return f"{self.id[:8]} (pid {self.pid} on {self.host.split('|', 1)[0]})"


class Handoff(models.Model):
    """One request for a person in a session, from asking to the end of the person's part.

    A session may have several (handed back to the AI, then asked again); the analytics of
    human support (time to first human response, resolution time, per agent) read these rows.
    """

    class Outcome(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved by the person"
        HANDED_BACK = "handed_back", "Handed back to the assistant"
        UNAVAILABLE = "unavailable", "No person was available"
        ABANDONED = "abandoned", "The visitor left before a person came"

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="handoffs")
    reason = models.CharField(max_length=200, blank=True)
    requested_at = models.DateTimeField()
    requested_after_seq = models.PositiveIntegerField(default=0, help_text="The session's last seq when asked.")
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="handoffs"
    )
    assigned_at = models.DateTimeField(null=True, blank=True, help_text="First claimed by a person.")
    first_response_at = models.DateTimeField(null=True, blank=True, help_text="The first agent message.")
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.OPEN)
    notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When the agents were emailed about it (HANDOFF_NOTIFY_AFTER_S)."
    )

    class Meta:
        permissions = [("use_desk", "Can answer visitors at the agent desk")]
        constraints = [
            # At most one open handoff per session: asking twice returns the open one.
            models.UniqueConstraint(fields=["session"], condition=Q(outcome="open"), name="handoff_one_open_uniq"),
        ]
        indexes = [models.Index(fields=["requested_at"], name="handoff_requested_idx")]

    def __str__(self) -> str:
        return f"Handoff in {self.session} ({self.outcome})"


class InternalNote(models.Model):
    """A note between agents on a conversation; never sent to the visitor."""

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    author_name = models.CharField(max_length=150, blank=True)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session_id", "created_at", "id"]

    def __str__(self) -> str:
        return f"Note by {self.author_name} in {self.session}"


class ContactRequest(models.Model):
    """Contact details a visitor left (offline form, or the pre-chat form)."""

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="contact_requests")
    email = models.EmailField(max_length=254)
    name = models.CharField(max_length=255, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="contactrequest_created_idx")]

    def __str__(self) -> str:
        return f"{self.email} from {self.session}"


class AgentPresence(models.Model):
    """Whether a person at the desk takes new conversations, and when the desk last heard them.

    Available means "switched on and connected recently": a desk that closed without saying so
    stops counting after `DESK_PRESENCE_TTL_S`, so visitors are not left waiting for nobody.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="desk_presence")
    available = models.BooleanField(default=False)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.user} ({'available' if self.available else 'away'})"
