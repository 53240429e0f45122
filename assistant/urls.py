"""HTTP routes of the assistant app."""

from django.urls import path

from assistant import views

app_name = "assistant"
urlpatterns = [
    path("", views.demo, name="demo"),
]
