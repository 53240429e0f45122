from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Live tracker, metric definitions, dashboard, exports and reports (built in later issues)."""

    name = "analytics"
    default_auto_field = "django.db.models.BigAutoField"
