"""Websocket routes of the desk (behind the staff Origin guard and the session cookie, project/asgi.py)."""

from channels.auth import AuthMiddlewareStack
from django.urls import path

from desk.consumers import DeskConsumer

websocket_urlpatterns = [
    path("ws/desk/", AuthMiddlewareStack(DeskConsumer.as_asgi())),
]
