"""Websocket routes of the analytics app (behind the admin session cookie)."""

from channels.auth import AuthMiddlewareStack
from django.urls import path

from analytics.consumers import AnalyticsConsumer

websocket_urlpatterns = [
    path("ws/analytics/", AuthMiddlewareStack(AnalyticsConsumer.as_asgi())),
]
