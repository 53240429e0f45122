"""/metrics/, /insights/ and /usage/…: a period's numbers, from the metric registry."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.request import Request
from rest_framework.response import Response

from api.staff import params, schema
from api.staff.selectors import numbers
from api.staff.serializers.numbers import (
    CostTrendSerializer,
    FeaturesSerializer,
    InsightsSerializer,
    MetricsSerializer,
    UsageDailySerializer,
    UsageSerializer,
)
from api.staff.views.base import StaffView

FILTERED = [*schema.PERIOD, schema.USER_TYPE, schema.PROVIDER, schema.SOURCE]
USAGE = [*schema.PERIOD, schema.USER_ID, schema.PROVIDER, schema.SOURCE]
USAGE_PARAMS = params.PERIOD | {"user_id", "provider", "source"}
METRICS_PARAMS = params.PERIOD | params.FILTERS


@extend_schema_view(
    get=extend_schema(
        operation_id="metrics",
        summary="Every metric of the registry",
        description="Each metric Parley reports (sessions, resolution, CSAT, FCR, response and agent response "
        "times, sentiment, cost…) over the period, with the previous period's value, the change and its "
        "one-line definition: the numbers the dashboard and the weekly report show for the same period and "
        "filters. Live metrics (visitors live or waiting now) carry their current value.",
        parameters=[*FILTERED, *schema.HEADERS],
        responses=schema.responses(MetricsSerializer),
        tags=["staff: analytics"],
    )
)
class MetricsView(StaffView):
    """GET /api/v1/metrics/."""

    def get(self, request: Request) -> Response:
        """Every metric."""
        period, filters = params.period_query(request.query_params, allowed=METRICS_PARAMS)
        return Response(numbers.metric_list(period, filters))


@extend_schema_view(
    get=extend_schema(
        operation_id="insights",
        summary="Feedback and conversation insights",
        description="The period's overview (AI messages, feedback, satisfaction and engagement rates, messages per "
        "conversation), the last 24 hours against the 24 before, the last 7 days of feedback, the 20 latest "
        "feedback items, the 5 conversations with the most messages, and how right the AI is: per predictor "
        "(predicted satisfaction, predicted resolution, the assumed-resolution rule) its confusion matrix against "
        "what visitors answered, with accuracy, precision, recall, F1 and the sample size.",
        parameters=[*schema.PERIOD, schema.SOURCE, *schema.HEADERS],
        responses=schema.responses(InsightsSerializer),
        tags=["staff: analytics"],
    )
)
class InsightsView(StaffView):
    """GET /api/v1/insights/."""

    def get(self, request: Request) -> Response:
        """The period's insights."""
        period, filters = params.period_query(request.query_params, allowed=params.PERIOD | {"source"})
        return Response(numbers.insights(period, filters))


@extend_schema_view(
    get=extend_schema(
        operation_id="usage",
        summary="AI usage and cost",
        description="Provider calls (requests), cached replies, failures, cache hit and success rates, cost, mean call "
        "time, tokens and unpriced calls over the period, and per AI feature. `user_id` narrows it to one "
        "identified visitor.",
        parameters=[*USAGE, *schema.HEADERS],
        responses=schema.responses(UsageSerializer),
        tags=["staff: usage"],
    )
)
class UsageView(StaffView):
    """GET /api/v1/usage/."""

    def get(self, request: Request) -> Response:
        """The period's usage."""
        period, filters = params.period_query(request.query_params, allowed=USAGE_PARAMS)
        return Response(numbers.usage(period, filters))


@extend_schema_view(
    get=extend_schema(
        operation_id="usage_daily",
        summary="AI usage per day",
        parameters=[*USAGE, *schema.HEADERS],
        responses=schema.responses(UsageDailySerializer),
        tags=["staff: usage"],
    )
)
class UsageDailyView(StaffView):
    """GET /api/v1/usage/daily/."""

    def get(self, request: Request) -> Response:
        """Each day's usage."""
        period, filters = params.period_query(request.query_params, allowed=USAGE_PARAMS)
        return Response(numbers.usage_daily(period, filters))


@extend_schema_view(
    get=extend_schema(
        operation_id="usage_cost_trend",
        summary="AI cost per day, provider and model",
        parameters=[*USAGE, *schema.HEADERS],
        responses=schema.responses(CostTrendSerializer),
        tags=["staff: usage"],
    )
)
class UsageCostTrendView(StaffView):
    """GET /api/v1/usage/cost-trend/."""

    def get(self, request: Request) -> Response:
        """The cost trend."""
        period, filters = params.period_query(request.query_params, allowed=USAGE_PARAMS)
        return Response(numbers.usage_cost_trend(period, filters))


@extend_schema_view(
    get=extend_schema(
        operation_id="usage_features",
        summary="AI usage per feature, and widget actions",
        parameters=[*USAGE, *schema.HEADERS],
        responses=schema.responses(FeaturesSerializer),
        tags=["staff: usage"],
    )
)
class UsageFeaturesView(StaffView):
    """GET /api/v1/usage/features/."""

    def get(self, request: Request) -> Response:
        """Per feature."""
        period, filters = params.period_query(request.query_params, allowed=USAGE_PARAMS)
        return Response(numbers.usage_features(period, filters))
