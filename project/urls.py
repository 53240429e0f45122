"""HTTP routes."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # Before admin.site.urls, whose catch-all would answer these paths with its own 404.
    # The dashboard's alert banner reads alerts (analytics must not import them): before analytics.
    path("admin/chat-analytics/alerts/", include("alerts.urls")),
    path("admin/chat-analytics/", include("analytics.urls")),
    path("admin/", admin.site.urls),
    path("desk/", include("desk.urls")),
    path("api/v1/", include("api.urls")),
    path("", include("assistant.urls")),
]
