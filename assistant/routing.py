"""Websocket routes of the assistant app."""

from django.urls import path

from assistant.consumers import ChatConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
]
