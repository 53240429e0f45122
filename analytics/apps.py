from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Live tracker, metric definitions, dashboard, exports and reports.

    `ready()` plugs analytics into the chat's event seam (`analytics.subscribers`): the chat
    app never imports analytics.
    """

    name = "analytics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from analytics import subscribers

        subscribers.connect()
