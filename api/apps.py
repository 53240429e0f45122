from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The public REST API under /api/v1/: visitors by conversation token, staff by API key."""

    name = "api"
    default_auto_field = "django.db.models.BigAutoField"
