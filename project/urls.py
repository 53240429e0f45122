"""HTTP routes."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # Before admin.site.urls, whose catch-all would answer these paths with its own 404.
    path("admin/chat-analytics/", include("analytics.urls")),
    path("admin/", admin.site.urls),
    path("desk/", include("desk.urls")),
    path("api/v1/", include("api.urls")),
    path("", include("assistant.urls")),
]
