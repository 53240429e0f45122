"""Shapes of /metrics/, /insights/ and /usage/…"""

from __future__ import annotations

from typing import get_args

from rest_framework import serializers

from analytics.metrics import PREDICTORS, Direction, Unit
from api.staff.serializers.common import FiltersSerializer, PeriodSerializer, number

DIRECTIONS = list(get_args(Direction))


# --- /metrics/ --------------------------------------------------------------------------------
class MetricSerializer(serializers.Serializer):
    """One metric of the registry."""

    key = serializers.CharField(help_text="Stable identifier, e.g. `csat`, `resolution_rate`, `fcr_rate`.")
    label = serializers.CharField()
    unit = serializers.ChoiceField(choices=list(get_args(Unit)))
    definition = serializers.CharField(help_text="One line: what the number means.")
    higher_is_better = serializers.BooleanField(allow_null=True)
    headline = serializers.BooleanField(help_text="Shown with its change on the dashboard.")
    live = serializers.BooleanField(help_text="Read now, whatever the period: no previous value.")
    value = number("Null: no data (e.g. a rate over nothing).")
    previous_value = number("The same metric over the previous period of the same length.")
    change = number("Percent change from the previous value; null when either is null or the previous is 0.")
    direction = serializers.ChoiceField(choices=DIRECTIONS, allow_null=True)


class MetricsSerializer(serializers.Serializer):
    """/metrics/."""

    period = PeriodSerializer()
    previous_period = PeriodSerializer()
    filters = FiltersSerializer()
    metrics = MetricSerializer(many=True)


# --- /insights/ -------------------------------------------------------------------------------
class OverviewSerializer(serializers.Serializer):
    """The period at a glance (each a registry metric: see the field's description)."""

    total_ai_messages = serializers.IntegerField(help_text="Assistant replies (`assistant_messages`).")
    feedback_rate = number("% of replies rated up or down (`feedback_rate`).")
    satisfaction_rate = number("% of rated replies rated up (`satisfaction_rate`).")
    engagement_rate = number("% of conversations with feedback (`feedback_session_rate`).")
    avg_messages_per_conversation = number("`messages_per_session`.")
    total_conversations = serializers.IntegerField(help_text="`sessions`.")
    ai_messages_with_feedback = serializers.IntegerField(help_text="`rated_replies`.")


class TrendSerializer(serializers.Serializer):
    """AI replies in conversations started in the last 24 hours, against the 24 hours before."""

    metric = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    current = serializers.IntegerField()
    previous = serializers.IntegerField()
    change_percent = number("Null when the previous count is 0.")
    direction = serializers.ChoiceField(choices=DIRECTIONS)


class DailyFeedbackSerializer(serializers.Serializer):
    """Thumbs up and down on the replies of conversations started that day."""

    date = serializers.DateField()
    positive = serializers.IntegerField()
    negative = serializers.IntegerField()


class RecentFeedbackSerializer(serializers.Serializer):
    """One thumbs up or down, newest first."""

    message_id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    rating = serializers.ChoiceField(choices=["up", "down"])
    reason = serializers.CharField(allow_blank=True)
    comment = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField(help_text="When it was given (or last changed).")
    provider = serializers.CharField(allow_blank=True)


class ActiveConversationSerializer(serializers.Serializer):
    """One of the period's conversations with the most messages."""

    id = serializers.UUIDField()
    title = serializers.CharField(allow_blank=True)
    message_count = serializers.IntegerField()
    last_activity_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField()


class PredictionQualitySerializer(serializers.Serializer):
    """How right one of Parley's predictions is where the visitor answered (positive = satisfied / resolved)."""

    predictor = serializers.ChoiceField(
        choices=list(PREDICTORS),
        help_text="`satisfaction` (predicted 4-5 vs rated 4-5), `resolution` (predicted resolved vs the visitor's "
        "answer), `assumed_rule` (the assumed-resolution rule vs the visitor's answer).",
    )
    label = serializers.CharField()
    tp = serializers.IntegerField(help_text="Predicted positive, visitor said positive.")
    fp = serializers.IntegerField(help_text="Predicted positive, visitor said negative.")
    fn = serializers.IntegerField(help_text="Predicted negative, visitor said positive.")
    tn = serializers.IntegerField(help_text="Predicted negative, visitor said negative.")
    n = serializers.IntegerField(help_text="Sample size: tp + fp + fn + tn.")
    accuracy = number("% right (`<predictor>_accuracy`); null when n is 0.")
    precision = number("% of positive predictions that were right; null when none was positive.")
    recall = number("% of actual positives found; null when there was none.")
    f1 = number("Harmonic mean of precision and recall, %; null when either is null.")


class InsightsSerializer(serializers.Serializer):
    """/insights/."""

    period = PeriodSerializer()
    filters = FiltersSerializer()
    overview = OverviewSerializer()
    trend_24h = TrendSerializer()
    daily_feedback = DailyFeedbackSerializer(many=True)
    recent_feedback = RecentFeedbackSerializer(many=True)
    most_active_conversations = ActiveConversationSerializer(many=True)
    prediction_quality = PredictionQualitySerializer(
        many=True, help_text="Per predictor, its confusion matrix and scores over the period (the dashboard's table)."
    )


# --- /usage/ ----------------------------------------------------------------------------------
class FeatureSerializer(serializers.Serializer):
    """Provider calls of one AI feature (`chat_reply`, `title`)."""

    feature = serializers.CharField()
    count = serializers.IntegerField(help_text="Provider calls.")
    percentage = number("Share of all provider calls, %.")
    total_cost = number("USD, priced calls only.")
    avg_execution_time = number("Mean provider call time, ms.")
    price_unknown_calls = serializers.IntegerField()


class UsageNumbersSerializer(serializers.Serializer):
    """The usage numbers (each a registry metric)."""

    total_requests = serializers.IntegerField(help_text="Provider calls, every attempt (`provider_calls`).")
    cached_requests = serializers.IntegerField(help_text="Replies served from the cache (`cached_replies`).")
    failed_requests = serializers.IntegerField(help_text="Attempted calls that did not answer.")
    cache_hit_rate = number("% of finished replies served from the cache.")
    success_rate = number("% of attempted provider calls that answered.")
    total_cost = number("USD, priced calls only (`cost_usd`).")
    avg_execution_time = number("Mean provider call time, ms (`avg_provider_latency_ms`).")
    total_tokens = serializers.IntegerField()
    price_unknown_calls = serializers.IntegerField()


class UsageSerializer(UsageNumbersSerializer):
    """/usage/."""

    period = PeriodSerializer()
    filters = FiltersSerializer()
    feature_breakdown = FeatureSerializer(many=True)


class UsageDaySerializer(UsageNumbersSerializer):
    """One day's usage."""

    date = serializers.DateField()


class UsageDailySerializer(serializers.Serializer):
    """/usage/daily/."""

    period = PeriodSerializer()
    filters = FiltersSerializer()
    daily = UsageDaySerializer(many=True)


class CostDaySerializer(serializers.Serializer):
    """One day's cost."""

    date = serializers.DateField()
    cost_usd = number()
    tokens = serializers.IntegerField()
    price_unknown_calls = serializers.IntegerField()
    sessions = serializers.IntegerField()
    cost_per_session = number()


class ProviderCostSerializer(serializers.Serializer):
    """One provider's calls and cost."""

    provider = serializers.CharField()
    calls = serializers.IntegerField()
    attempted = serializers.IntegerField()
    success_rate = number()
    failover_rate = number()
    failovers = serializers.IntegerField()
    avg_latency_ms = number()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField()
    cost_usd = number()
    price_unknown_calls = serializers.IntegerField()


class ModelCostSerializer(serializers.Serializer):
    """One model's calls and cost for one feature (`cost_usd` null: price unknown)."""

    provider = serializers.CharField()
    model = serializers.CharField(allow_blank=True)
    feature = serializers.CharField()
    calls = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField()
    price_unknown_calls = serializers.IntegerField()
    price_unknown = serializers.BooleanField()
    cost_usd = number()


class CostTrendSerializer(serializers.Serializer):
    """/usage/cost-trend/."""

    period = PeriodSerializer()
    filters = FiltersSerializer()
    daily = CostDaySerializer(many=True)
    providers = ProviderCostSerializer(many=True)
    models = ModelCostSerializer(many=True)


class AiFeatureSerializer(serializers.Serializer):
    """Tokens and cost of one AI feature."""

    feature = serializers.CharField()
    calls = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost_usd = number()
    price_unknown_calls = serializers.IntegerField()


class ActionSerializer(serializers.Serializer):
    """A widget action (link click, quick reply…) and how often it happened."""

    name = serializers.CharField()
    count = serializers.IntegerField()


class FeaturesSerializer(serializers.Serializer):
    """/usage/features/."""

    period = PeriodSerializer()
    filters = FiltersSerializer()
    feature_breakdown = FeatureSerializer(many=True)
    ai_features = AiFeatureSerializer(many=True)
    actions = ActionSerializer(many=True)
