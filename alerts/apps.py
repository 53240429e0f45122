from django.apps import AppConfig


class AlertsConfig(AppConfig):
    """Alert rules on the metric registry and live numbers, evaluated by the sweep."""

    name = "alerts"
    default_auto_field = "django.db.models.BigAutoField"
