"""HTTP views: the demo landing page."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.utils.html import format_html


def embed_snippet(request: HttpRequest) -> str:
    """The exact tag a customer pastes, pointing at this server."""
    server = request.build_absolute_uri("/").rstrip("/")
    return format_html(
        '<script src="{}{}" data-parley-server="{}" async></script>', server, static("assistant/widget.js"), server
    )


def demo(request: HttpRequest) -> HttpResponse:
    """A small company's landing page that embeds the widget with the snippet it shows."""
    return render(request, "assistant/demo.html", {"snippet": embed_snippet(request)})
