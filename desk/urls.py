"""Routes under /desk/ (agents only)."""

from django.urls import path

from desk import views

app_name = "desk"
urlpatterns = [
    path("", views.desk, name="index"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
]
