"""Routes under /admin/chat-analytics/alerts/ (staff only), mounted before the analytics routes."""

from django.urls import path

from alerts import views

app_name = "alerts"
urlpatterns = [
    path("active/", views.active_api, name="active"),
]
