"""Shapes of /sessions/ and /sessions/{id}/."""

from __future__ import annotations

from rest_framework import serializers

from api.staff.serializers.common import number
from assistant.models import ChatMessage, ChatSession


class CostSerializer(serializers.Serializer):
    """A session's provider calls, tokens and cost."""

    provider_calls = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost_usd = serializers.FloatField(help_text="USD of the priced calls.")
    price_unknown_calls = serializers.IntegerField(help_text="Calls of models with no price (not in cost_usd).")


class SessionAnalyticsSerializer(CostSerializer):
    """What analytics recorded of a listed session."""

    resolved = serializers.BooleanField()
    resolution = serializers.ChoiceField(choices=["confirmed", "assumed", "unresolved", "pending"])
    escalated = serializers.BooleanField()
    human_involved = serializers.BooleanField()
    handoff_requests = serializers.IntegerField()
    rating = serializers.IntegerField(allow_null=True, help_text="End-of-chat rating, 1 to 5.")
    satisfied = serializers.BooleanField(allow_null=True, help_text="Rated 4 or 5 (null: not rated).")
    feedback_up = serializers.IntegerField()
    feedback_down = serializers.IntegerField()
    topics = serializers.ListField(child=serializers.CharField())
    sentiment = number("Mean VADER compound score of the visitor's messages, -1 to 1.")
    engagement_score = serializers.IntegerField()
    provider = serializers.CharField(allow_blank=True, help_text="The provider that answered most replies.")
    avg_response_time_ms = serializers.IntegerField(allow_null=True)
    user_messages = serializers.IntegerField()
    assistant_messages = serializers.IntegerField()
    agent_messages = serializers.IntegerField()
    closed = serializers.BooleanField(help_text="Ended, or idle past the idle window.")


class SessionItemSerializer(serializers.Serializer):
    """One listed session."""

    id = serializers.UUIDField()
    title = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=ChatSession.Status.values)
    source = serializers.CharField(help_text="widget, api, import:<format>.")
    user_type = serializers.ChoiceField(choices=ChatSession.UserType.values)
    external_user_id = serializers.CharField(allow_null=True, help_text="The identified visitor's id.")
    created_at = serializers.DateTimeField()
    last_activity_at = serializers.DateTimeField()
    message_count = serializers.IntegerField()
    analytics = SessionAnalyticsSerializer(allow_null=True, help_text="Null for a second or so after it began.")


class SessionPageSerializer(serializers.Serializer):
    """/sessions/: a page, newest first."""

    results = SessionItemSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page; null: none.")
    next = serializers.URLField(allow_null=True, help_text="The next page's URL.")
    limit = serializers.IntegerField()
    filters = serializers.DictField(help_text="The filters as understood.")


class FeedbackSerializer(serializers.Serializer):
    """A thumbs up or down on one reply."""

    rating = serializers.ChoiceField(choices=["up", "down"])
    reason = serializers.CharField(allow_blank=True)
    comment = serializers.CharField(allow_blank=True)


class MessageFeedbackSerializer(FeedbackSerializer):
    """Feedback with the reply it is on."""

    message_id = serializers.UUIDField()
    seq = serializers.IntegerField()


class CallSummarySerializer(serializers.Serializer):
    """A provider attempt behind a reply."""

    provider = serializers.CharField()
    model = serializers.CharField(allow_blank=True)
    attempt = serializers.IntegerField()
    outcome = serializers.CharField()
    latency_ms = serializers.IntegerField(allow_null=True)
    error_kind = serializers.CharField(allow_blank=True)
    fallback_from = serializers.CharField(allow_blank=True)


class MessageSerializer(serializers.Serializer):
    """One message, as the transcript shows it."""

    seq = serializers.IntegerField()
    message_id = serializers.UUIDField()
    role = serializers.ChoiceField(choices=ChatMessage.Role.values)
    text = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=ChatMessage.Status.values)
    provider = serializers.CharField(allow_blank=True)
    model = serializers.CharField(allow_blank=True)
    ttft_ms = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    cached = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True)
    sources = serializers.ListField(child=serializers.DictField(), help_text="Knowledge sections the reply used.")
    created_at = serializers.DateTimeField()
    author = serializers.CharField(allow_blank=True, help_text="The person who wrote an agent message.")
    feedback = FeedbackSerializer(allow_null=True)
    calls = CallSummarySerializer(many=True)


class RatingSerializer(serializers.Serializer):
    """The end-of-chat survey."""

    score = serializers.IntegerField(min_value=1, max_value=5)
    resolved = serializers.BooleanField(allow_null=True)
    comment = serializers.CharField(allow_blank=True)


class ProviderCallSerializer(serializers.Serializer):
    """One provider attempt, with its tokens and cost (null: the model has no price)."""

    message_id = serializers.UUIDField(allow_null=True)
    feature = serializers.CharField()
    provider = serializers.CharField()
    model = serializers.CharField(allow_blank=True)
    attempt = serializers.IntegerField()
    outcome = serializers.CharField()
    started_at = serializers.DateTimeField()
    latency_ms = serializers.IntegerField(allow_null=True)
    ttft_ms = serializers.IntegerField(allow_null=True)
    input_tokens = serializers.IntegerField(allow_null=True)
    output_tokens = serializers.IntegerField(allow_null=True)
    cached_tokens = serializers.IntegerField(allow_null=True)
    tokens_estimated = serializers.BooleanField()
    error_kind = serializers.CharField(allow_blank=True)
    fallback_from = serializers.CharField(allow_blank=True)
    cost_usd = number()


class SessionDetailSerializer(serializers.Serializer):
    """/sessions/{id}/."""

    id = serializers.UUIDField()
    title = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=ChatSession.Status.values)
    source = serializers.CharField()
    user_type = serializers.ChoiceField(choices=ChatSession.UserType.values)
    external_user_id = serializers.CharField(allow_null=True)
    page_url = serializers.CharField(allow_blank=True)
    locale = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    last_activity_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)
    live = serializers.BooleanField(help_text="Open, with visitor activity in the last few minutes.")
    message_count = serializers.IntegerField()
    messages = MessageSerializer(many=True)
    feedback = MessageFeedbackSerializer(many=True)
    rating = RatingSerializer(allow_null=True)
    analytics = serializers.DictField(
        allow_null=True, help_text="Every field analytics keeps of the session (the analytics export's columns)."
    )
    cost = CostSerializer()
    provider_calls = ProviderCallSerializer(many=True)
