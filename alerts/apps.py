from django.apps import AppConfig


class AlertsConfig(AppConfig):
    """Alert rules on the metric registry and live numbers, evaluated by the sweep.

    `ready()` starts the sweep with the server (`alerts.subscribers`): the chat and analytics
    never import alerts.
    """

    name = "alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from alerts import subscribers

        subscribers.connect()
