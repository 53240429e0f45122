"""Routes under /admin/chat-analytics/ (staff only)."""

from django.urls import path

from analytics import exports, import_views, views

app_name = "analytics"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("sessions/<uuid:session_id>/", views.transcript_page, name="transcript"),
    path("api/", views.snapshot_api, name="api"),
    path("api/summary/", views.summary_api, name="api-summary"),
    path("api/daily/", views.daily_api, name="api-daily"),
    path("api/cost/", views.cost_api, name="api-cost"),
    path("api/features/", views.features_api, name="api-features"),
    path("api/tables/", views.tables_api, name="api-tables"),
    path("api/definitions/", views.definitions_api, name="api-definitions"),
    path("api/sessions/<uuid:session_id>/", views.transcript_api, name="api-transcript"),
    path("export/sessions/", exports.export_sessions, name="export-sessions"),
    path("export/messages/", exports.export_messages, name="export-messages"),
    path("export/analytics/", exports.export_analytics, name="export-analytics"),
    path("imports/", import_views.import_page, name="import"),
]
