"""Routes of this side of the API (included by api/urls.py)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
