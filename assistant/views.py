"""HTTP views: the demo page."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def demo(request: HttpRequest) -> HttpResponse:
    """The demo page: a minimal chat client on the `/ws/chat/` protocol."""
    return render(request, "assistant/demo.html", {"max_chars": settings.CHAT_MAX_MESSAGE_CHARS})
