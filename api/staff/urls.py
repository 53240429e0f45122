"""Routes of the staff side (included by api/urls.py under /api/v1/)."""

from django.urls import path

from api.staff import imports
from api.staff.views import exports, numbers, sessions

urlpatterns = [
    path("insights/", numbers.InsightsView.as_view(), name="staff-insights"),
    path("metrics/", numbers.MetricsView.as_view(), name="staff-metrics"),
    path("sessions/", sessions.SessionListView.as_view(), name="staff-sessions"),
    path("sessions/<str:id>/", sessions.SessionDetailView.as_view(), name="staff-session"),
    path("usage/", numbers.UsageView.as_view(), name="staff-usage"),
    path("usage/daily/", numbers.UsageDailyView.as_view(), name="staff-usage-daily"),
    path("usage/cost-trend/", numbers.UsageCostTrendView.as_view(), name="staff-usage-cost-trend"),
    path("usage/features/", numbers.UsageFeaturesView.as_view(), name="staff-usage-features"),
    path("exports/sessions/", exports.SessionsExportView.as_view(), name="staff-export-sessions"),
    path("exports/messages/", exports.MessagesExportView.as_view(), name="staff-export-messages"),
    path("exports/analytics/", exports.AnalyticsExportView.as_view(), name="staff-export-analytics"),
    path("imports/", imports.ImportView.as_view(), name="staff-imports"),
]
