"""Read-only admin for analytics rows: they are derived data, rebuilt rather than edited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from analytics.models import ChatAnalytics, DailyProviderRollup, DailySessionRollup


class ReadOnlyAdmin(admin.ModelAdmin):
    """Derived rows: `recover_chat_analytics` / `rollup_analytics` rebuild them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ChatAnalytics)
class ChatAnalyticsAdmin(ReadOnlyAdmin):
    list_display = (
        "session",
        "day",
        "user_type",
        "provider",
        "total_messages",
        "avg_response_time_ms",
        "resolution",
        "escalated_to_human",
        "engagement_score",
        "satisfaction_rating",
        "updated_at",
    )
    list_filter = ("resolution", "escalated_to_human", "user_type", "provider", "day")
    date_hierarchy = "started_at"
    list_select_related = ("session",)


@admin.register(DailySessionRollup)
class DailySessionRollupAdmin(ReadOnlyAdmin):
    list_display = ("day", "user_type", "provider", "sessions", "total_messages", "ratings", "escalated")
    list_filter = ("user_type", "provider")
    date_hierarchy = "day"


@admin.register(DailyProviderRollup)
class DailyProviderRollupAdmin(ReadOnlyAdmin):
    list_display = ("day", "feature", "provider", "model", "calls", "ok", "errors", "cost_usd", "price_unknown_calls")
    list_filter = ("feature", "provider")
    date_hierarchy = "day"
