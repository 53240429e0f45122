"""Django admin for chat sessions and what visitors said about them."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from assistant.models import (
    ChatEvent,
    ChatMessage,
    ChatSession,
    ContactRequest,
    Feedback,
    Handoff,
    ProviderCall,
    SessionRating,
)


class ChatMessageInline(admin.TabularInline):
    model = ChatMessage
    fields = ("seq", "role", "status", "text", "provider", "model", "ttft_ms", "duration_ms", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("seq",)
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: ChatSession | None = None) -> bool:
        return False


class SessionRatingInline(admin.StackedInline):
    model = SessionRating
    extra = 0
    readonly_fields = ("score", "resolved", "comment", "created_at", "updated_at")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: ChatSession | None = None) -> bool:
        return False


@admin.register(ChatSession)
class ChatSessionAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "status",
        "user_type",
        "external_user_name",
        "message_count",
        "created_at",
        "last_seen_at",
    )
    list_filter = ("status", "user_type", "created_at", "locale")
    search_fields = ("title", "public_id", "external_user_id", "external_user_name", "external_user_email", "page_url")
    # Who answers is changed at the desk (its services keep `Handoff` rows in step), never here.
    readonly_fields = (
        "public_id",
        "token_hash",
        "last_seq",
        "created_at",
        "updated_at",
        "last_seen_at",
        "closed_at",
        "handoff_state",
        "assigned_agent",
    )
    date_hierarchy = "created_at"
    inlines = (SessionRatingInline, ChatMessageInline)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ChatSession]:
        return super().get_queryset(request).annotate(_message_count=Count("messages"))

    @admin.display(description="Messages", ordering="_message_count")
    def message_count(self, obj: ChatSession) -> int:
        return obj._message_count  # type: ignore[attr-defined]


@admin.register(ChatMessage)
class ChatMessageAdmin(admin.ModelAdmin):
    list_display = ("__str__", "session", "role", "status", "provider", "ttft_ms", "duration_ms", "created_at")
    list_filter = ("role", "status", "provider", "cached", "created_at")
    search_fields = ("text", "session__public_id", "public_id", "client_id")
    readonly_fields = ("public_id", "session", "reply_to", "retry_of", "created_at", "finished_at", "author")
    list_select_related = ("session",)
    date_hierarchy = "created_at"


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ("message", "rating", "reason", "session", "updated_at")
    list_filter = ("rating", "updated_at")
    search_fields = ("comment", "reason", "session__public_id")
    readonly_fields = ("message", "session", "created_at", "updated_at")
    list_select_related = ("message", "session")


@admin.register(SessionRating)
class SessionRatingAdmin(admin.ModelAdmin):
    list_display = ("session", "score", "resolved", "updated_at")
    list_filter = ("score", "resolved", "updated_at")
    search_fields = ("comment", "session__public_id", "session__title")
    readonly_fields = ("session", "created_at", "updated_at")


@admin.register(ChatEvent)
class ChatEventAdmin(admin.ModelAdmin):
    list_display = ("name", "session", "created_at")
    list_filter = ("name", "created_at")
    search_fields = ("name", "session__public_id")
    readonly_fields = ("session", "name", "data", "created_at")


@admin.register(ProviderCall)
class ProviderCallAdmin(admin.ModelAdmin):
    """Every AI provider attempt: read-only, for auditing failovers and costs."""

    list_display = (
        "started_at",
        "provider",
        "model",
        "feature",
        "attempt",
        "outcome",
        "error_kind",
        "latency_ms",
        "ttft_ms",
        "input_tokens",
        "output_tokens",
        "fallback_from",
    )
    list_filter = ("provider", "outcome", "feature", "error_kind", "tokens_estimated", "started_at")
    search_fields = ("provider", "model", "error_detail", "session__public_id")
    list_select_related = ("session",)
    date_hierarchy = "started_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Rows are written by the router only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: ProviderCall | None = None) -> bool:
        """Rows are an audit trail."""
        return False


@admin.register(ContactRequest)
class ContactRequestAdmin(admin.ModelAdmin):
    """Contact details visitors left when nobody could answer: someone has to call them back."""

    list_display = ("email", "name", "created_at", "handled_at", "session")
    list_filter = ("handled_at",)
    search_fields = ("email", "name", "message")
    readonly_fields = ("session", "email", "name", "message", "created_at")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Handoff)
class HandoffAdmin(admin.ModelAdmin):
    """Requests for a person, for audit; the desk changes them, never this page."""

    list_display = ("session", "outcome", "agent", "requested_at", "assigned_at", "first_response_at", "ended_at")
    list_filter = ("outcome",)
    readonly_fields = (
        "session",
        "reason",
        "requested_at",
        "requested_after_seq",
        "agent",
        "assigned_at",
        "first_response_at",
        "ended_at",
        "outcome",
    )
    date_hierarchy = "requested_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Handoff | None = None) -> bool:
        return False
