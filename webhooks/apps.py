from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Signed webhooks (Standard Webhooks): a durable outbox fed by the chat's records, delivered with retries.

    `ready()` subscribes to the chat's event seam (`webhooks.subscribers`): the chat never
    imports webhooks.
    """

    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from webhooks import subscribers

        subscribers.connect()
